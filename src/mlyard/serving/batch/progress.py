"""What a batch run has done so far: the counters, the job-log lines, the progress file and the error report."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

LINE_EVERY_S = 1.0  # a progress line on stdout at most this often
FILE_EVERY_S = 0.25  # the progress file rewritten at most this often while running
TABLE_ROWS = 50  # failed files listed in the final summary


@dataclass(frozen=True, slots=True)
class FileFailure:
    """A file that failed for good: why (the last error), and how many attempts included it."""

    file: str
    reason: str
    attempts: int


@dataclass
class RunState:
    """The counters of one run, updated by the engine as mini-batches finish."""

    total_batches: int
    total_files: int
    workers: int = 0
    done_batches: int = 0
    failed_batches: int = 0
    retried_batches: int = 0
    done_files: int = 0
    rows: int = 0
    failures: list[FileFailure] = field(default_factory=list)
    state: str = "running"
    reason: str | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        """``mini-batches 40/100 done, 1 failed, 2 retried; 412,000 rows, 95,000 rows/s``."""
        return (f"mini-batches {self.done_batches}/{self.total_batches} done, {self.failed_batches} failed, "
                f"{self.retried_batches} retried; files {self.done_files}/{self.total_files} done, "
                f"{len(self.failures)} failed; {self.rows:,} rows, {self.rows_per_s:,.0f} rows/s")

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "workers": self.workers,
            "mini_batches": {"total": self.total_batches, "done": self.done_batches, "failed": self.failed_batches,
                             "retried": self.retried_batches},
            "files": {"total": self.total_files, "done": self.done_files, "failed": len(self.failures)},
            "rows": self.rows,
            "rows_per_s": round(self.rows_per_s, 1),
            "elapsed_s": round(self.elapsed, 3),
            "failed_files": [failure_dict(f) for f in sorted(self.failures, key=_by_file)],
        }


def _by_file(failure: FileFailure) -> str:
    return failure.file


def failure_dict(failure: FileFailure) -> dict[str, Any]:
    return {"file": failure.file, "reason": failure.reason, "attempts": failure.attempts}


class Reporter:
    """Writes progress: lines to the job log (stdout), the ``--progress`` file, the ``--report`` file at the end.

    Args:
        state: the run's counters.
        progress_file: rewritten atomically (temp file + ``os.replace``) as mini-batches finish, or None.
        report_file: the per-file error report written at the end, or None.
        quiet: no periodic lines (``--logging-level warning``); the final summary is still printed.
        out: where lines go.
    """

    def __init__(self, state: RunState, progress_file: Path | None, report_file: Path | None, quiet: bool = False,
                 out: TextIO | None = None) -> None:
        self.state = state
        self.progress_file = progress_file
        self.report_file = report_file
        self.quiet = quiet
        self.out = out or sys.stdout
        self._last_line = time.monotonic()
        self._last_file = 0.0

    def say(self, text: str) -> None:
        """One line in the job log."""
        self.out.write(text + "\n")
        self.out.flush()

    def tick(self, changed: bool) -> None:
        """Called after each round of events: a line per second, the progress file when something changed."""
        now = time.monotonic()
        if not self.quiet and now - self._last_line >= LINE_EVERY_S:
            self._last_line = now
            self.say(self.state.line())
        if changed and self.progress_file is not None and now - self._last_file >= FILE_EVERY_S:
            self._last_file = now
            write_json(self.progress_file, self.state.to_dict())

    def finish(self) -> None:
        """The final line, the error table, the progress and report files."""
        state = self.state
        state.finished = state.finished or time.monotonic()
        self.say(state.line())
        if state.failures:
            self.say(failure_table(state.failures))
        self.say(f"batch scoring {state.state} in {state.elapsed:.1f} s: {state.rows:,} rows from "
                 f"{state.done_files - len(state.failures)} of {state.total_files} files with {state.workers} "
                 f"worker(s), {state.rows_per_s:,.0f} rows/s")
        if self.progress_file is not None:
            write_json(self.progress_file, state.to_dict())
        if self.report_file is not None:
            failed = [failure_dict(f) for f in sorted(state.failures, key=_by_file)]
            write_json(self.report_file, {"state": state.state, "reason": state.reason, "failed_files": failed})


def failure_table(failures: list[FileFailure]) -> str:
    """The error report as a text table (the first ``TABLE_ROWS`` files)."""
    shown = sorted(failures, key=_by_file)[:TABLE_ROWS]
    width = min(max(len(f.file) for f in shown), 80)
    lines = [f"failed files ({len(failures)}):", f"  {'FILE':<{width}}  ATTEMPTS  REASON"]
    for f in shown:
        reason = " ".join(f.reason.split())
        lines.append(f"  {f.file:<{width}}  {f.attempts:<8}  {reason[:200]}")
    if len(failures) > TABLE_ROWS:
        lines.append(f"  ... and {len(failures) - TABLE_ROWS} more (all of them are in the --report file)")
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically: readers see the old or the new file, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
