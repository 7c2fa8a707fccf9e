"""A server killed with SIGKILL while four client processes register assets loses nothing it confirmed.

Each client journals (fsynced) only what ``create()`` confirmed. After the kill the server is
restarted on the same workspace, and then every confirmed asset must be there with its bytes,
no asset version may be partial, no file under a real datastore name may be partial, and every
create that was cut off must succeed when the user simply runs it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlyard.client import MlyardClient
from mlyard.core.hashing import sha256_file, tree_hash
from mlyard.specs.references import parse_datastore_uri
from tests.support import crash_client
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.slow

CLIENTS = 4
KILL_AFTER_CONFIRMED = 12  # confirmed creates, all clients together, before the kill
TMP_PREFIX = ".mlyard-tmp-"  # where the server streams an upload before renaming it into place


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    *lines, _unfinished = path.read_text().split("\n")  # a client may be writing the last line right now
    return [json.loads(line) for line in lines]


def confirmed(workdirs: list[Path]) -> list[dict[str, Any]]:
    return [rec for w in workdirs for rec in read_jsonl(w / "journal.jsonl")]


def server_log(server: ServerProcess) -> str:
    return server.log_path.read_text(errors="replace")[-4000:] if server.log_path.exists() else ""


def read_store(server: ServerProcess, sql: str) -> list[tuple[Any, ...]]:
    """Rows of the workspace's SQLite store, opened read-only beside the running server."""
    db = sqlite3.connect(f"file:{server.workspace / 'mlyard.db'}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def store_versions(server: ServerProcess) -> dict[tuple[str, str], tuple[str, list[tuple[str, str, int]]]]:
    """(name, version) -> (path URI, [(file path, sha256, size)]) of every data asset version in the store."""
    versions: dict[tuple[str, str], tuple[str, list[tuple[str, str, int]]]] = {}
    for asset_id, name, version, uri in read_store(server, "SELECT id, name, version, path FROM assets "
                                                          "WHERE kind = 'data' ORDER BY id"):
        files = read_store(server, f"SELECT path, sha256, size FROM asset_files WHERE asset_id = {int(asset_id)} "
                                   "ORDER BY path")
        versions[(name, version)] = (uri, [tuple(f) for f in files])
    return versions


def store_blobs(server: ServerProcess) -> list[tuple[str, str, int]]:
    return read_store(server, "SELECT path, sha256, size FROM blobs WHERE datastore = 'workspaceblobstore'")


@pytest.fixture
def crash_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "workspace", free_port()).init().start()
    yield proc
    proc.stop()


def start_clients(server: ServerProcess, root: Path) -> tuple[list[subprocess.Popen[bytes]], list[Path]]:
    procs, workdirs = [], []
    env = {**os.environ, "MLYARD_TOKEN": server.token}
    for c in range(CLIENTS):
        workdir = root / f"client-{c}"
        workdir.mkdir(parents=True)
        log = (root / f"client-{c}.log").open("wb")
        procs.append(subprocess.Popen(
            [sys.executable, crash_client.__file__, server.url, str(c), str(workdir)],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        ))
        log.close()
        workdirs.append(workdir)
    return procs, workdirs


def kill_mid_upload(server: ServerProcess, root: Path, workdirs: list[Path],
                    procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGKILL the server once enough creates were confirmed, while a client holds an upload half-sent."""
    deadline = time.monotonic() + 30
    while len(confirmed(workdirs)) < KILL_AFTER_CONFIRMED:
        if time.monotonic() > deadline or all(p.poll() is not None for p in procs):
            server.kill()
            pytest.fail(f"only {len(confirmed(workdirs))} creates confirmed before the deadline:\n{server_log(server)}")
        time.sleep(0.05)
    (root / "hold").touch()
    deadline = time.monotonic() + 20
    while not any((w / "held").exists() for w in workdirs):
        assert time.monotonic() < deadline, "no client paused in the middle of an upload"
        time.sleep(0.005)
    time.sleep(0.5)  # let the server take in and write the first chunk: it then waits for the rest
    server.kill()
    (root / "release").touch()


def restart(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> ServerProcess:
    """The same workspace served again, on a fresh port (same-port restarts have their own test)."""
    again = ServerProcess(server.workspace, free_port(), token=server.token)
    monkeypatch.setenv("MLYARD_PORT", str(again.port))
    return again.start()


def test_sigkill_during_concurrent_creates_loses_nothing_confirmed(
    crash_server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = crash_server
    procs, workdirs = start_clients(server, tmp_path / "clients")
    try:
        kill_mid_upload(server, tmp_path / "clients", workdirs, procs)
        for p in procs:
            p.wait(timeout=30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    # every client stopped because the server went away, not on some other error
    for c, workdir in enumerate(workdirs):
        error_file = workdir / "error.json"
        client_log = (tmp_path / "clients" / f"client-{c}.log").read_text(errors="replace")
        assert error_file.exists(), f"client {c} did not stop on an error:\n{client_log}"
        error = json.loads(error_file.read_text())
        assert error["type"] == "ServerUnavailableError", (c, error, client_log)

    # a client cut off mid-request sees the connection drop, not a refused connection
    assert any("ConnectError" not in json.loads((w / "error.json").read_text())["message"] for w in workdirs)

    journal = confirmed(workdirs)
    begun = [rec for w in workdirs for rec in read_jsonl(w / "begun.jsonl")]
    cut_off = [rec for rec in begun if rec["name"] not in {j["name"] for j in journal}]
    assert len(journal) >= KILL_AFTER_CONFIRMED
    assert len(cut_off) == CLIENTS  # each client stopped inside the create it had begun

    server = restart(server, monkeypatch)
    try:
        check_after_restart(server, journal, cut_off, tmp_path)
    finally:
        server.stop()


def check_after_restart(
    server: ServerProcess, journal: list[dict[str, Any]], cut_off: list[dict[str, Any]], tmp_path: Path
) -> None:
    client = MlyardClient(server.url, server.token)
    blobstore = server.workspace / "artifacts" / "workspaceblobstore"

    # 1. every confirmed create survived, with its bytes
    for rec in journal:
        asset = client.data.get(rec["name"], rec["version"])
        assert [(f["sha256"], f["size"]) for f in asset["files"]] == [(rec["sha256"], rec["size"])], rec["name"]
        out = client.data.download(rec["name"], rec["version"], download_path=tmp_path / "downloads")
        got = out / asset["files"][0]["path"]
        assert hashlib.sha256(got.read_bytes()).hexdigest() == rec["sha256"], rec["name"]

    # 2. no partial asset version: every version in the store has all its files, whole, in the datastore
    versions = store_versions(server)
    assert {(rec["name"], "1") for rec in journal} <= set(versions)
    for (name, version), (uri, files) in versions.items():
        assert files, f"{name}:{version} has no files"
        folder = posixpath.dirname(parse_datastore_uri(uri).path.rstrip("/"))
        for path, sha, size in files:
            on_disk = blobstore / folder / path
            assert on_disk.is_file(), f"{name}:{version}: {on_disk} is missing"
            assert sha256_file(on_disk) == (sha, size), f"{name}:{version}: {on_disk} differs from its record"

    # 3. every recorded blob is whole on disk, and no file under a real name is partial: an upload
    #    lands at LocalUpload/<tree hash>/<name>, so its content must hash back to its folder name
    for path, sha, size in store_blobs(server):
        assert sha256_file(blobstore / path) == (sha, size), f"blob {path} differs from its record"
    leftovers = []
    for dirpath, _dirs, names in os.walk(blobstore):
        for fname in names:
            full = Path(dirpath) / fname
            rel = full.relative_to(blobstore).as_posix()
            if fname.startswith(TMP_PREFIX):
                leftovers.append(rel)  # a temporary file a SIGKILL left behind: allowed, never served
                continue
            parts = rel.split("/")
            assert len(parts) == 3 and parts[0] == "LocalUpload", f"unexpected file {rel}"
            _, tree, basename = parts
            sha, size = sha256_file(full)
            assert tree_hash([(basename, sha, size)]) == tree, f"{rel} is not the content its folder names"
    for rel in leftovers:
        r = httpx.get(f"{server.url}/api/v1/datastores/workspaceblobstore/paths/{rel}", headers=server.headers())
        assert r.status_code in (400, 404), f"temporary file {rel} is served: {r.status_code}"

    # 4. a create that was cut off succeeds when run again, and so does a new one
    for rec in cut_off:
        spec = {"name": rec["name"], "version": "1", "type": "uri_file", "path": rec["path"]}
        again = client.data.create(spec)
        assert again["version"] == "1" and again["files"][0]["sha256"] == rec["sha256"]
        out = client.data.download(rec["name"], "1", download_path=tmp_path / "retried")
        assert hashlib.sha256((out / again["files"][0]["path"]).read_bytes()).hexdigest() == rec["sha256"]
    fresh = tmp_path / "after-restart.bin"
    fresh.write_bytes(os.urandom(300 * 1024))
    created = client.data.create({"name": "crash-after-restart", "version": "1", "type": "uri_file",
                                  "path": str(fresh)})
    assert created["created"] is True
    out = client.data.download("crash-after-restart", "1", download_path=tmp_path / "fresh")
    assert (out / "after-restart.bin").read_bytes() == fresh.read_bytes()

    # 5. the API lists exactly the versions the store holds, with the same files
    versions = store_versions(server)
    listed = {}
    for latest in client.data.list(include_archived=True):
        for v in client.data.list(latest["name"], include_archived=True):
            listed[(v["name"], v["version"])] = (v["path"], [(f["path"], f["sha256"], f["size"]) for f in v["files"]])
    assert listed == versions
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-6000:]


def test_server_restarts_on_its_port_after_sigkill(crash_server: ServerProcess) -> None:
    """A crashed server comes back on the port clients know, while its old connections linger."""
    with httpx.Client(headers=crash_server.headers()) as http:
        assert http.get(f"{crash_server.url}/api/v1/workspace").status_code == 200
        crash_server.kill()
    crash_server.start()  # same workspace, same port
    assert httpx.get(f"{crash_server.url}/api/v1/data", headers=crash_server.headers()).json() == []
