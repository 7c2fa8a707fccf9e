"""Request bodies as strict JSON, refused before any route sees them when a client could not mean them.

Every JSON body, on MLflow's routes and on mlyard's own, is read by :func:`decode_json`: JSON as
RFC 8259 writes it (orjson), so no bare ``NaN`` or ``Infinity`` (MLflow's own clients send them as
the strings ``"NaN"`` and ``"Infinity"``), no number beyond a double (``1e400``), no lone UTF-16
surrogate; and, checked on the parsed value, no integer beyond a signed 64-bit one (what the store
and MLflow's int64 fields hold), no NUL character (PostgreSQL cannot store it), and no more than
:data:`MAX_DEPTH` levels of nesting (the deepest body a client sends is a handful of levels; deep
values would otherwise meet Python's recursion limit wherever they are copied or printed).
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


def decode_json(raw: bytes | str, *, exact_integers: bool = False) -> Any:
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
    check_value(value)
    if exact_integers:
        value = json.loads(raw, parse_int=_int64)
    return value


def _int64(text: str) -> int:
    number = int(text)
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidRequestError(f"the request body holds the integer {text[:40]}, beyond a signed 64-bit integer "
                                  f"({INT64_MIN} to {INT64_MAX})")
    return number


def _path(nodes: list[tuple[Any, int, int, str]], index: int) -> str:
    """``metrics[3].timestamp``: where node ``index`` sits in the body."""
    parts: list[str] = []
    while index > 0:
        _, _, parent, key = nodes[index]
        parts.append(key)
        index = parent
    out = "".join(reversed(parts)).lstrip(".")
    return out or "the body"


def check_value(value: Any) -> None:
    """Refuse deep nesting, integers beyond 64 bits and NUL characters anywhere in ``value``."""
    # (value, depth, parent index, key in parent); iterative, so no depth can exhaust the stack
    nodes: list[tuple[Any, int, int, str]] = [(value, 0, -1, "")]
    i = 0
    while i < len(nodes):
        node, depth, _, _ = nodes[i]
        if isinstance(node, dict):
            items: Any = node.items()
            dotted = True
        elif isinstance(node, list):
            items = enumerate(node)
            dotted = False
        else:
            _check_scalar(node, nodes, i)
            i += 1
            continue
        if depth >= MAX_DEPTH:
            raise InvalidRequestError(f"the request body nests deeper than {MAX_DEPTH} levels at "
                                      f"{_path(nodes, i)}: {_HINT}")
        for key, item in items:
            if dotted and "\x00" in key:
                raise InvalidRequestError(f"a key in {_path(nodes, i)} holds a NUL character (\\u0000): "
                                          "remove it; no name or text may contain it")
            if isinstance(item, dict | list | str) or (isinstance(item, int) and not isinstance(item, bool)):
                nodes.append((item, depth + 1, i, f".{key}" if dotted else f"[{key}]"))
        i += 1


def _check_scalar(node: Any, nodes: list[tuple[Any, int, int, str]], index: int) -> None:
    if isinstance(node, str):
        if "\x00" in node:
            raise InvalidRequestError(f"{_path(nodes, index)} holds a NUL character (\\u0000): remove it; no name "
                                      "or text may contain it")
    elif isinstance(node, int) and not isinstance(node, bool) and not INT64_MIN <= node <= INT64_MAX:
        raise InvalidRequestError(f"{_path(nodes, index)} is {node}, beyond a signed 64-bit integer "
                                  f"({INT64_MIN} to {INT64_MAX})")
