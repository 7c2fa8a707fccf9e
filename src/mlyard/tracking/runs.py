"""Runs: create, read, update, delete and restore, with MLflow's rules.

A run's name and its ``mlflow.runName`` tag are kept equal, as MLflow does. A status change is
written to the event log (``run.status_changed``) in the same transaction as the change.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from mlyard.core.errors import InvalidRequestError, NotFoundError
from mlyard.core.timeutil import now_ms
from mlyard.store.db import Database
from mlyard.store.events import append_event
from mlyard.store.tracking_schema import Dataset, LatestMetric, Param, Run, RunInput, RunOutput, RunTag
from mlyard.tracking.checks import MAX_RUN_NAME, check_display_name
from mlyard.tracking.experiments import ExperimentService

STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
RUN_NAME_TAG = "mlflow.runName"
_ADJECTIVES = ("able", "bold", "bright", "calm", "clever", "crisp", "daring", "eager", "fair", "gentle", "glad",
               "keen", "lucid", "merry", "nimble", "polite", "quick", "sharp", "sunny", "tidy", "vivid", "wise")
_NOUNS = ("ant", "bass", "bee", "crab", "deer", "dove", "eel", "fox", "goat", "hawk", "ibis", "lark", "lynx",
          "mole", "newt", "owl", "puma", "ram", "seal", "toad", "wolf", "yak")


def random_run_name() -> str:
    """A name like MLflow's (``bright-fox-123``) for runs created without one."""
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(1000)}"


class RunRecord(NamedTuple):
    """A run's own columns, read as a plain row (building ORM objects costs more than the query)."""

    id: str
    experiment_id: int
    name: str
    status: str
    start_time: int
    end_time: int | None
    lifecycle_stage: str
    user_id: str
    artifact_uri: str


class MetricValue(NamedTuple):
    """A run's current value of one metric (a ``latest_metrics`` row)."""

    key: str
    value: float
    timestamp: int
    step: int
    is_nan: bool


RUN_COLUMNS = (Run.id, Run.experiment_id, Run.name, Run.status, Run.start_time, Run.end_time, Run.lifecycle_stage,
               Run.user_id, Run.artifact_uri)
_STAGE = select(Run.lifecycle_stage).where(Run.id == bindparam("run_id"))
_RECORD = select(*RUN_COLUMNS).where(Run.id == bindparam("run_id"))


@dataclass
class RunView:
    """Everything MLflow returns about a run."""

    row: RunRecord
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[MetricValue] = field(default_factory=list)
    inputs: list[tuple[Dataset, dict[str, Any]]] = field(default_factory=list)
    outputs: list[RunOutput] = field(default_factory=list)




class RunService:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def row(s: Session, run_id: str) -> Run:
        row = s.get(Run, run_id) if isinstance(run_id, str) and run_id else None
        if row is None:
            raise NotFoundError(f"run {run_id!r} not found")
        return row

    @staticmethod
    def active_row(s: Session, run_id: str) -> Run:
        row = RunService.row(s, run_id)
        if row.lifecycle_stage != "active":
            raise InvalidRequestError(f"the run {run_id} must be in the 'active' state; it is "
                                      f"{row.lifecycle_stage}: restore it first")
        return row

    @staticmethod
    def check_active(s: Session, run_id: str) -> None:
        """What :meth:`active_row` checks, with one light query instead of loading the run."""
        valid = isinstance(run_id, str) and run_id
        stage = s.connection().execute(_STAGE, {"run_id": run_id}).scalar() if valid else None
        if stage is None:
            raise NotFoundError(f"run {run_id!r} not found")
        if stage != "active":
            raise InvalidRequestError(f"the run {run_id} must be in the 'active' state; it is {stage}: "
                                      "restore it first")

    @staticmethod
    def record(s: Session, run_id: str) -> RunRecord:
        """The run's own columns, as a plain row."""
        valid = isinstance(run_id, str) and run_id
        row = s.connection().execute(_RECORD, {"run_id": run_id}).first() if valid else None
        if row is None:
            raise NotFoundError(f"run {run_id!r} not found")
        return RunRecord._make(row)

    @staticmethod
    def views(s: Session, rows: list[RunRecord]) -> list[RunView]:
        """Load params, tags, metrics, inputs and outputs of many runs in five queries."""
        by_id = {r.id: RunView(r) for r in rows}
        if not by_id:
            return []
        ids = list(by_id)
        conn = s.connection()
        for run_id, key, value in conn.execute(select(Param.run_id, Param.key, Param.value)
                                               .where(Param.run_id.in_(ids))):
            by_id[run_id].params[key] = value
        for run_id, key, value in conn.execute(select(RunTag.run_id, RunTag.key, RunTag.value)
                                               .where(RunTag.run_id.in_(ids))):
            by_id[run_id].tags[key] = value
        for run_id, *metric in conn.execute(select(LatestMetric.run_id, LatestMetric.key, LatestMetric.value,
                                                   LatestMetric.timestamp, LatestMetric.step, LatestMetric.is_nan)
                                            .where(LatestMetric.run_id.in_(ids)).order_by(LatestMetric.key)):
            by_id[run_id].metrics.append(MetricValue._make(metric))
        for run_input, dataset in s.execute(select(RunInput, Dataset).join(Dataset, Dataset.id == RunInput.dataset_id)
                                            .where(RunInput.run_id.in_(ids))):
            by_id[run_input.run_id].inputs.append((dataset, run_input.tags or {}))
        for output in s.scalars(select(RunOutput).where(RunOutput.run_id.in_(ids))):
            by_id[output.run_id].outputs.append(output)
        return [by_id[r.id] for r in rows]

    def get(self, run_id: str) -> RunView:
        with self._db.session() as s:
            return self.views(s, [self.record(s, run_id)])[0]

    def create(self, experiment_id: str | None, user_id: str | None, run_name: str | None, start_time: int | None,
               tags: dict[str, str], actor: str, *, run_id: str | None = None, status: str = "RUNNING") -> RunView:
        """Create a run. ``run_id`` and ``status`` are for the job runner: a job's run is named after the
        job and waits as SCHEDULED until its process starts."""
        name = check_display_name("run", run_name or tags.get(RUN_NAME_TAG) or random_run_name(), MAX_RUN_NAME)
        new_id = run_id or uuid.uuid4().hex

        def write(s: Session) -> str:
            experiment = ExperimentService.row(s, experiment_id if experiment_id not in (None, "") else 0)
            if experiment.lifecycle_stage != "active":
                raise InvalidRequestError(f"could not create a run in experiment {experiment.id}: it is deleted; "
                                          "restore it first")
            run_id = new_id
            s.add(Run(id=run_id, experiment_id=experiment.id, name=name, status=status,
                      start_time=start_time if start_time is not None else now_ms(), end_time=None,
                      lifecycle_stage="active", user_id=user_id or actor,
                      artifact_uri=f"{experiment.artifact_location}/{run_id}/artifacts"))
            s.flush()
            s.add_all(RunTag(run_id=run_id, key=k, value=str(v)) for k, v in {**tags, RUN_NAME_TAG: name}.items())
            append_event(s, "run.status_changed", run_id, actor, experiment_id=str(experiment.id), previous=None,
                      status=status)
            return run_id

        return self.get(self._db.run_in_transaction(write))

    def update(self, run_id: str, status: str | None, end_time: int | None, run_name: str | None,
               actor: str) -> RunView:
        if status is not None and status not in STATUSES:
            raise InvalidRequestError(f"run status {status!r} is not one of {', '.join(STATUSES)}")
        if run_name:
            check_display_name("run", run_name, MAX_RUN_NAME)

        def write(s: Session) -> None:
            row = self.active_row(s, run_id)
            if status is not None and status != row.status:
                append_event(s, "run.status_changed", run_id, actor, experiment_id=str(row.experiment_id),
                          previous=row.status, status=status)
                row.status = status
            if end_time is not None:
                row.end_time = end_time
            if run_name:
                row.name = run_name
                s.merge(RunTag(run_id=run_id, key=RUN_NAME_TAG, value=run_name))

        self._db.run_in_transaction(write)
        return self.get(run_id)

    def set_lifecycle(self, run_id: str, stage: str) -> None:
        def write(s: Session) -> None:
            row = self.row(s, run_id)
            if stage == "active" and row.lifecycle_stage == "active":
                raise InvalidRequestError(f"run {run_id} is not deleted")
            row.lifecycle_stage = stage
            row.deleted_time = now_ms() if stage == "deleted" else None

        self._db.run_in_transaction(write)
