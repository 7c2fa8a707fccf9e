"""Turning pydantic's validation errors into ``SpecIssue``s, and warning about unknown keys.

``issues_of`` maps each pydantic error to the file, the line of the offending key and its field
path (union tags in pydantic's locations are skipped). ``strip_unknown`` warns about unknown keys,
with their line, and drops them, except in the sub-objects Azure passes through (``keep_unknown``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from mlyard.core.errors import SpecIssue
from mlyard.specs.base import SPEC_ISSUE, SpecModel, show
from mlyard.specs.source import PathKey, Positions, format_path


def _walk(data: Any, path: PathKey, parts: Iterable[Any], keep_last: bool) -> tuple[PathKey, Any]:
    """Follow ``parts`` through ``data``; parts that are not keys (union tags) are skipped.

    With ``keep_last``, a final part that is not in the data (a missing field) is kept.
    """
    items = list(parts)
    node = data
    for i, part in enumerate(items):
        if isinstance(node, dict) and part in node:
            path, node = (*path, part), node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path, node = (*path, part), node[part]
        elif keep_last and i == len(items) - 1 and isinstance(part, str):
            path, node = (*path, part), None
    return path, node


_FRIENDLY = {
    "int_parsing": "expected an integer", "int_type": "expected an integer", "int_from_float": "expected an integer",
    "float_parsing": "expected a number", "float_type": "expected a number",
    "bool_parsing": "expected true or false", "bool_type": "expected true or false",
    "string_type": "expected a string", "dict_type": "expected a mapping", "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping", "list_type": "expected a list",
    "time_delta_parsing": "expected an ISO-8601 duration such as P7D", "time_delta_type": "expected a duration",
}


def _message(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = f"; got {show(error.get('input'))}"
    if kind in _FRIENDLY:
        return _FRIENDLY[kind] + got
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}{got}"
    bounds = {"greater_than_equal": ("at least", "ge"), "greater_than": ("greater than", "gt"),
              "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt")}
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)}{got}"
    if kind == "string_pattern_mismatch":
        return f"{show(error.get('input'))} is not allowed here: it must match {ctx.get('pattern')}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    return f"{error['msg']}{got}"


def issues_of(exc: ValidationError, data: dict[str, Any], positions: Positions) -> list[SpecIssue]:
    issues: list[SpecIssue] = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if error["type"] == SPEC_ISSUE:
            ctx = error.get("ctx") or {}
            path, node = _walk(data, (), loc, keep_last=False)
            path, _ = _walk(node, path, ctx.get("subpath", []), keep_last=True)
            message = str(ctx.get("message", error["msg"]))
        elif error["type"] == "missing":
            path, _ = _walk(data, (), loc, keep_last=True)
            message = f"required field '{loc[-1]}' is missing"
        else:
            path, _ = _walk(data, (), loc, keep_last=False)
            message = _message(error)
        issue = SpecIssue(message=message, field=format_path(path), file=positions.source_of(path),
                          line=positions.line_of(path))
        if issue not in issues:
            issues.append(issue)
    return issues


# -- unknown keys ---------------------------------------------------------------------------------------


def strip_unknown(value: Any, path: PathKey, positions: Positions, warnings: list[str], kind: str) -> None:
    """Warn about and drop unknown keys, depth first, except where Azure passes them through."""
    if isinstance(value, SpecModel):
        extra = value.__pydantic_extra__
        if extra and not type(value).keep_unknown:
            for key in list(extra):
                where = (*path, key)
                line = positions.line_of(where)
                source = positions.source_of(where)
                at = f"{source}:{line}" if line else source
                warnings.append(f"{at}: {format_path(where)}: unknown key '{key}' ignored (not part of the "
                                f"{kind} schema; check its spelling)")
                del extra[key]
        for name, info in type(value).model_fields.items():
            strip_unknown(getattr(value, name), (*path, info.alias or name), positions, warnings, kind)
    elif isinstance(value, BaseModel):
        return
    elif isinstance(value, dict):
        for key, item in value.items():
            strip_unknown(item, (*path, key), positions, warnings, kind)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            strip_unknown(item, (*path, i), positions, warnings, kind)
