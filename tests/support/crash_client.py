"""A client process that registers data assets in a loop until the server goes away.

Run as ``python crash_client.py URL CLIENT_ID WORKDIR`` with the token in ``MLYARD_TOKEN``.
Each round writes a file of random bytes, announces it in ``WORKDIR/begun.jsonl``, creates
``crash-<client>-<i>:1`` through the SDK and, only once ``create()`` has returned, appends the
asset and the file's sha256 to ``WORKDIR/journal.jsonl``. Every line is fsynced before the next
step, so after the server is killed the journal is exactly what the client was told had been
created. The first error ends the loop; its class and message go to ``WORKDIR/error.json``.

While a file named ``hold`` exists beside ``WORKDIR``, the next upload of more than one chunk
pauses after its first chunk went out, says so by creating ``WORKDIR/held`` and goes on once a
file named ``release`` appears there: the server holds a half-received upload meanwhile, and a
test can kill it at exactly that moment.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import IO, Any

from mlyard.client import MlyardClient
from mlyard.core.hashing import CHUNK

MIN_SIZE = 256 * 1024
MAX_SIZE = 2 * 1024 * 1024
MAX_ROUNDS = 10_000
HOLD_S = 10.0  # at most


def append(out: IO[str], record: dict[str, Any]) -> None:
    out.write(json.dumps(record) + "\n")
    out.flush()
    os.fsync(out.fileno())


class HoldMidUpload:
    """SDK progress callback that pauses a multi-chunk upload after its first chunk, on request."""

    def __init__(self, workdir: Path) -> None:
        self.hold = workdir.parent / "hold"
        self.release = workdir.parent / "release"
        self.held = workdir / "held"
        self.sent = 0

    def __call__(self, _path: str, nbytes: int) -> None:
        # called as each chunk is read for sending: past the first, the first is on the wire
        if self.sent >= CHUNK and self.hold.exists() and not self.held.exists():
            self.held.touch()
            deadline = time.monotonic() + HOLD_S
            while not self.release.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        self.sent += nbytes


def main(url: str, client_id: str, workdir: Path) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"crash-{client_id}")
    client = MlyardClient(url, os.environ["MLYARD_TOKEN"])
    with (workdir / "begun.jsonl").open("a") as begun, (workdir / "journal.jsonl").open("a") as journal:
        for i in range(MAX_ROUNDS):
            name = f"crash-{client_id}-{i}"
            local = workdir / f"{name}.bin"
            content = os.urandom(rng.randint(MIN_SIZE, MAX_SIZE))
            local.write_bytes(content)
            sha = hashlib.sha256(content).hexdigest()
            spec = {"name": name, "version": "1", "type": "uri_file", "path": str(local)}
            append(begun, {"name": name, "version": "1", "sha256": sha, "size": len(content), "path": str(local)})
            try:
                client.data.create(spec, progress=HoldMidUpload(workdir))
            except Exception as exc:  # the server is gone: stop, saying how
                (workdir / "error.json").write_text(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
                return 0
            append(journal, {"name": name, "version": "1", "sha256": sha, "size": len(content)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
