"""Request bodies as strict JSON, refused before any route sees them when a client could not mean them.

Every JSON body, on MLflow's routes and on mlyard's own, is read by :func:`decode_json`: JSON as
RFC 8259 writes it (orjson), so no bare ``NaN`` or ``Infinity`` (MLflow's own clients send them as
the strings ``"NaN"`` and ``"Infinity"``), no number beyond a double (``1e400``), no lone UTF-16
surrogate; and, checked on the parsed value, no NUL character (PostgreSQL cannot store it) and no
more than :data:`MAX_DEPTH` levels of nesting (the deepest body a client sends is a handful of
levels; deep values would otherwise meet Python's recursion limit wherever they are copied or
printed). Integers must fit in a signed 64 bits: MLflow's int64 fields check theirs as they read them
(``tracking/checks.py``); mlyard's own routes ask for ``exact_integers``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from mlyard.core.errors import InvalidRequestError

MAX_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_HINT = ("send JSON as RFC 8259 defines it: finite numbers (MLflow's clients write NaN and Infinity as the strings "
         "\"NaN\" and \"Infinity\"), valid UTF-8 text without lone surrogates, and at most "
         f"{MAX_DEPTH} levels of nesting")


def decode_json(raw: bytes, *, exact_integers: bool = False) -> Any:
    """The value of a JSON request body; :class:`InvalidRequestError` when a client could not mean it.

    orjson reads an integer beyond 64 bits as a float; a route whose body may hold any integer field
    asks for ``exact_integers``, which reads the (already checked, so shallow) body again exactly.
    MLflow's routes need not: each of their integer fields goes through ``to_int64``, which refuses it.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"the request body is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): {_HINT}"
        ) from None
    _check_depth(value)
    if b"\\u0000" in raw:  # rare: then find where
        _find_nul(value)
    if exact_integers:
        value = json.loads(raw, parse_int=_int64)
    return value


def _int64(text: str) -> int:
    number = int(text)
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidRequestError(f"the request body holds the integer {text[:40]}, beyond a signed 64-bit integer "
                                  f"({INT64_MIN} to {INT64_MAX})")
    return number


def _check_depth(value: Any) -> None:
    """Level by level, containers only: cheap enough for a batch of a thousand metrics."""
    level, depth = [value], 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise InvalidRequestError(f"the request body nests deeper than {MAX_DEPTH} levels: {_HINT}")
        children: list[Any] = []
        for node in level:
            items = node.values() if type(node) is dict else node if type(node) is list else ()
            children.extend([item for item in items if type(item) is dict or type(item) is list])
        level = children


def _path(nodes: list[tuple[Any, int, str]], index: int) -> str:
    """``metrics[3].timestamp``: where node ``index`` sits in the body."""
    parts: list[str] = []
    while index > 0:
        _, parent, key = nodes[index]
        parts.append(key)
        index = parent
    out = "".join(reversed(parts)).lstrip(".")
    return out or "the body"


def _find_nul(value: Any) -> None:
    """Refuse a NUL character in any key or string of ``value``, naming where (an already shallow value)."""
    # (value, parent index, key in parent), breadth first
    nodes: list[tuple[Any, int, str]] = [(value, -1, "")]
    i = 0
    while i < len(nodes):
        node = nodes[i][0]
        if isinstance(node, str) and "\x00" in node:
            raise InvalidRequestError(f"{_path(nodes, i)} holds a NUL character (\\u0000): remove it; no name or "
                                      "text may contain it")
        items: Any = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, item in items:
            if isinstance(key, str) and "\x00" in key:
                raise InvalidRequestError(f"a key in {_path(nodes, i)} holds a NUL character (\\u0000): remove it; "
                                          "no name or text may contain it")
            if isinstance(item, dict | list | str):
                nodes.append((item, i, f".{key}" if isinstance(node, dict) else f"[{key}]"))
        i += 1
