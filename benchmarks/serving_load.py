"""The HTTP load driver of the serving benchmark, run as its own process so it never shares an interpreter with
the servers it measures.

    python benchmarks/serving_load.py '{"mode": "latency", "url": ..., "body": ..., "headers": {...},
                                        "requests": 1000}'
    python benchmarks/serving_load.py '{"mode": "throughput", ..., "clients": 8, "duration_s": 10}'

It is a plain asyncio HTTP/1.1 client (keep-alive, one connection per client, ``Content-Length`` or chunked
answers), lighter than httpx so that the driver's own CPU, which shares the machine with the servers, stays small;
it costs both servers the same. ``latency``: one client, sequential requests, every duration recorded.
``throughput``: ``clients`` connections each sending back to back for ``duration_s``; answers completed in that
window are counted. Prints one JSON object. Any answer other than 200 is counted as an error, with the first one's
status and body kept for the report.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit


class Connection:
    def __init__(self, host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> None:
        self.host, self.port = host, port
        head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
                f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
        self.request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def send(self) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.request)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        length, chunked, close = None, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readline()
            payload = b"".join(parts)
        else:
            payload = await self.reader.readexactly(length or 0)
        if close:
            self.writer.close()
            self.reader = self.writer = None
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _connection(spec: dict[str, Any]) -> Connection:
    url = urlsplit(spec["url"])
    return Connection(url.hostname or "127.0.0.1", url.port or 80, url.path, spec.get("headers", {}),
                      spec["body"].encode())


async def latency(spec: dict[str, Any]) -> dict[str, Any]:
    conn = _connection(spec)
    await conn.open()
    durations: list[float] = []
    errors, first_error = 0, None
    for _ in range(int(spec["requests"])):
        start = time.perf_counter()
        status, payload = await conn.send()
        durations.append(time.perf_counter() - start)
        if status != 200:
            errors += 1
            first_error = first_error or f"{status} {payload[:300].decode(errors='replace')}"
    conn.close()
    return {"durations_s": durations, "errors": errors, "first_error": first_error}


async def throughput(spec: dict[str, Any]) -> dict[str, Any]:
    conns = [_connection(spec) for _ in range(int(spec["clients"]))]
    await asyncio.gather(*(c.open() for c in conns))
    done = [0, 0]  # answered 200, other
    first_error: list[str] = []
    start = time.perf_counter()
    deadline = start + float(spec["duration_s"])

    async def client(conn: Connection) -> None:
        while time.perf_counter() < deadline:
            status, payload = await conn.send()
            if time.perf_counter() > deadline:
                break  # answered after the window: not counted
            if status == 200:
                done[0] += 1
            else:
                done[1] += 1
                if not first_error:
                    first_error.append(f"{status} {payload[:300].decode(errors='replace')}")

    await asyncio.gather(*(client(c) for c in conns))
    for c in conns:
        c.close()
    return {"ok": done[0], "errors": done[1], "seconds": float(spec["duration_s"]),
            "first_error": first_error[0] if first_error else None}


def main() -> int:
    spec = json.loads(sys.argv[1])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(latency(spec) if spec["mode"] == "latency" else throughput(spec))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
