"""Enforcing ``specs.limits`` on YAML node graphs and on plain data, without recursion errors.

``check_node_graph`` runs on the composed YAML node graph, before any Python object is built: an
alias is a reference to an earlier node, so a tiny file can describe a huge (or, with an alias
inside its own anchor, an endless) document. Sizes are counted per node once and reused, so the
check itself stays small. ``check_values`` runs on data that did not come from YAML (a request
body): it walks with an explicit stack, so a deeply nested body is refused instead of overflowing.
"""

from __future__ import annotations

from typing import Any

import yaml

from mlyard.core.errors import InvalidSpecError, SpecIssue
from mlyard.specs.limits import MAX_DEPTH, MAX_NODES, MAX_TEXT_CHARS


def _refuse(source: str, message: str, mark: Any = None, field: str = "") -> InvalidSpecError:
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return InvalidSpecError(issues=[SpecIssue(message=message, field=field, file=source, line=line, column=column)])


def too_deep(source: str, mark: Any = None, field: str = "") -> InvalidSpecError:
    """The error for a document nested deeper than ``MAX_DEPTH``."""
    return _refuse(source, f"the document is nested more than {MAX_DEPTH} levels deep; a spec is refused beyond "
                   "that (flatten it)", mark, field)


def _too_many(source: str, mark: Any = None) -> InvalidSpecError:
    return _refuse(source, f"the document expands to more than {MAX_NODES:,} values (aliases count each time they "
                   "are used); a spec is refused beyond that: write it without nested aliases", mark)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_node_graph(root: yaml.Node, source: str) -> None:
    """Refuse a node graph that is cyclic, deeper than ``MAX_DEPTH`` or larger than ``MAX_NODES`` expanded.

    Raises:
        InvalidSpecError: naming ``source`` and the line of the offending node.
    """
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded node count, height)
    active: set[int] = set()

    def visit(node: yaml.Node, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in done:
            count, height = done[key]
            if depth + height > MAX_DEPTH:
                raise too_deep(source, node.start_mark)
            return count, height
        if key in active:
            raise _refuse(source, "an alias refers to the node that contains it, so the document never ends; "
                          "remove the alias (or its anchor)", node.start_mark)
        if depth > MAX_DEPTH:
            raise too_deep(source, node.start_mark)
        active.add(key)
        count, height = 1, 0
        for child in _children(node):
            child_count, child_height = visit(child, depth + 1)
            count += child_count
            height = max(height, child_height + 1)
            if count > MAX_NODES:
                raise _too_many(source, node.start_mark)
        active.discard(key)
        done[key] = (count, height)
        return count, height

    visit(root, 1)


def find_excess(data: Any) -> tuple[str, tuple[str | int, ...]] | None:
    """The first limit ``data`` breaks, as (message, path), or None.

    For data that did not come through ``check_node_graph`` (a request body, ``--set`` values): nesting
    deeper than ``MAX_DEPTH``, more than ``MAX_NODES`` values, or a text or key longer than
    ``MAX_TEXT_CHARS``. The walk uses its own stack, so no depth overflows it.
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    count = 0
    while stack:
        value, path = stack.pop()
        count += 1
        if count > MAX_NODES:
            return _too_many("").issues[0].message, ()
        if len(path) >= MAX_DEPTH:
            return too_deep("").issues[0].message, path[:MAX_DEPTH]
        if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
            return (f"a text of {len(value):,} characters; the limit is {MAX_TEXT_CHARS:,}: keep long text in a "
                    "file (code, a data asset) and refer to it"), path
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and len(key) > MAX_TEXT_CHARS:
                    return f"a key of {len(key):,} characters; the limit is {MAX_TEXT_CHARS:,}", path
                stack.append((item, (*path, str(key))))
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
    return None
