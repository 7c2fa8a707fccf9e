"""A load generator for the serving tests, run as its own process (a separate client, as the issue asks):

    python -m tests.support.load_client '{"url": ..., "headers": {...}, "body": {...}, "clients": 8,
                                          "seconds": 30, "out": "timeline.json"}'

``clients`` threads, each with its own kept-alive connection, send the body back to back for ``seconds``. Every
answer is recorded as ``[seconds since start, status]`` (a transport error as status 0, with its text kept), and
written as JSON to ``out`` at the end, with the wall-clock start so the test can line its actions up with the
timeline. It prints ``started`` once the first answer is in.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import httpx


def main(config: dict[str, Any]) -> None:
    results: list[tuple[float, int]] = []
    errors: list[str] = []
    lock = threading.Lock()
    started = threading.Event()
    wall, t0 = time.time(), time.monotonic()
    end = t0 + float(config["seconds"])
    body = json.dumps(config["body"]).encode()
    headers = {"content-type": "application/json", **config.get("headers", {})}

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < end:
                try:
                    status = http.post(config["url"], content=body, headers=headers).status_code
                except httpx.HTTPError as exc:
                    status = 0
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                with lock:
                    results.append((round(time.monotonic() - t0, 4), status))
                if not started.is_set():
                    started.set()
                    print("started", flush=True)

    threads = [threading.Thread(target=client) for _ in range(int(config["clients"]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(config["out"], "w") as out:
        json.dump({"wall_start": wall, "results": results, "errors": errors[:20]}, out)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
