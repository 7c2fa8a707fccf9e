"""A large file's upload cut half-way (the client killed with SIGKILL, the connection dropped, the server killed and
restarted) goes on from where the server got to when the user runs the same command again: a real proxy counts the
bytes the rerun sends, the server's log says where it went on from, and the data comes back byte-identical. Run on a
workspace whose default datastore is local and on one whose default datastore is an Azurite container."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from mlyard.client.uploads import RESUMABLE_FROM, UploadPlan, plan_upload
from tests.support.server import ServerProcess, free_port, run_cli
from tests.support.tcp_proxy import CountingProxy

pytestmark = pytest.mark.slow

BIG = 40 << 20
HOLD = 24 << 20  # the client bytes let through before the upload is cut


@pytest.fixture(scope="module", params=["local", pytest.param("azurite", marks=pytest.mark.azurite)])
def yard(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    ws = tmp_path_factory.mktemp(f"ws-{request.param}") / "workspace"
    server = ServerProcess(ws, free_port()).init().start()
    try:
        if request.param == "azurite":
            azurite = request.getfixturevalue("azurite")
            container = azurite.create_container(f"resume{os.getpid()}")
            spec = ws.parent / "blobs.yml"
            spec.write_text(yaml.safe_dump(azurite.datastore_spec("blobs", container)))
            run_cli("datastore", "create", "-f", str(spec), "--set-default", env=server.env())
        yield server
    finally:
        server.stop()


def _data(tmp_path: Path, name: str) -> tuple[Path, UploadPlan, str]:
    """A folder holding one large file and one small one, its plan, and a data YAML naming it."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "a-notes.txt").write_text("small, sent whole\n")
    (folder / "big.bin").write_bytes(os.urandom(BIG))
    assert BIG >= RESUMABLE_FROM
    spec = tmp_path / f"{name}.yml"
    spec.write_text(yaml.safe_dump({"name": name, "version": "1", "type": "uri_folder", "path": str(folder)}))
    return folder, plan_upload(folder), str(spec)


def _start_cut_upload(server: ServerProcess, spec: str) -> tuple[subprocess.Popen[bytes], CountingProxy]:
    """``mlyard data create`` through a proxy that holds the upload once ``HOLD`` bytes went through."""
    proxy = CountingProxy(server.port, hold_after=HOLD).start()
    env = {**os.environ, "MLYARD_URL": proxy.url, "MLYARD_TOKEN": server.token, "MLYARD_TRANSFERS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mlyard", "data", "create", "-f", spec], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _until(lambda: proxy.sent >= HOLD, "the upload to reach the hold")
    return proc, proxy


def _until(done: object, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)


def _log_lines(server: ServerProcess, path: str) -> list[tuple[int, int, int]]:
    """(received, from byte, held) of every 'upload of ...' line the server logged for ``path``."""
    pattern = re.compile(rf"upload of [^:]+:{re.escape(path)}: (\d+) bytes received from byte (\d+); (\d+) of")
    return [tuple(map(int, m.groups())) for m in pattern.finditer(server.log_path.read_text())]  # type: ignore[misc]


def _rerun(server: ServerProcess, spec: str) -> int:
    """Run the same command again through a counting proxy; the bytes it sent."""
    proxy = CountingProxy(server.port).start()
    try:
        run_cli("data", "create", "-f", spec, env={"MLYARD_URL": proxy.url, "MLYARD_TOKEN": server.token})
        return proxy.sent
    finally:
        proxy.stop()


def _same_back(server: ServerProcess, name: str, folder: Path, tmp_path: Path) -> None:
    run_cli("data", "download", "-n", name, "-v", "1", "--download-path", str(tmp_path / "down"), env=server.env())
    got = tmp_path / "down" / name / name / "big.bin"
    assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256((folder / "big.bin").read_bytes()).digest()
    assert not list((server.workspace / ".mlyard" / "uploads").glob("*.part"))  # the part is gone once written


def _not_registered(server: ServerProcess, name: str, plan: UploadPlan) -> None:
    shown = run_cli("data", "show", "-n", name, "-v", "1", env=server.env(), check=False)
    assert shown.returncode == 1 and "not found" in (shown.stderr + shown.stdout).lower()
    head = httpx.head(f"{server.url}/api/v1/datastores/{_default(server)}/paths/{plan.folder}/{plan.basename}/big.bin",
                      headers=server.headers())
    assert head.status_code == 404  # no big.bin, whole or half, under its name


def _default(server: ServerProcess) -> str:
    return str(httpx.get(f"{server.url}/api/v1/workspace", headers=server.headers()).json()["default_datastore"])


def test_a_killed_client_goes_on_from_where_the_server_got_to(yard: ServerProcess, tmp_path: Path) -> None:
    folder, plan, spec = _data(tmp_path, "killed")
    path = f"{plan.folder}/killed/big.bin"
    proc, proxy = _start_cut_upload(yard, spec)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proxy.stop()  # the killed client's connection closes
    _until(lambda: _log_lines(yard, path), "the server to log what it kept")
    ((received, start, held),) = _log_lines(yard, path)
    assert start == 0 and held == received and 16 << 20 <= held < BIG
    _not_registered(yard, "killed", plan)

    sent = _rerun(yard, spec)
    assert _log_lines(yard, path)[1] == (BIG - held, held, BIG)  # the server got only the rest
    assert BIG - held <= sent < BIG - held + (1 << 20)  # and the client sent only the rest (and a few requests)
    _same_back(yard, "killed", folder, tmp_path)


def test_an_upload_cut_by_a_server_kill_goes_on_after_the_restart(yard: ServerProcess, tmp_path: Path) -> None:
    folder, plan, spec = _data(tmp_path, "restarted")
    path = f"{plan.folder}/restarted/big.bin"
    proc, proxy = _start_cut_upload(yard, spec)
    parts = yard.workspace / ".mlyard" / "uploads"
    _until(lambda: sum(p.stat().st_size for p in parts.glob("*.part")) >= 16 << 20, "the part to reach 16 MiB")
    yard.kill()
    proxy.stop()
    assert proc.wait(timeout=60) == 1
    yard.start()
    (part,) = parts.glob("*.part")
    held = part.stat().st_size
    assert 16 << 20 <= held < BIG
    _not_registered(yard, "restarted", plan)

    sent = _rerun(yard, spec)
    assert _log_lines(yard, path)[-1] == (BIG - held, held, BIG)
    assert BIG - held <= sent < BIG - held + (1 << 20)
    _same_back(yard, "restarted", folder, tmp_path)


def test_gc_removes_a_part_nobody_resumed(yard: ServerProcess, tmp_path: Path) -> None:
    folder, plan, spec = _data(tmp_path, "abandoned")
    proc, proxy = _start_cut_upload(yard, spec)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proxy.stop()
    path = f"{plan.folder}/abandoned/big.bin"
    _until(lambda: _log_lines(yard, path), "the server to log what it kept")
    gc = ["--workspace", str(yard.workspace), "workspace", "gc", "-o", "json"]
    kept = json.loads(run_cli(*gc).stdout)  # within the grace period: kept
    assert not [i for i in kept["items"] if i["kind"] == "partial upload"]
    env = {"MLYARD_GC_ORPHAN_UPLOADS_DAYS": "0"}
    listed = [i for i in json.loads(run_cli(*gc, env=env).stdout)["items"] if i["kind"] == "partial upload"]
    assert [i["what"] for i in listed] == [f"{_default(yard)}:{path} ({listed[0]['bytes']} of {BIG} bytes)"]
    run_cli(*gc, "--yes", env=env)
    assert not list((yard.workspace / ".mlyard" / "uploads").iterdir())
    sent = _rerun(yard, spec)  # nothing left to go on from: sent whole
    assert sent >= BIG
    _same_back(yard, "abandoned", folder, tmp_path)
