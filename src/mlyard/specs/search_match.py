"""Checking a value against one parsed search condition, in Python (MLflow's semantics)."""

from __future__ import annotations

import re
from typing import Any

from mlyard.specs.search_filters import Condition


def like(pattern: str, value: str, case_sensitive: bool) -> bool:
    """SQL LIKE: ``%`` any run of characters, ``_`` one character, the rest literal."""
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, re.DOTALL if case_sensitive else re.DOTALL | re.IGNORECASE) is not None


def matches(value: Any, c: Condition) -> bool:
    """Whether ``value`` satisfies ``c``; a missing value (None) matches only ``IS NULL``."""
    op, target = c.comparator, c.value
    if op == "IS NULL":
        return value is None
    if op == "IS NOT NULL":
        return value is not None
    if value is None:
        return False
    if op in ("IN", "NOT IN"):
        members = target if isinstance(target, tuple) else ()
        return (str(value) in members) == (op == "IN")
    if op in ("LIKE", "ILIKE"):
        return like(str(target), str(value), op == "LIKE")
    left: Any
    right: Any
    if isinstance(target, int | float) or op in ("<", "<=", ">", ">="):
        try:
            left, right = float(value), float(target)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    else:
        left, right = str(value), str(target)
    return bool({"=": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
                 ">": left > right, ">=": left >= right}[op])
