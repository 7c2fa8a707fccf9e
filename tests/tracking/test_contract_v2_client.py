"""Users on MLflow 2.x clients: ``mlflow2_client_script.py`` run in a virtualenv of its own with mlflow 2.x.

The virtualenv is built once under ``.venv-mlflow2/`` (about two minutes) and reused while its pins match.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mlflow_server import NO_TELEMETRY, TrackingServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-mlflow2"
# The latest 2.x release; a new pin here rebuilds the virtualenv.
PINS = ["mlflow==2.22.5", "scikit-learn>=1.4"]
SCRIPT = Path(__file__).with_name("mlflow2_client_script.py")
CHECKS = ["client-is-2.x", "experiment", "run", "params", "metrics", "metric-history", "search-filter",
          "search-order-page", "list-artifacts", "download-artifacts", "register-model", "load-by-version",
          "transition-stage", "latest-versions", "load-by-stage", "missing-run"]


def _run(command: list[str], timeout: float) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"building {VENV.name} failed: {' '.join(command)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


@pytest.fixture(scope="session")
def v2_python() -> Path:
    """The Python of a virtualenv holding the latest MLflow 2.x client; built when missing or pinned otherwise."""
    python = VENV / "bin" / "python"
    stamp = VENV / "mlyard-pins.txt"
    wanted = "\n".join(PINS) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    shutil.rmtree(VENV, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(VENV)], timeout=120)
    _run([str(python), "-m", "pip", "install", "--quiet", *PINS], timeout=900)
    stamp.write_text(wanted)  # written last: a build cut short is redone next time
    return python


@pytest.mark.timeout(1200)
def test_v2_client_contract(tracking_server: TrackingServer, v2_python: Path, tmp_path: Path
                                 ) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env.update(NO_TELEMETRY, MLFLOW_TRACKING_URI=tracking_server.uri)
    if tracking_server.token is not None:
        env["MLFLOW_TRACKING_TOKEN"] = tracking_server.token
    proc = subprocess.run([str(v2_python), str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    output = proc.stdout + proc.stderr
    passed = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("CHECK ") and line.endswith("ok")]
    assert proc.returncode == 0, f"the mlflow 2.x client script failed:\n{output[-4000:]}"
    assert passed == CHECKS
    assert "ALL CHECKS PASSED" in proc.stdout
