"""Job rows and logs: reading jobs, moving them through their statuses, and each job's log file.

A status change is mirrored on the job's MLflow run (Azure's mapping, reference §9.1); a job that
ends gives up its step token. The runner is the only writer of job rows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from mlyard.core.errors import MlyardError, NotFoundError
from mlyard.core.timeutil import now_ms
from mlyard.store.db import Database
from mlyard.store.events import append_event
from mlyard.store.jobs_schema import TERMINAL, Job
from mlyard.tracking.runs import RunService

MLFLOW_STATUS = {"NotStarted": "SCHEDULED", "Queued": "SCHEDULED", "Preparing": "SCHEDULED", "Running": "RUNNING",
                 "Finalizing": "RUNNING", "Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}
LOG_FILE = "user_logs/std_log.txt"
TAIL_LINES = 20
RUNNER = "mlyard-job-runner"  # the actor of status changes the runner makes


class JobTokens(Protocol):
    """Issues each running step an API token of its own, acting as the user who submitted the job."""

    def issue(self, actor: str, role: str) -> tuple[str, str]:
        """A new token for ``actor``: (secret, hash)."""
        ...

    def revoke(self, token_hash: str) -> None: ...


class JobRecords:
    """The rows-and-logs part of the runner (mixed into ``JobRunner``)."""

    _db: Database
    _runs: RunService
    _tokens: JobTokens
    jobs_dir: Path

    def get(self, name: str) -> Job:
        with self._db.session() as s:
            row = s.get(Job, name)
        if row is None:
            raise NotFoundError(f"job {name!r} not found; 'mlyard job list' shows the jobs")
        return row

    def children(self, name: str) -> list[Job]:
        with self._db.session() as s:
            return list(s.scalars(select(Job).where(Job.parent == name).order_by(Job.position)))

    def list(self, parent: str | None = None, max_results: int = 50) -> list[Job]:
        with self._db.session() as s:
            q = select(Job).where(Job.parent == parent) if parent else select(Job).where(Job.parent.is_(None))
            return list(s.scalars(q.order_by(Job.created_at.desc(), Job.name).limit(max_results)))

    def log_path(self, name: str) -> Path:
        return self.jobs_dir / name / LOG_FILE

    def read_log(self, name: str, offset: int = 0, limit: int = 1 << 20) -> tuple[bytes, int]:
        """Log bytes of a job from ``offset`` (the pipeline's own log for a pipeline)."""
        self.get(name)
        path = self.log_path(name)
        if not path.exists():
            return b"", offset
        with path.open("rb") as f:
            f.seek(max(0, offset))
            data = f.read(limit)
        return data, max(0, offset) + len(data)

    def log_tail(self, name: str, lines: int = TAIL_LINES) -> str:
        path = self.log_path(name)
        if not path.exists():
            return ""
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 64 * 1024))
            text = f.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _update(self, name: str, **values: Any) -> None:
        def write(s: Any) -> None:
            row = s.get(Job, name)
            if row is not None:
                for k, v in values.items():
                    setattr(row, k, v)

        self._db.run_in_transaction(write)

    def _set_outputs(self, name: str, outputs: dict[str, Any]) -> None:
        self._update(name, outputs=dict(outputs))

    def _note(self, name: str, text: str) -> None:
        def write(s: Any) -> None:
            row = s.get(Job, name)
            if row is not None and text not in (row.notes or []):
                row.notes = [*(row.notes or []), text]

        self._db.run_in_transaction(write)
        self._log(name, text)

    def _set_status(self, name: str, status: str, *, started: bool = False, actor: str = RUNNER) -> None:
        def write(s: Any) -> str | None:
            row = s.get(Job, name)
            if row is None or row.status in TERMINAL:
                return None
            if row.status != status:
                _status_event(s, row, status, None, actor)
            row.status = status
            if started and row.started_at is None:
                row.started_at = now_ms()
            return MLFLOW_STATUS[status]

        mlflow_status = self._db.run_in_transaction(write)
        if mlflow_status is not None:
            self._sync_run(name, mlflow_status, None)

    def _finish_row(self, name: str, status: str, error: str | None, actor: str = RUNNER) -> None:
        token: list[str] = []

        def write(s: Any) -> bool:
            row = s.get(Job, name)
            if row is None or row.status in TERMINAL:
                return False
            _status_event(s, row, status, error, actor)
            row.status = status
            row.error = error
            row.ended_at = now_ms()
            row.pid = None
            if row.token_hash:
                token.append(row.token_hash)
                row.token_hash = None
            return True

        finished = self._db.run_in_transaction(write)
        for token_hash in token:
            self._tokens.revoke(token_hash)  # the step's processes are gone: so is their token
        if finished:
            self._sync_run(name, MLFLOW_STATUS[status], now_ms())
            if status != "Completed" and error:
                self._log(name, f"{status}: {error.splitlines()[0]}")

    def _finish_children(self, top: str, status: str, error: str) -> None:
        for child in self.children(top):
            self._finish_row(child.name, status, error)

    def _sync_run(self, name: str, status: str, end_time: int | None) -> None:
        try:
            run = self._runs.get(name).row
            if run.status != status or end_time is not None:
                self._runs.update(name, status, end_time, None, RUNNER)
        except MlyardError:
            pass  # the run was deleted through MLflow: the job goes on

    def _log(self, name: str, line: str) -> None:
        path = self.log_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%H:%M:%S")
        with path.open("ab") as f:
            f.write(f"[mlyard {stamp}] {line}\n".encode())


def _status_event(s: Any, row: Job, status: str, error: str | None, actor: str) -> None:
    """``job.status_changed`` for ``row`` moving to ``status``, in the transaction that moves it."""
    # a failed (or canceled) job says why; a pipeline's error can carry a log tail, kept short here
    extra = {"error": error[:4000]} if error and status in ("Failed", "Canceled") else {}
    append_event(s, "job.status_changed", row.name, actor, name=row.name, parent=row.parent, step=row.step,
                 type=row.type, status=status, previous=row.status, experiment_name=row.experiment_name,
                 display_name=row.display_name, **extra)
