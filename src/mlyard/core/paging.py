"""Pages of search results, MLflow's view types and its opaque page tokens."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from mlyard.core.errors import InvalidRequestError

T = TypeVar("T")
ViewType = Literal["ACTIVE_ONLY", "DELETED_ONLY", "ALL"]
VIEW_TYPES: tuple[ViewType, ...] = ("ACTIVE_ONLY", "DELETED_ONLY", "ALL")


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_page_token: str | None = None


def view_type(value: Any, default: ViewType = "ACTIVE_ONLY") -> ViewType:
    """MLflow sends the view type by name (``ACTIVE_ONLY``) or number (1, 2, 3)."""
    if value in (None, ""):
        return default
    by_number = {"1": "ACTIVE_ONLY", "2": "DELETED_ONLY", "3": "ALL"}
    name = by_number.get(str(value), str(value).upper())
    if name not in VIEW_TYPES:
        raise InvalidRequestError(f"view type {value!r} is not one of {', '.join(VIEW_TYPES)}")
    return name


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidRequestError("invalid page_token: pass the next_page_token of the previous page") from None
    if not isinstance(offset, int) or offset < 0:
        raise InvalidRequestError("invalid page_token: pass the next_page_token of the previous page")
    return offset


def encode_after(key: Sequence[int]) -> str:
    """A token for the page after the row whose sort key is ``key`` (keyset paging: no rows are skipped
    again on every page, and rows added meanwhile cannot shift a page)."""
    return base64.urlsafe_b64encode(json.dumps({"after": list(key)}).encode()).decode()


def decode_after(token: str | None, size: int) -> tuple[int, ...] | None:
    """The sort key an ``encode_after`` token resumes after; None for the first page."""
    if not token:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        key = None
    if not isinstance(key, list) or len(key) != size or not all(type(v) is int for v in key):
        raise InvalidRequestError("invalid page_token: pass the next_page_token of the previous page")
    return tuple(key)


def max_results(value: Any, default: int, limit: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"max_results must be an integer; got {value!r}") from None
    if number < 1 or number > limit:
        raise InvalidRequestError(f"max_results must be between 1 and {limit}; got {number}")
    return number
