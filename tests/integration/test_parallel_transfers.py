"""Several files at once, on a workspace whose default datastore is local and on one that is an Azurite container:
a folder of many files uploads and downloads byte-identical through at most ``transfers`` connections at once (a
real proxy counts them), and one file that fails fails the upload, naming the file, with nothing half-registered."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlyard.client import MlyardClient
from mlyard.client.uploads import plan_upload, upload_plan
from mlyard.core.errors import InvalidRequestError, NotFoundError
from tests.support.server import ServerProcess, free_port, run_cli
from tests.support.tcp_proxy import CountingProxy

pytestmark = pytest.mark.slow

FILES = 40


@pytest.fixture(scope="module", params=["local", pytest.param("azurite", marks=pytest.mark.azurite)])
def yard(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A fresh server whose default datastore is the workspace's folder, or a new Azurite container."""
    ws = tmp_path_factory.mktemp(f"ws-{request.param}") / "workspace"
    server = ServerProcess(ws, free_port()).init().start()
    try:
        if request.param == "azurite":
            azurite = request.getfixturevalue("azurite")
            container = azurite.create_container(f"parallel{os.getpid()}")
            spec = ws.parent / "blobs.yml"
            spec.write_text(yaml.safe_dump(azurite.datastore_spec("blobs", container)))
            run_cli("datastore", "create", "-f", str(spec), "--set-default", env=server.env())
        yield server
    finally:
        server.stop()


def _folder(root: Path, seed: str) -> Path:
    """Many small files in nested folders, and two larger than one 4 MiB block, each with its own content."""
    root.mkdir(parents=True)
    for i in range(FILES):
        size = (5 << 20) + i if i in (3, 17) else 1000 + 37 * i
        target = root / f"part{i % 4}" / f"file{i:02d}.bin"
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(hashlib.sha256(f"{seed}{i}".encode()).digest() * (size // 32) + os.urandom(size % 32))
    return root


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _client(server: ServerProcess, proxy: CountingProxy, transfers: int) -> MlyardClient:
    return MlyardClient(proxy.url, server.token, transfers=transfers)


def test_a_folder_goes_up_and_down_byte_identical_several_files_at_once(yard: ServerProcess, tmp_path: Path) -> None:
    source = _folder(tmp_path / "shards", "up")
    spec = {"name": "shards", "version": "1", "type": "uri_folder", "path": str(source)}
    proxy = CountingProxy(yard.port).start()
    try:
        with _client(yard, proxy, 8) as client:
            created = client.data.create(spec)
        assert created["path"].endswith("/shards")
        assert 2 <= proxy.most_at_once <= 8  # several files at once, never more than asked for
    finally:
        proxy.stop()

    proxy = CountingProxy(yard.port).start()
    try:
        with _client(yard, proxy, 8) as client:
            target = client.data.download("shards", "1", download_path=tmp_path / "down")
        assert 2 <= proxy.most_at_once <= 8
    finally:
        proxy.stop()
    assert _tree(target / "shards") == _tree(source)  # <download path>/<name>/<basename>/...
    assert not [p for p in target.rglob("*") if p.name.endswith(".part")]

    # one at a time still works, through one connection, and the CLI reads MLYARD_TRANSFERS
    proxy = CountingProxy(yard.port).start()
    try:
        env = {"MLYARD_URL": proxy.url, "MLYARD_TOKEN": yard.token, "MLYARD_TRANSFERS": "1"}
        run_cli("data", "download", "-n", "shards", "-v", "1", "--download-path", str(tmp_path / "one"), env=env)
        assert proxy.most_at_once == 1
    finally:
        proxy.stop()
    assert _tree(tmp_path / "one" / "shards" / "shards") == _tree(source)


def test_one_failing_file_fails_the_upload_naming_it_and_registers_nothing(
        yard: ServerProcess, tmp_path: Path) -> None:
    source = _folder(tmp_path / "broken", "broken")
    bad = source / "part1" / ".mlyard-tmp-notes.txt"  # a name the datastore refuses
    bad.write_text("kept aside\n")
    spec_file = tmp_path / "data.yml"
    spec_file.write_text(yaml.safe_dump({"name": "broken", "version": "1", "type": "uri_folder",
                                         "path": str(source)}))
    proc = run_cli("data", "create", "-f", str(spec_file), env=yard.env(), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert str(bad) in proc.stderr and "invalid datastore path" in proc.stderr
    with MlyardClient(yard.url, yard.token) as client:
        with pytest.raises(NotFoundError):
            client.data.get("broken", "1")
        # every file that arrived is whole and verified; the refused one is not there
        plan = plan_upload(source)
        stored = {f["path"]: f["size"] for f in client.datastores.list_files(client.workspace()["default_datastore"],
                                                                             plan.folder)}
        assert stored and all(".mlyard-tmp-" not in p for p in stored)
        sizes = {f"{plan.folder}/{f.path}": f.size for f in plan.files}
        assert all(sizes[p] == size for p, size in stored.items())

        # a file changed after it was hashed: refused by the server, named, and not stored under its name
        bad.unlink()
        plan = plan_upload(source)
        changed = source / "part2" / "file06.bin"
        changed.write_bytes(changed.read_bytes()[::-1])
        with pytest.raises(InvalidRequestError) as refused:
            upload_plan(client.transport, client.workspace()["default_datastore"], plan)
        assert str(changed) in refused.value.message and "sha256" in refused.value.message
        folder_files = client.datastores.list_files(client.workspace()["default_datastore"], plan.folder)
        assert f"{plan.folder}/broken/part2/file06.bin" not in {f["path"] for f in folder_files}
        assert all(".mlyard-tmp-" not in f["path"] for f in folder_files)
