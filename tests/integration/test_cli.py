"""The CLI as a user runs it: real processes, a real server, the quick-start files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from tests.support.server import ServerProcess, free_port, run_cli

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
INVALID = ROOT / "tests" / "specs" / "corpus" / "invalid"


def test_help_lists_the_commands() -> None:
    out = run_cli("--help").stdout
    for word in ("workspace", "server", "data", "environment", "model", "component"):
        assert word in out


def test_workspace_server_lifecycle(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    port = free_port()
    init = run_cli("workspace", "init", str(ws), "--port", str(port))
    assert "admin token (shown once" in init.stdout
    token = yaml.safe_load((ws / ".mlyard" / "client.yaml").read_text())["token"]
    assert token in init.stdout
    assert token not in (ws / "mlyard.db").read_bytes().decode("latin-1")  # only its hash is stored
    assert (ws / ".mlyard" / "client.yaml").stat().st_mode & 0o077 == 0
    again = run_cli("workspace", "init", str(ws), check=False)
    assert again.returncode == 1 and "already an mlyard workspace" in again.stderr
    started = run_cli("--workspace", str(ws), "server", "start")
    assert f"http://127.0.0.1:{port}" in started.stdout
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    assert "running" in run_cli("--workspace", str(ws), "server", "status").stdout
    # commands run inside the workspace folder find the server and token on their own
    assert run_cli("data", "list", "-o", "json", cwd=ws).stdout.strip() == "[]"
    stopped = run_cli("--workspace", str(ws), "server", "stop")
    assert "stopped" in stopped.stdout
    assert not (ws / ".mlyard" / "server.pid").exists()
    assert "stopped" in run_cli("--workspace", str(ws), "server", "status").stdout


def test_asset_commands(server: ServerProcess, tmp_path: Path) -> None:
    env = server.env()
    created = run_cli("data", "create", "-f", str(QUICKSTART / "data.yml"), "--name", "cli-employees", env=env)
    assert "data cli-employees:1 created" in created.stdout
    again = run_cli("data", "create", "-f", str(QUICKSTART / "data.yml"), "--name", "cli-employees", env=env)
    assert "exists, unchanged" in again.stdout
    shown = json.loads(run_cli("data", "show", "-n", "cli-employees@latest", "-o", "json", env=env).stdout)
    assert shown["type"] == "uri_file" and shown["tags"] == {"source": "mlyard-quickstart"}
    as_yaml = yaml.safe_load(run_cli("data", "show", "-n", "cli-employees", "-v", "1", "-o", "yaml", env=env).stdout)
    assert as_yaml["version"] == "1"
    table = run_cli("data", "list", env=env).stdout
    assert "cli-employees" in table
    run_cli("data", "download", "-n", "cli-employees:1", "--download-path", str(tmp_path), env=env)
    downloaded = tmp_path / "cli-employees" / "employees.csv"
    assert downloaded.read_bytes() == (QUICKSTART / "data/employees.csv").read_bytes()
    run_cli("data", "archive", "-n", "cli-employees", env=env)
    assert "cli-employees" not in run_cli("data", "list", env=env).stdout
    assert "cli-employees" in run_cli("data", "list", "--include-archived", env=env).stdout
    run_cli("data", "restore", "-n", "cli-employees", env=env)
    env_created = run_cli("environment", "create", "-f", str(QUICKSTART / "train-env.yml"), "-o", "json", env=env)
    spec = json.loads(env_created.stdout)["spec"]
    assert spec["conda_file"]["dependencies"][-1]["pip"][0].startswith("mlflow")


def test_shortcut_create_without_a_file(server: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(b"model")
    out = run_cli("model", "create", "--name", "quick-model", "--type", "custom_model", "--path", "m.pkl",
                  "-o", "json", cwd=tmp_path, env=server.env())
    assert json.loads(out.stdout)["files"][0]["path"] == "m.pkl"


def test_set_override_and_version_flag(server: ServerProcess) -> None:
    out = run_cli("data", "create", "-f", str(QUICKSTART / "data.yml"), "--set", "name=overridden",
                  "--set", "description=from --set", "-v", "7", "-o", "json", env=server.env())
    body = json.loads(out.stdout)
    assert (body["name"], body["version"], body["description"]) == ("overridden", "7", "from --set")


def test_errors_are_one_clear_line(server: ServerProcess, tmp_path: Path) -> None:
    missing = run_cli("data", "show", "-n", "nope", env=server.env(), check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr and "Traceback" not in missing.stderr
    unreachable = run_cli("data", "list", env={"MLYARD_URL": f"http://127.0.0.1:{free_port()}", "MLYARD_TOKEN": "x"},
                          check=False)
    assert unreachable.returncode == 1 and "cannot reach the mlyard server" in unreachable.stderr
    bad_token = run_cli("data", "list", env={**server.env(), "MLYARD_TOKEN": "wrong"}, check=False)
    assert bad_token.returncode == 1 and "invalid or revoked token" in bad_token.stderr
    nowhere = run_cli("data", "list", cwd=tmp_path, env={"MLYARD_URL": "", "MLYARD_TOKEN": ""}, check=False)
    assert nowhere.returncode == 1 and "mlyard workspace init" in nowhere.stderr


def test_invalid_corpus_creates_nothing(fresh_server: ServerProcess) -> None:
    files = sorted(INVALID.glob("*.y*ml"))
    assert len(files) >= 25
    kinds = {"data", "environment", "model", "component"}
    tried = 0
    for path in files:
        header = path.read_text().splitlines()[0]
        kind = header.split("kind=")[1].split()[0]
        if kind in kinds:
            proc = run_cli(kind, "create", "-f", str(path), env=fresh_server.env(), check=False)
        else:
            proc = run_cli("validate", "-f", str(path), "--kind", kind, check=False)
        tried += 1
        assert proc.returncode == 1, path.name
        assert f"{path.name}:" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert tried == len(files)
    for kind in sorted(kinds):
        assert run_cli(kind, "list", "-o", "json", "--include-archived", env=fresh_server.env()).stdout.strip() == "[]"
    listing = httpx.get(f"{fresh_server.url}/api/v1/datastores", headers=fresh_server.headers()).json()
    root = Path(listing[0]["root"])
    assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def test_help_imports_nothing_heavy() -> None:
    """``--help`` must not import FastAPI, SQLAlchemy or the server (measured in benchmarks/)."""
    code = "import sys, mlyard.cli.main as m; m.cli.main(['--help'], standalone_mode=False); " \
           "print(sorted(k for k in sys.modules if k.split('.')[0] in ('fastapi','sqlalchemy','httpx','rich')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
