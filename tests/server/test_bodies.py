"""Strict JSON for request bodies: what a client cannot have meant is an InvalidRequestError naming it."""

from __future__ import annotations

import pytest

from mlyard.core.errors import InvalidRequestError
from mlyard.server.bodies import MAX_DEPTH, decode_json


@pytest.mark.parametrize(("raw", "says"), [
    ('{"step": NaN}', "not valid JSON"),
    ('{"step": -Infinity}', "not valid JSON"),
    ('{"timestamp": 1e400}', "infinity"),
    ('{"name": "a\\ud800"}', "surrogate"),
    ('{"name": "\\udc00"}', "surrogate"),
    ("[" * 100_000 + "]" * 100_000, "depth"),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"deeper than {MAX_DEPTH} levels"),
    ('{"tags": [{"key": "k", "value": "a\\u0000b"}]}', "tags[0].value holds a NUL character"),
    ('{"k\\u0000": 1}', "a key in the body holds a NUL character"),
])  # fmt: skip
def test_refused(raw: str, says: str) -> None:
    with pytest.raises(InvalidRequestError, match=says.replace("[", r"\[").replace("]", r"\]")):
        decode_json(raw.encode())


def test_integers_beyond_64_bits_are_refused_where_every_integer_counts() -> None:
    assert decode_json(b'{"size": 9223372036854775807}', exact_integers=True) == {"size": 2**63 - 1}
    for big in (2**63, 2**64, 2**70, -(2**63) - 1):
        with pytest.raises(InvalidRequestError, match="beyond a signed 64-bit integer"):
            decode_json(f'{{"size": {big}}}'.encode(), exact_integers=True)


def test_ordinary_bodies_pass_unchanged() -> None:
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert decode_json(deepest.encode()) is not None
    assert decode_json(b'{"value": "NaN", "path": "C:\\\\u0000x", "n": 1.5e308}') == {
        "value": "NaN", "path": "C:\\u0000x", "n": 1.5e308}
