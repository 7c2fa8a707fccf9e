"""The scoring router reads a request body whole, and refuses one past its limit without holding it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mlyard.serving import router


def _receive(chunks: list[bytes]) -> Any:
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return receive


def test_a_body_in_chunks_is_joined() -> None:
    assert asyncio.run(router._read_body(_receive([b'{"input_data": ', b"[[1, 2]]}"]))) == b'{"input_data": [[1, 2]]}'


def test_a_body_past_the_limit_is_refused_after_it_is_drained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router, "MAX_BODY", 10)
    chunks = [b"0123456", b"789abc", b"def"]
    receive = _receive(chunks)
    with pytest.raises(router._TooLarge):
        asyncio.run(router._read_body(receive))
    assert asyncio.run(receive()) == {"type": "http.disconnect"}  # every chunk was read, none is left unread


def test_a_client_that_goes_away_gives_no_body() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    assert asyncio.run(router._read_body(receive)) is None
