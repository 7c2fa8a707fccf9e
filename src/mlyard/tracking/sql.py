"""Filter comparisons as SQL, shared by every search (runs, experiments, models, versions)."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import ColumnElement, Integer, func, true

from mlyard.core.errors import InvalidRequestError
from mlyard.core.paging import ViewType
from mlyard.tracking.checks import INT64_MAX, INT64_MIN

NUMERIC = {"=": "__eq__", "!=": "__ne__", ">": "__gt__", ">=": "__ge__", "<": "__lt__", "<=": "__le__"}


def numeric_compare(column: Any, comparator: str, value: Any) -> ColumnElement[bool]:
    if comparator not in NUMERIC:
        raise InvalidRequestError(f"comparator {comparator!r} does not apply to numbers; use one of "
                                  f"{', '.join(NUMERIC)}")
    if isinstance(getattr(column, "type", None), Integer) and not _fits_int64(value):
        # the store could not bind it (SQLite: "Python int too large"; PostgreSQL: "bigint out of range")
        raise InvalidRequestError(f"{value!r} is not an integer of at most 64 bits, which "
                                  f"{getattr(column, 'key', 'this attribute')} holds")
    return getattr(column, NUMERIC[comparator])(value)  # type: ignore[no-any-return]


def _fits_int64(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value) and INT64_MIN <= value <= INT64_MAX
    return not isinstance(value, int) or INT64_MIN <= value <= INT64_MAX


def string_compare(column: Any, comparator: str, value: Any, *, sqlite: bool = False) -> ColumnElement[bool]:
    """``=``, ``!=``, ``LIKE`` (case-sensitive, as in MLflow), ``ILIKE``, ``IN``, ``NOT IN``, null tests.

    SQLite's LIKE ignores case, so on SQLite a LIKE becomes the equivalent GLOB.
    """
    if comparator == "=":
        return column == value  # type: ignore[no-any-return]
    if comparator == "!=":
        return column != value  # type: ignore[no-any-return]
    if comparator == "LIKE":
        if sqlite:
            return column.op("GLOB")(_like_to_glob(value))  # type: ignore[no-any-return]
        return column.like(value)  # type: ignore[no-any-return]
    if comparator == "ILIKE":
        return func.lower(column).like(str(value).lower())
    if comparator == "IN":
        return column.in_(list(value))  # type: ignore[no-any-return]
    if comparator == "NOT IN":
        return column.not_in(list(value))  # type: ignore[no-any-return]
    if comparator == "IS NULL":
        return column.is_(None)  # type: ignore[no-any-return]
    if comparator == "IS NOT NULL":
        return column.is_not(None)  # type: ignore[no-any-return]
    if comparator in NUMERIC:
        return numeric_compare(column, comparator, value)
    raise InvalidRequestError(f"comparator {comparator!r} is not supported here")


def _like_to_glob(pattern: Any) -> str:
    out = []
    for ch in str(pattern):
        if ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
    return "".join(out)


def lifecycle_clause(column: Any, view: ViewType) -> ColumnElement[bool]:
    """Rows an MLflow view type shows: active ones, deleted ones, or all."""
    if view == "ACTIVE_ONLY":
        return column == "active"  # type: ignore[no-any-return]
    if view == "DELETED_ONLY":
        return column == "deleted"  # type: ignore[no-any-return]
    return true()
