"""A worker killed mid-mini-batch and a mini-batch past its timeout are retried; no row is lost or duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.serving.batch.conftest import COUNTING_SCRIPT, run_batch, write_inputs, write_script
from tests.serving.conftest import SRC

ONCE = COUNTING_SCRIPT + '''
def misbehave(path):
    marker = pathlib.Path(os.environ["MARKERS"], path.name)
    if path.name == os.environ["TRIGGER"] and not marker.exists():
        marker.touch()
        {action}
'''


def _run(tmp_path: Path, action: str, *extra: str) -> tuple[list[str], str]:
    write_inputs(tmp_path / "data", 9)
    (tmp_path / "markers").mkdir()
    code = write_script(tmp_path / "code", ONCE.replace("{action}", action))
    run = run_batch("--input", tmp_path / "data", "--code", code, "--scoring-script", "score.py",
                    "--mini-batch-size", "3", "--max-concurrency-per-instance", "2", "--progress",
                    tmp_path / "progress.json", *extra, output=tmp_path / "score",
                    env={"MARKERS": str(tmp_path / "markers"), "TRIGGER": "part-004.csv"})
    assert run.returncode == 0, run.stderr
    progress = run.report(tmp_path / "progress.json")
    assert progress["mini_batches"]["retried"] == 1 and progress["files"]["failed"] == 0
    return run.predictions(), run.stdout


def test_a_worker_killed_mid_mini_batch_is_replaced_and_the_mini_batch_retried(tmp_path: Path) -> None:
    lines, log = _run(tmp_path, "os.kill(os.getpid(), 9)")
    assert lines == [f"part-{n:03d}.csv,7" for n in range(9)]
    assert "was killed by SIGKILL while scoring mini-batch 1" in log


def test_a_mini_batch_past_its_timeout_is_killed_and_retried(tmp_path: Path) -> None:
    lines, log = _run(tmp_path, "import time; time.sleep(60)", "--timeout", "2")
    assert lines == [f"part-{n:03d}.csv,7" for n in range(9)]
    assert "ran past the timeout of 2 s" in log


def test_sigterm_stops_the_workers_and_writes_no_output(tmp_path: Path) -> None:
    write_inputs(tmp_path / "data", 4)
    code = write_script(tmp_path / "code", COUNTING_SCRIPT + '''
def misbehave(path):
    pathlib.Path(os.environ["PIDS"], str(os.getpid())).touch()
    import time; time.sleep(60)
''')
    (tmp_path / "pids").mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlyard.serving.batch", "--input", str(tmp_path / "data"), "--output",
         str(tmp_path / "score"), "--code", str(code), "--scoring-script", "score.py", "--mini-batch-size", "1",
         "--max-concurrency-per-instance", "2", "--progress", str(tmp_path / "progress.json")],
        env={**os.environ, "PYTHONPATH": str(SRC), "PIDS": str(tmp_path / "pids")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(600):  # bounded: both workers are inside run()
        if len(list((tmp_path / "pids").iterdir())) == 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143 and "cancelled" in stderr
    for pid in (int(p.name) for p in (tmp_path / "pids").iterdir()):
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the engine"
    assert json.loads((tmp_path / "progress.json").read_text())["state"] == "cancelled"
    assert not (tmp_path / "score" / "predictions.csv").exists()
