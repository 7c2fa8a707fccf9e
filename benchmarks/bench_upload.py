"""Upload throughput of one large file: the SDK's upload against ``cp`` + ``sync FILE``.

One mlyard server (fresh workspace, loopback) serves every round. Before each round, not timed,
a new file of random bytes is written and fsynced, so every mlyard round uploads content the
server has never seen (it skips files it holds, and a path's content never changes).

- mlyard: ``plan_upload`` (sha256 of the file) + ``upload_plan`` (HEAD, then a streamed PUT; the
  server hashes, writes a temp file, fsyncs it, verifies the sha256, renames it and fsyncs the folder).
- peer: ``cp SRC DST`` then ``sync DST`` (GNU coreutils: fsync of that one file) to a folder on the
  same filesystem, so both end with the bytes durable on disk.

Source, copy and upload are deleted after every round.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from harness import Comparison, alternate
from procs import free_port, init_workspace, mlyard_server_args, package_version, spawn, stop, wait_healthy

if TYPE_CHECKING:
    from mlyard.client import MlyardClient

DATASTORE = "workspaceblobstore"
BLOCK = 8 * 1024 * 1024


def write_random(path: Path, size: int) -> None:
    """``size`` random bytes at ``path``, fsynced so no writeback of it overlaps the timed part."""
    with path.open("wb") as f:
        left = size
        while left:
            n = min(BLOCK, left)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())


def _coreutils_version() -> str:
    out = subprocess.run(["cp", "--version"], capture_output=True, text=True, check=False).stdout
    first = out.splitlines()[0] if out else ""  # "cp (GNU coreutils) 9.1"
    return first.removeprefix("cp (").replace(") ", " ") or "cp"


class UploadRounds:
    """The per-round state: the source file, the copy, and where the server stored the upload."""

    def __init__(self, base: Path, client: MlyardClient, datastore_root: Path, size: int) -> None:
        self.base, self.client, self.root, self.size = base, client, datastore_root, size
        self.src = base / "src" / "payload.bin"
        self.dst = base / "cp-target" / "payload.bin"
        self.src.parent.mkdir()
        self.dst.parent.mkdir()
        self.uploaded: Path | None = None

    def before(self, index: int) -> None:
        write_random(self.src, self.size)

    def mlyard(self) -> float:
        from mlyard.client.uploads import plan_upload, upload_plan

        start = time.perf_counter()
        plan = plan_upload(self.src)
        upload_plan(self.client.transport, DATASTORE, plan)
        elapsed = time.perf_counter() - start
        self.uploaded = self.root / plan.folder
        stored = self.uploaded / plan.basename
        if stored.stat().st_size != self.size:
            raise RuntimeError(f"upload stored {stored.stat().st_size} bytes at {stored}, expected {self.size}")
        return elapsed

    def cp(self) -> float:
        start = time.perf_counter()
        subprocess.run(["cp", str(self.src), str(self.dst)], check=True)
        subprocess.run(["sync", str(self.dst)], check=True)
        return time.perf_counter() - start

    def after(self, index: int) -> None:
        self.src.unlink(missing_ok=True)
        self.dst.unlink(missing_ok=True)
        if self.uploaded is not None:
            shutil.rmtree(self.uploaded, ignore_errors=True)
            self.uploaded = None


def _check_disk(base: Path, size: int) -> None:
    free = shutil.disk_usage(base).free
    need = 3 * size + 1_000_000_000  # source + copy + upload, and a margin
    if free < need:
        raise RuntimeError(f"{base} has {free / 1e9:.1f} GB free; the upload benchmark needs {need / 1e9:.1f} GB")


def run(rounds: int, progress: Callable[[str], None] | None = None, size_mb: int = 200) -> Comparison:
    size = size_mb * 1_000_000
    from mlyard.client import MlyardClient  # here, not at the top: the other benchmarks run without it

    base = Path(tempfile.mkdtemp(prefix="mlyard-bench-upload-"))
    proc = None
    client = None
    try:
        _check_disk(base, size)
        ws, port = base / "ws", free_port()
        init_workspace(ws, port)
        log = base / "server.log"
        proc = spawn(mlyard_server_args(ws), log)
        wait_healthy(proc, port, log)
        saved = yaml.safe_load((ws / ".mlyard" / "client.yaml").read_text())
        client = MlyardClient(saved["url"], saved["token"])
        stores = {d["name"]: d for d in client.transport.json("GET", "/api/v1/datastores")}
        state = UploadRounds(base, client, Path(stores[DATASTORE]["root"]), size)
        subject_s, peer_s = alternate(rounds, state.mlyard, state.cp, before=state.before, after=state.after,
                                      progress=progress)
    finally:
        if client is not None:
            client.close()
        stop(proc)
        shutil.rmtree(base, ignore_errors=True)
    return Comparison(
        name=f"Upload one {size_mb} MB file",
        subject=f"mlyard {package_version('mlyard')} SDK: plan_upload + upload_plan to {DATASTORE} (loopback)",
        peer=f"cp + sync FILE, same disk ({_coreutils_version()})",
        workload=f"{size} random bytes, new content every round, written and fsynced before the clock starts",
        subject_s=subject_s,
        peer_s=peer_s,
        bytes_per_round=size,
        notes=["MB = 10^6 bytes; the source file is in the page cache for both",
               "1 warm-up round of each is not counted"],
    )
