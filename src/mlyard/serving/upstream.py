"""Kept-alive HTTP/1.1 connections to one worker's unix socket, for the scoring router.

The router sends one kind of request (``POST /score`` with a JSON body) to a server it controls (the
worker, which always answers with a ``content-length``), so a few lines over asyncio streams do what a
general client does, at about half of httpx's cost per request (``docs/serving.md``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

MAX_IDLE = 64  # connections kept open per worker
HEAD_LIMIT = 64 * 1024


class UpstreamError(Exception):
    """The worker could not be reached, or it closed the connection before it answered."""


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: bytes
    batch: int = 0  # the size of the batch the worker predicted this request in; 0 when it does not batch


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class WorkerConnections:
    """A pool of connections to the worker listening on ``socket``."""

    def __init__(self, socket: str) -> None:
        self.socket = socket
        self._idle: list[_Connection] = []

    async def score(self, body: bytes) -> Answer:
        """POST ``body`` to ``/score``.

        Raises:
            UpstreamError: the worker is gone or broke the connection (the request may be sent elsewhere).
        """
        reused = bool(self._idle)
        conn = self._idle.pop() if reused else await self._open()
        try:
            answer, keep = await self._exchange(conn, body)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as exc:
            conn.close()
            if not reused:
                raise UpstreamError(f"{type(exc).__name__}: {exc}") from exc
            # a kept-alive connection the worker closed meanwhile (it restarted, or timed it out): a new one
            conn = await self._open()
            try:
                answer, keep = await self._exchange(conn, body)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as again:
                conn.close()
                raise UpstreamError(f"{type(again).__name__}: {again}") from again
            except BaseException:
                conn.close()
                raise
        except BaseException:  # cancelled (a timeout): the connection is mid-exchange, unusable
            conn.close()
            raise
        if keep and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()
        return answer

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    async def _open(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_unix_connection(self.socket, limit=HEAD_LIMIT)
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {self.socket}: {exc}") from exc
        return _Connection(reader, writer)

    @staticmethod
    async def _exchange(conn: _Connection, body: bytes) -> tuple[Answer, bool]:
        conn.writer.write(b"POST /score HTTP/1.1\r\nhost: worker\r\ncontent-type: application/json\r\n"
                          b"content-length: %d\r\n\r\n%b" % (len(body), body))
        await conn.writer.drain()
        head = await conn.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            if line:
                key, _, value = line.partition(b":")
                headers[key.strip().lower()] = value.strip()
        keep = headers.get(b"connection", b"").lower() != b"close"
        if b"content-length" in headers:
            payload = await conn.reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            payload = await _read_chunked(conn.reader)
        else:
            payload, keep = await conn.reader.read(), False
        batch = headers.get(b"x-mlyard-batch-size", b"0")
        return Answer(status, payload, headers.get(b"content-type", b"application/json"),
                      int(batch) if batch.isdigit() else 0), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
