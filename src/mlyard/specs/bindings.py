"""The ``${{...}}`` expression grammar and ``$[[...]]`` optional segments (reference §1.3).

This module parses; it never renders (rendering needs resolved values and belongs to the job
runner). ``find_bindings`` returns every expression in a text with its span and whether it sits
inside an optional segment; ``parse_binding`` turns one expression into a ``Binding``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from mlyard.core.errors import InvalidSpecError, SpecIssue

BindingKind = Literal[
    "inputs",  # ${{inputs.x}}
    "outputs",  # ${{outputs.y}}
    "search_space",  # ${{search_space.h}}
    "parent_inputs",  # ${{parent.inputs.x}}
    "parent_outputs",  # ${{parent.outputs.x}}
    "parent_job_outputs",  # ${{parent.jobs.<step>.outputs.<n>}}
    "parent_job_inputs",  # ${{parent.jobs.<step>.inputs.<n>}}
    "name",  # ${{name}}
    "output_name",  # ${{output_name}}
    "default_datastore",  # ${{default_datastore}}
    "trigger_time",  # ${{creation_context.trigger_time}}
]

_NAME = r"[A-Za-z0-9_][A-Za-z0-9_\-]*"
_GRAMMAR: tuple[tuple[re.Pattern[str], BindingKind], ...] = (
    (re.compile(rf"^inputs\.(?P<name>{_NAME})$"), "inputs"),
    (re.compile(rf"^outputs\.(?P<name>{_NAME})$"), "outputs"),
    (re.compile(rf"^search_space\.(?P<name>{_NAME})$"), "search_space"),
    (re.compile(rf"^parent\.inputs\.(?P<name>{_NAME})$"), "parent_inputs"),
    (re.compile(rf"^parent\.outputs\.(?P<name>{_NAME})$"), "parent_outputs"),
    (re.compile(rf"^parent\.jobs\.(?P<step>{_NAME})\.outputs\.(?P<name>{_NAME})$"), "parent_job_outputs"),
    (re.compile(rf"^parent\.jobs\.(?P<step>{_NAME})\.inputs\.(?P<name>{_NAME})$"), "parent_job_inputs"),
    (re.compile(r"^name$"), "name"),
    (re.compile(r"^output_name$"), "output_name"),
    (re.compile(r"^default_datastore$"), "default_datastore"),
    (re.compile(r"^creation_context\.trigger_time$"), "trigger_time"),
)
EXPRESSION_FORMS = (
    "inputs.<name>", "outputs.<name>", "search_space.<name>", "parent.inputs.<name>", "parent.outputs.<name>",
    "parent.jobs.<step>.outputs.<name>", "parent.jobs.<step>.inputs.<name>", "name", "output_name",
    "default_datastore", "creation_context.trigger_time",
)

_EXPR_RE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_OPEN, _CLOSE = "$[[", "]]"


@dataclass(frozen=True)
class Binding:
    """One ``${{...}}`` expression."""

    kind: BindingKind
    expression: str  # the text between the braces, trimmed
    name: str | None = None  # input/output/hyperparameter name
    step: str | None = None  # for parent.jobs.<step>...
    optional: bool = False  # inside a $[[...]] segment
    span: tuple[int, int] = (0, 0)  # [start, end) of "${{...}}" in the searched text

    @property
    def text(self) -> str:
        return "${{" + self.expression + "}}"


@dataclass(frozen=True)
class OptionalSegment:
    """One ``$[[...]]`` segment: dropped when every input inside it is unset."""

    span: tuple[int, int]  # [start, end) of "$[[...]]"
    body: str
    bindings: tuple[Binding, ...] = field(default=())


def _error(message: str) -> InvalidSpecError:
    return InvalidSpecError(issues=[SpecIssue(message=message)])


def parse_binding(expression: str) -> Binding:
    """Parse ``${{inputs.x}}`` (or just ``inputs.x``) into a ``Binding``.

    Raises:
        InvalidSpecError: the expression is not one of ``EXPRESSION_FORMS``.
    """
    inner = expression.strip()
    if inner.startswith("${{") and inner.endswith("}}"):
        inner = inner[3:-2]
    inner = inner.strip()
    for pattern, kind in _GRAMMAR:
        m = pattern.match(inner)
        if m:
            groups = m.groupdict()
            return Binding(kind=kind, expression=inner, name=groups.get("name"), step=groups.get("step"))
    raise _error(f"unknown expression '${{{{{inner}}}}}'; expected one of: "
                 + ", ".join("${{" + f + "}}" for f in EXPRESSION_FORMS))


def find_optional_segments(text: str) -> list[OptionalSegment]:
    """Every ``$[[...]]`` segment of ``text`` with the bindings inside it.

    Raises:
        InvalidSpecError: a segment is not closed, or segments are nested.
    """
    segments: list[OptionalSegment] = []
    pos = 0
    while (start := text.find(_OPEN, pos)) != -1:
        end = text.find(_CLOSE, start + len(_OPEN))
        if end == -1:
            raise _error(f"optional segment '$[[' at character {start} is not closed with ']]'")
        body = text[start + len(_OPEN):end]
        if _OPEN in body:
            raise _error(f"optional segments cannot be nested (at character {start})")
        inner = tuple(
            Binding(b.kind, b.expression, b.name, b.step, True, (b.span[0] + start + 3, b.span[1] + start + 3))
            for b in _scan(body)
        )
        segments.append(OptionalSegment(span=(start, end + len(_CLOSE)), body=body, bindings=inner))
        pos = end + len(_CLOSE)
    return segments


def _scan(text: str) -> list[Binding]:
    found: list[Binding] = []
    covered_until = 0
    for m in _EXPR_RE.finditer(text):
        stray = text.find("${{", covered_until, m.start())
        if stray == -1 and "${{" in m.group(1):
            stray = m.start()  # an unclosed ${{ runs into the next expression
        if stray != -1:
            raise _error(f"expression '${{{{' at character {stray} is not closed with '}}}}'")
        b = parse_binding(m.group(1))
        found.append(Binding(b.kind, b.expression, b.name, b.step, False, (m.start(), m.end())))
        covered_until = m.end()
    stray = text.find("${{", covered_until)
    if stray != -1:
        raise _error(f"expression '${{{{' at character {stray} is not closed with '}}}}'")
    return found


def find_bindings(text: str) -> list[Binding]:
    """Every ``${{...}}`` expression in ``text``, in order, marked ``optional`` inside ``$[[...]]``.

    Raises:
        InvalidSpecError: an expression is unknown or not closed, or a segment is malformed.
    """
    segments = find_optional_segments(text)
    result = []
    for b in _scan(text):
        inside = any(s.span[0] <= b.span[0] and b.span[1] <= s.span[1] for s in segments)
        result.append(Binding(b.kind, b.expression, b.name, b.step, inside, b.span) if inside else b)
    return result


def single_binding(text: str) -> Binding | None:
    """The binding when ``text`` is exactly one expression (``'${{parent.inputs.x}}'``), else None."""
    stripped = text.strip()
    m = _EXPR_RE.fullmatch(stripped)
    if not m:
        return None
    try:
        return parse_binding(m.group(1))
    except InvalidSpecError:
        return None


def has_binding(text: str) -> bool:
    return "${{" in text
