"""The worker's answers: a status and JSON bytes, and the JSON writer every host shares.

Standard library only (orjson when installed): the worker imports this before it knows whether the model needs numpy.
numpy and pandas values are written without importing either, by looking at what the value offers.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

try:
    import orjson
except ImportError:  # an isolated deployment environment may lack it; the standard library does the same job slower
    orjson = None  # type: ignore[assignment]

HAS_ORJSON = orjson is not None


class Answer(NamedTuple):
    """An HTTP status and the JSON body that goes with it; ``batch`` is the size of the batch that answered it
    (0 when the worker does not batch)."""

    status: int
    body: bytes
    batch: int = 0


def ok(value: Any) -> Answer:
    """A 200 answer holding ``value`` as JSON."""
    return Answer(200, dumps(value))


def invalid_request(message: str) -> Answer:
    """A 400 answer for a request the model cannot be asked with."""
    return Answer(400, _error("invalid_request", message))


def scoring_failed(message: str) -> Answer:
    """A 500 answer for a model or scoring script that raised; the traceback stays in the worker's log."""
    return Answer(500, _error("scoring_failed", message))


def not_ready() -> Answer:
    """A 503 answer while the model is still loading."""
    return Answer(503, _error("not_ready", "the deployment's model is still loading; retry when /ready answers 200"))


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def loads(body: bytes) -> Any:
    """Decode JSON bytes (raises ``ValueError``, which both decoders' errors are)."""
    return orjson.loads(body) if orjson is not None else json.loads(body)


def dumps(value: Any) -> bytes:
    """JSON bytes of ``value``: numpy arrays and scalars as JSON values, pandas frames as lists of row objects.

    Raises:
        TypeError: ``value`` holds something JSON cannot express (the message names its type).
    """
    if orjson is not None:
        return orjson.dumps(value, default=_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    try:
        return json.dumps(value, default=_default, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:  # NaN or infinity, which JSON lacks: null, as orjson writes them
        return json.dumps(_finite(json.loads(json.dumps(value, default=_default))), separators=(",", ":")).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if value - value == 0 else None
    if isinstance(value, list):
        return [_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


def _default(value: Any) -> Any:
    module = type(value).__module__
    if module.startswith("pandas"):
        if hasattr(value, "to_dict") and hasattr(value, "columns"):
            return value.to_dict(orient="records")
        if hasattr(value, "to_frame"):  # a Series: one row object per value, as MLflow writes it
            return value.to_frame().to_dict(orient="records")
        if hasattr(value, "isoformat"):
            return value.isoformat()
    if module.startswith("numpy") and hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"a {type(value).__name__} cannot be written as JSON")
