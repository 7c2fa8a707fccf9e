"""``mlyard workspace backup`` while a training loop logs metrics, then ``restore``: the restored workspace passes
``workspace check`` and holds every metric point acknowledged before the backup began; a damaged backup is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.server import ServerProcess, free_port, run_cli

NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
# A training loop: one log_metric call at a time, each acknowledged on stdout once the server answered.
LOGGER = """
import sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
run = sys.argv[2]
step = 0
while True:
    client.log_metric(run, "loss", 1.0 / (step + 1), step=step)
    print(step, flush=True)
    step += 1
"""


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "workspace", free_port()).init().start()
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    for key, value in {**NO_TELEMETRY, "MLFLOW_TRACKING_TOKEN": proc.token}.items():
        monkeypatch.setenv(key, value)
    yield proc
    proc.stop()


def test_a_backup_taken_during_logging_restores_every_acknowledged_metric(server: ServerProcess,
                                                                          tmp_path: Path) -> None:
    from mlflow import MlflowClient

    data = tmp_path / "rows"
    data.mkdir()
    (data / "rows.csv").write_text("a,b\n" + "1,2\n" * 5000)
    run_cli("data", "create", "--name", "rows", "--type", "uri_folder", "--path", str(data), env=server.env())
    client = MlflowClient(server.url)
    run_id = client.create_run("0", run_name="training").info.run_id
    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(os.urandom(100_000))
    client.log_artifact(run_id, str(artifact))

    logger = subprocess.Popen([sys.executable, "-c", LOGGER, server.url, run_id], stdout=subprocess.PIPE, text=True)
    assert logger.stdout is not None
    try:
        acknowledged = -1
        for line in logger.stdout:
            acknowledged = int(line)
            if acknowledged >= 30:
                break
        # every point up to `acknowledged` was answered before the backup began; the loop goes on meanwhile
        backup = run_cli("--workspace", str(server.workspace), "workspace", "backup", str(tmp_path / "backup"))
        assert "verified" in backup.stdout
        later = int(next(iter(logger.stdout)))
        assert later > acknowledged  # the server kept answering while it was backed up
    finally:
        logger.kill()
        logger.wait()

    restored = tmp_path / "restored"
    out = run_cli("workspace", "restore", str(tmp_path / "backup"), str(restored))
    assert "check ok" in out.stdout
    checked = run_cli("--workspace", str(restored), "workspace", "check")
    assert checked.stdout.rstrip().endswith("ok") and "1 upload folders" in checked.stdout

    config = yaml.safe_load((restored / "mlyard.yaml").read_text())
    config["port"] = free_port()
    (restored / "mlyard.yaml").write_text(yaml.safe_dump(config))
    second = ServerProcess(restored, config["port"])
    second.token = server.token  # the same store, the same tokens
    second.start()
    try:
        copy = MlflowClient(second.url)
        steps = {m.step for m in copy.get_metric_history(run_id, "loss")}
        assert set(range(acknowledged + 1)) <= steps
        assert [a.path for a in copy.list_artifacts(run_id)] == ["weights.bin"]
        got = Path(copy.download_artifacts(run_id, "weights.bin", str(tmp_path / "dl")))
        assert got.read_bytes() == artifact.read_bytes()
        shown = json.loads(run_cli("data", "show", "-n", "rows", "-v", "1", "-o", "json", env=second.env()).stdout)
        assert shown["name"] == "rows"
        run_cli("data", "download", "-n", "rows", "-v", "1", "--download-path", str(tmp_path / "rows-dl"),
                env=second.env())
        assert [p.read_text() for p in (tmp_path / "rows-dl").rglob("rows.csv")] == ["a,b\n" + "1,2\n" * 5000]
    finally:
        second.stop()


def test_a_damaged_or_unfinished_backup_is_refused(server: ServerProcess, tmp_path: Path) -> None:
    data = tmp_path / "rows"
    data.mkdir()
    (data / "rows.csv").write_text("a,b\n1,2\n")
    run_cli("data", "create", "--name", "rows", "--type", "uri_folder", "--path", str(data), env=server.env())
    run_cli("--workspace", str(server.workspace), "workspace", "backup", str(tmp_path / "b"))
    damaged = next((tmp_path / "b" / "files").rglob("rows.csv"))
    damaged.write_text("a,b\n1,3\n")
    out = run_cli("workspace", "restore", str(tmp_path / "b"), str(tmp_path / "r1"), check=False)
    assert out.returncode == 1 and "does not match the sha256 the backup recorded" in out.stderr
    assert not (tmp_path / "r1").exists()  # nothing half-restored
    (tmp_path / "b" / "manifest.json").unlink()
    out = run_cli("workspace", "restore", str(tmp_path / "b"), str(tmp_path / "r2"), check=False)
    assert out.returncode == 1 and "not a finished mlyard backup" in out.stderr and not (tmp_path / "r2").exists()
    out = run_cli("--workspace", str(server.workspace), "workspace", "backup", str(server.workspace / "inside"),
                  check=False)
    assert out.returncode == 1 and "outside it" in out.stderr
    # the workspace itself damaged: check names the file and exits 1
    live = next((server.workspace / "artifacts").rglob("rows.csv"))
    live.write_text("a,b\n9,9\n")
    checked = run_cli("--workspace", str(server.workspace), "workspace", "check", check=False)
    assert checked.returncode == 1 and "corrupt: workspaceblobstore:LocalUpload/" in checked.stdout
    assert "rows.csv: sha256" in checked.stdout and checked.stdout.rstrip().endswith("1 problem(s)")
