"""Rendering a command: ``${{inputs.x}}``, ``${{outputs.y}}`` and ``$[[...]]`` segments (reference §1.3).

Literals render as Python's ``str()`` of the value a YAML 1.1 loader produced, as Azure ML's SDK
sends them: ``true`` becomes ``True``, ``0.001`` stays ``0.001``, a string is put in as written
(``a b`` stays two shell words, as on Azure). Paths mlyard itself chose (inputs and outputs) are
shell-quoted only when they hold characters the shell would split or expand.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from mlyard.core.errors import InvalidSpecError, SpecIssue
from mlyard.specs.bindings import find_bindings, find_optional_segments

_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./:@%+=,-]*$")


def literal_text(value: Any) -> str:
    """``str()`` of a literal, as Azure ML renders it (``True``, ``0.001``, ``hello world``)."""
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    return str(value)


def path_text(path: str) -> str:
    """A path for the shell: as it is when safe, else quoted."""
    return path if _SAFE_PATH.match(path) else shlex.quote(path)


def render_command(command: str, inputs: dict[str, str | None], outputs: dict[str, str],
                   search_space: dict[str, str] | None = None) -> str:
    """The command with every expression replaced.

    Args:
        inputs: rendered text of each input (a literal's ``str()``, a path); None when unset.
        outputs: rendered path of each output.

    A ``$[[...]]`` segment is dropped when every input inside it is unset; otherwise its brackets
    go and an unset input inside renders empty.

    Raises:
        InvalidSpecError: an expression names an input or output that has no value.
    """
    pieces: list[str] = []
    pos = 0
    for seg in find_optional_segments(command):
        pieces.append(_substitute(command[pos:seg.span[0]], inputs, outputs, search_space, optional=False))
        names = [b.name for b in seg.bindings if b.kind == "inputs" and b.name]
        if names and all(inputs.get(n) is None for n in names):
            pass  # every input unset: the segment goes
        else:
            pieces.append(_substitute(seg.body, inputs, outputs, search_space, optional=True))
        pos = seg.span[1]
    pieces.append(_substitute(command[pos:], inputs, outputs, search_space, optional=False))
    return "".join(pieces)


def _substitute(text: str, inputs: dict[str, str | None], outputs: dict[str, str],
                search_space: dict[str, str] | None, *, optional: bool) -> str:
    out: list[str] = []
    pos = 0
    for b in find_bindings(text):
        out.append(text[pos:b.span[0]])
        if b.kind == "inputs":
            value = inputs.get(b.name or "")
            if value is None and not optional:
                raise _unset(b.text, "input")
            out.append(value or "")
        elif b.kind == "outputs":
            if b.name not in outputs:
                raise _unset(b.text, "output")
            out.append(outputs[b.name or ""])
        elif b.kind == "search_space" and search_space is not None and b.name in search_space:
            out.append(search_space[b.name or ""])
        else:
            raise InvalidSpecError(issues=[SpecIssue(message=f"{b.text} cannot be rendered in a command",
                                                     field="command")])
        pos = b.span[1]
    out.append(text[pos:])
    return "".join(out)


def _unset(expression: str, what: str) -> InvalidSpecError:
    return InvalidSpecError(issues=[SpecIssue(
        message=f"{expression} has no value: the {what} is not given and has no default; give it under "
                f"{what}s: or put the expression inside an optional segment $[[...]]", field="command")])
