"""Reading YAML documents with the line of every key, and ``--set`` overrides.

``read_yaml`` parses with PyYAML's safe loader (YAML 1.1, as the Azure ML CLI does, so ``true``
arrives as ``True`` and ``1e-3`` as the string ``'1e-3'``) and returns the data plus ``Positions``:
the line of every mapping key and list item, addressed by its path (``("jobs", "train",
"inputs")``). Duplicate keys, which PyYAML would silently collapse, are an error naming both lines.

``apply_overrides`` applies ``--set a.b=c`` (``a.b[0].c=v`` for list items) to a loaded document
before validation; values are parsed as YAML scalars (``--set instance_count=2`` gives an int).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from mlyard.core.errors import InvalidSpecError, SpecIssue
from mlyard.specs.guard import check_node_graph, too_deep
from mlyard.specs.limits import MAX_DEPTH, MAX_SPEC_BYTES

PathKey = tuple[str | int, ...]


class Positions:
    """Line numbers (1-based) of the keys and items of one YAML document."""

    def __init__(self, source: str, lines: dict[PathKey, int] | None = None) -> None:
        self.source = source
        self.lines: dict[PathKey, int] = dict(lines or {})

    def line_of(self, path: PathKey) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def source_of(self, path: PathKey) -> str:
        """The file that holds ``path``."""
        return self.source


class OverlaidPositions(Positions):
    """A named file's positions, where some top-level keys come from the file that names it.

    A schedule's ``create_job: {job: ./job.yml, inputs: ...}`` overrides keys of ``job.yml``: an
    error in those keys points at the schedule, the others at ``job.yml``.
    """

    def __init__(self, inner: Positions, outer: Positions, prefix: PathKey, keys: Iterable[str]) -> None:
        super().__init__(inner.source, inner.lines)
        self.outer, self.prefix, self.keys = outer, prefix, frozenset(keys)

    def _outer_holds(self, path: PathKey) -> bool:
        """Whether the outer file says more about ``path`` than the inner one (merged mappings mix both)."""
        if not path or path[0] not in self.keys:
            return False
        return _known_depth(self.outer.lines, path, self.prefix) >= _known_depth(self.lines, path, ())

    def line_of(self, path: PathKey) -> int | None:
        if self._outer_holds(path):
            return self.outer.line_of((*self.prefix, *path))
        return super().line_of(path)

    def source_of(self, path: PathKey) -> str:
        return self.outer.source_of(self.prefix) if self._outer_holds(path) else self.source


def _known_depth(lines: dict[PathKey, int], path: PathKey, prefix: PathKey) -> int:
    for end in range(len(path), 0, -1):
        if (*prefix, *path[:end]) in lines:
            return end
    return 0


class _Loader(yaml.SafeLoader):
    """The safe loader; kept separate so nothing is registered on PyYAML's own class.

    PyYAML composes nested collections recursively; the loader stops at ``MAX_DEPTH`` levels, long
    before Python's recursion limit.
    """

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise too_deep(self.source, self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self.depth -= 1


def _issue(source: str, message: str, line: int | None, column: int | None = None, field: str = "") -> SpecIssue:
    return SpecIssue(message=message, field=field, file=source, line=line, column=column)


def _index(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], source: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key is not None and key in seen:
                raise InvalidSpecError(issues=[_issue(
                    source, f"duplicate key '{key}' (first on line {seen[key]}); YAML keeps only one of them: "
                    "remove or rename one", line, key_node.start_mark.column + 1, format_path((*path, key)))])
            if key is not None:
                seen[key] = line
                lines[(*path, key)] = line
                _index(value_node, (*path, key), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _index(item, (*path, i), lines, source)


def read_yaml(text: str, source: str) -> tuple[Any, Positions]:
    """Parse one YAML document; syntax errors become ``InvalidSpecError`` with line and column.

    A document beyond ``specs.limits`` (too large, too deep, aliases expanding too far or into
    themselves) is refused before any of it is built.
    """
    if len(text) > MAX_SPEC_BYTES:
        raise InvalidSpecError(issues=[_issue(source, _too_large(len(text.encode("utf-8"))), None)])
    loader = _Loader(text, source)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, Positions(source)
        check_node_graph(node, source)
        lines: dict[PathKey, int] = {}
        if isinstance(node, yaml.MappingNode) and node.value:
            lines[()] = node.value[0][0].start_mark.line + 1
        else:
            lines[()] = node.start_mark.line + 1
        _index(node, (), lines, source)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        raise InvalidSpecError(issues=[_issue(
            source, f"invalid YAML: {problem}{context}; check the indentation (spaces, not tabs) and quoting",
            mark.line + 1 if mark else None, mark.column + 1 if mark else None)]) from None
    except yaml.YAMLError as exc:
        raise InvalidSpecError(issues=[_issue(source, f"invalid YAML: {exc}", None)]) from None
    finally:
        loader.dispose()
    return data, Positions(source, lines)


def read_yaml_file(path: Path) -> tuple[Any, Positions]:
    """Read and parse a YAML file; an unreadable file is an ``InvalidSpecError`` naming it."""
    source = str(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_SPEC_BYTES:
            raise InvalidSpecError(issues=[_issue(source, _too_large(path.stat().st_size), None)])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidSpecError(issues=[_issue(source, "file not found", None)]) from None
    except IsADirectoryError:
        raise InvalidSpecError(issues=[_issue(source, "is a folder; give the YAML file inside it", None)]) from None
    except UnicodeDecodeError as exc:
        raise InvalidSpecError(issues=[_issue(source, f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                                              None)]) from None
    except OSError as exc:
        raise InvalidSpecError(issues=[_issue(source, f"cannot read the file: {exc.strerror}", None)]) from None
    return read_yaml(text, source)


def _too_large(size: int) -> str:
    return (f"the file is {size / 2**20:.1f} MiB; spec files are limited to {MAX_SPEC_BYTES // 2**20} MiB: keep data "
            "in data assets and code in code folders, not in the YAML")


def format_path(path: Iterable[str | int]) -> str:
    """``("jobs", "train", "paths", 0)`` -> ``jobs.train.paths[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_override_path(text: str) -> PathKey:
    """``a.b[0].c`` -> ``("a", "b", 0, "c")``; numeric dotted segments are list indices too."""
    parts: list[str | int] = []
    pos = 0
    for m in _SEGMENT.finditer(text):
        gap = text[pos:m.start()]
        if gap not in ("", "."):
            raise ValueError(text)
        if m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            parts.append(int(m.group(1)) if m.group(1).isdigit() else m.group(1))
        pos = m.end()
    if not parts or text[pos:] or text.startswith("."):
        raise ValueError(text)
    return tuple(parts)


def _parse_value(raw: str) -> Any:
    try:
        value = read_yaml(raw, "--set")[0] if raw.strip() else ""
    except InvalidSpecError:
        return raw
    return raw if isinstance(value, dict | list) and not raw.lstrip().startswith(("{", "[")) else value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``PATH=VALUE`` overrides in order; returns ``data`` (changed in place).

    Raises:
        InvalidSpecError: an override is not ``PATH=VALUE`` or its path crosses a scalar.
    """
    for text in overrides:
        path_text, sep, raw = text.partition("=")
        try:
            if not sep:
                raise ValueError(text)
            path = parse_override_path(path_text.strip())
        except ValueError:
            raise InvalidSpecError(issues=[_issue(
                "--set", f"'{text}' is not PATH=VALUE (for example --set version=2 or "
                "--set inputs.data.path=./data)", None)]) from None
        _assign(data, path, _parse_value(raw), text)
    return data


def _assign(data: dict[str, Any], path: PathKey, value: Any, text: str) -> None:
    target: Any = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(target, dict):
            key: Any = str(part)
            if last:
                target[key] = value
                return
            if not isinstance(target.get(key), dict | list):
                target[key] = {}
            target = target[key]
        elif isinstance(target, list) and isinstance(part, int) and part < len(target):
            if last:
                target[part] = value
                return
            target = target[part]
        else:
            where = format_path(path[:i]) or "the document"
            raise InvalidSpecError(issues=[_issue(
                "--set", f"'{text}': {where} is not a mapping (or the list index is out of range), "
                "so it cannot hold this field", None, field=format_path(path))])
