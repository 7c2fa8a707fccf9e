"""A worker killed mid-mini-batch and a mini-batch past its timeout are retried; no row is lost or duplicated."""

from __future__ import annotations

from pathlib import Path

from tests.serving.batch.conftest import COUNTING_SCRIPT, run_batch, write_inputs, write_script

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
