"""Experiments: named groups of runs, with MLflow's lifecycle (active, deleted, restored).

Deleting an experiment marks it and its runs deleted (nothing is removed, so it can be restored);
its name stays taken until it is restored or renamed, as in MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import false, select, true, update
from sqlalchemy.orm import Session

from mlyard.core.errors import AlreadyExistsError, InvalidRequestError, NotFoundError
from mlyard.core.paging import Page, ViewType, decode_token, encode_token
from mlyard.core.timeutil import now_ms
from mlyard.specs.search_filters import Condition, FilterError, parse_experiment_filter, parse_experiment_order_by
from mlyard.store.db import Database
from mlyard.store.tracking_schema import Experiment, ExperimentTag, Run
from mlyard.tracking.checks import EXPERIMENT_ID_MAX, check_display_name, check_key, experiment_key
from mlyard.tracking.sql import lifecycle_clause, string_compare

ARTIFACT_ROOT = "mlflow-artifacts:/mlflow"
COLUMNS: dict[str, Any] = {"name": Experiment.name, "creation_time": Experiment.creation_time,
                           "last_update_time": Experiment.last_update_time, "experiment_id": Experiment.id}
MAX_NAME = 500


@dataclass
class ExperimentView:
    row: Experiment
    tags: dict[str, str] = field(default_factory=dict)


class ExperimentService:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- lookup ---------------------------------------------------------------------------------------

    @staticmethod
    def row(s: Session, experiment_id: str | int) -> Experiment:
        try:
            key = int(experiment_id)
        except (TypeError, ValueError):
            raise NotFoundError(f"no experiment with id {experiment_id!r}") from None
        row = s.get(Experiment, key) if experiment_key(key) is not None else None  # beyond int64: a 400
        if row is None:
            raise NotFoundError(f"no experiment with id {experiment_id!r}")
        return row

    @staticmethod
    def _view(s: Session, row: Experiment) -> ExperimentView:
        tags = dict(s.execute(select(ExperimentTag.key, ExperimentTag.value)
                              .where(ExperimentTag.experiment_id == row.id)).all())
        return ExperimentView(row, tags)

    def get(self, experiment_id: str | int) -> ExperimentView:
        with self._db.session() as s:
            return self._view(s, self.row(s, experiment_id))

    def get_by_name(self, name: str) -> ExperimentView:
        with self._db.session() as s:
            row = s.scalar(select(Experiment).where(Experiment.name == name))
            if row is None:
                raise NotFoundError(f"no experiment named {name!r}")
            return self._view(s, row)

    # -- changes --------------------------------------------------------------------------------------

    def create(self, name: str, artifact_location: str | None = None, tags: dict[str, str] | None = None) -> str:
        """Create an experiment; returns its id (MLflow ids are strings of integers)."""
        name = check_display_name("experiment", name or "").strip()
        if not name or len(name) > MAX_NAME:
            raise InvalidRequestError(f"experiment name must be 1 to {MAX_NAME} characters")
        if artifact_location:
            raise InvalidRequestError("mlyard places experiment artifacts itself (mlflow-artifacts:/...); "
                                      "leave artifact_location empty")
        for key in tags or {}:
            check_key("tag", key)

        def write(s: Session) -> str:
            if s.scalar(select(Experiment.id).where(Experiment.name == name)) is not None:
                raise AlreadyExistsError(f"experiment {name!r} already exists")
            now = now_ms()
            row = Experiment(name=name, artifact_location="", lifecycle_stage="active", creation_time=now,
                             last_update_time=now)
            s.add(row)
            s.flush()
            row.artifact_location = f"{ARTIFACT_ROOT}/{row.id}"
            s.add_all(ExperimentTag(experiment_id=row.id, key=k, value=str(v)) for k, v in (tags or {}).items())
            return str(row.id)

        return self._db.run_in_transaction(write)

    def rename(self, experiment_id: str, new_name: str) -> None:
        new_name = check_display_name("experiment", new_name or "").strip()
        if not new_name or len(new_name) > MAX_NAME:
            raise InvalidRequestError(f"experiment name must be 1 to {MAX_NAME} characters")

        def write(s: Session) -> None:
            row = self.row(s, experiment_id)
            if row.lifecycle_stage != "active":
                raise InvalidRequestError(f"experiment {experiment_id} is deleted; restore it before renaming it")
            clash = s.scalar(select(Experiment.id).where(Experiment.name == new_name, Experiment.id != row.id))
            if clash is not None:
                raise AlreadyExistsError(f"experiment {new_name!r} already exists")
            row.name, row.last_update_time = new_name, now_ms()

        self._db.run_in_transaction(write)

    def set_lifecycle(self, experiment_id: str, stage: str) -> None:
        """Delete (``deleted``) or restore (``active``) an experiment and its runs."""

        def write(s: Session) -> None:
            row = self.row(s, experiment_id)
            if row.id == 0 and stage == "deleted":
                raise InvalidRequestError("the Default experiment (id 0) cannot be deleted")
            if row.lifecycle_stage == stage:
                raise InvalidRequestError(f"experiment {experiment_id} is already {stage}")
            now = now_ms()
            row.lifecycle_stage, row.last_update_time = stage, now
            s.execute(update(Run).where(Run.experiment_id == row.id).values(
                lifecycle_stage=stage, deleted_time=now if stage == "deleted" else None))

        self._db.run_in_transaction(write)

    def set_tag(self, experiment_id: str, key: str, value: str) -> None:
        check_key("tag", key)

        def write(s: Session) -> None:
            row = self.row(s, experiment_id)
            if row.lifecycle_stage != "active":
                raise InvalidRequestError(f"experiment {experiment_id} is deleted; restore it first")
            s.merge(ExperimentTag(experiment_id=row.id, key=key, value=str(value)))

        self._db.run_in_transaction(write)

    def delete_tag(self, experiment_id: str, key: str) -> None:
        def write(s: Session) -> None:
            row = self.row(s, experiment_id)
            tag = s.get(ExperimentTag, (row.id, key))
            if tag is None:
                raise NotFoundError(f"experiment {experiment_id} has no tag {key!r}")
            s.delete(tag)

        self._db.run_in_transaction(write)

    # -- search ---------------------------------------------------------------------------------------

    def search(self, view: ViewType, filter_text: str | None, order_by: list[str] | None, max_results: int,
               page_token: str | None) -> Page[ExperimentView]:
        try:
            conditions = parse_experiment_filter(filter_text)
            orders = parse_experiment_order_by(order_by)
        except FilterError as exc:
            raise InvalidRequestError(str(exc)) from None
        offset = decode_token(page_token)
        with self._db.session() as s:
            q = select(Experiment).where(lifecycle_clause(Experiment.lifecycle_stage, view))
            for c in conditions:
                q = q.where(_experiment_condition(c, self._db.is_sqlite))
            for o in orders:
                column = COLUMNS[o.key]
                q = q.order_by(column.asc() if o.ascending else column.desc())
            q = q.order_by(Experiment.creation_time.desc(), Experiment.id.asc())
            rows = list(s.scalars(q.offset(offset).limit(max_results + 1)).all())
            views = [self._view(s, r) for r in rows[:max_results]]
        token = encode_token(offset + max_results) if len(rows) > max_results else None
        return Page(views, token)


def _experiment_condition(c: Condition, sqlite: bool) -> Any:
    if c.entity == "tag":
        value = select(ExperimentTag.value).where(ExperimentTag.experiment_id == Experiment.id,
                                                   ExperimentTag.key == c.key).scalar_subquery()
        return string_compare(value, c.comparator, c.value, sqlite=sqlite)
    column = COLUMNS.get(c.key)
    if column is None:
        raise InvalidRequestError(f"cannot filter experiments on attribute {c.key!r}")
    if c.key == "experiment_id":  # compared as integers; ids beyond the store's 32 bits match nothing
        if isinstance(c.value, tuple):
            return string_compare(column, c.comparator, tuple(int(v) for v in c.value if _is_key(v)), sqlite=sqlite)
        if not _is_key(c.value):
            return false() if c.comparator == "=" else true()
        return string_compare(column, c.comparator, int(str(c.value)), sqlite=sqlite)
    return string_compare(column, c.comparator, c.value, sqlite=sqlite)


def _is_key(value: object) -> bool:
    return isinstance(value, str) and value.lstrip("-").isdigit() and 0 <= int(value) <= EXPERIMENT_ID_MAX

