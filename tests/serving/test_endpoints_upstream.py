"""The router's connections to a worker, against a real HTTP/1.1 server on a unix socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mlyard.serving.upstream import UpstreamError, WorkerConnections


async def _serve(path: str, answers: list[bytes], close_after: bool) -> asyncio.Server:
    """Answers each request with the next of ``answers``; with ``close_after``, hangs up after each one."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while answers:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
            await reader.readexactly(length)
            writer.write(answers.pop(0))
            await writer.drain()
            if close_after:
                break
        writer.close()

    return await asyncio.start_unix_server(handle, path)


def test_kept_alive_connection_closed_by_the_worker_is_replaced(tmp_path: Path) -> None:
    sock = str(tmp_path / "w.sock")
    ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 3\r\n\r\n[1]"

    async def main() -> None:
        server = await _serve(sock, [ok, ok], close_after=True)
        connections = WorkerConnections(sock)
        first = await connections.score(b"{}")
        second = await connections.score(b"{}")  # the pooled connection was closed by the server
        assert (first.status, first.body, second.body) == (200, b"[1]", b"[1]")
        connections.close()
        server.close()

    asyncio.run(main())


def test_chunked_answer_and_error_status(tmp_path: Path) -> None:
    sock = str(tmp_path / "w.sock")
    chunked = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
               b"4\r\n{\"a\"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n")

    async def main() -> None:
        server = await _serve(sock, [chunked], close_after=False)
        answer = await WorkerConnections(sock).score(b"{}")
        assert (answer.status, answer.body) == (400, b'{"a": 1}')
        server.close()

    asyncio.run(main())


def test_no_worker_is_an_upstream_error(tmp_path: Path) -> None:
    with pytest.raises(UpstreamError, match="cannot connect"):
        asyncio.run(WorkerConnections(str(tmp_path / "none.sock")).score(b"{}"))
