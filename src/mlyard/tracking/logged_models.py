"""MLflow 3 logged models: a model's artifacts, params, tags and metrics, before or without registration.

``mlflow.<flavor>.log_model`` creates one (pending), uploads its files under
``mlflow-artifacts:/mlflow/<experiment>/models/<id>/artifacts``, links it to the run as an output
and marks it ready; registering it copies those files into a model asset version.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.core.errors import InvalidRequestError, NotFoundError
from mlyard.core.paging import Page, decode_token, encode_token
from mlyard.core.timeutil import now_ms
from mlyard.specs.search_filters import FilterError, parse_logged_model_filter
from mlyard.specs.search_match import matches
from mlyard.store.db import Database
from mlyard.store.registry_schema import LoggedModel, LoggedModelParam, LoggedModelTag
from mlyard.store.tracking_schema import Metric, RunOutput
from mlyard.tracking.checks import check_display_name, check_key, experiment_key
from mlyard.tracking.experiments import ExperimentService
from mlyard.tracking.runs import RunService

BAD_NAME_CHARACTERS = ("/", ":", ".", "%", '"', "'")  # MLflow's: names become artifact paths and URIs
STATUSES = ("LOGGED_MODEL_STATUS_UNSPECIFIED", "LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY",
            "LOGGED_MODEL_UPLOAD_FAILED")


@dataclass
class LoggedModelView:
    row: LoggedModel
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)


class LoggedModels:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def _row(s: Session, model_id: str) -> LoggedModel:
        row = s.get(LoggedModel, model_id)
        if row is None or row.lifecycle_stage == "deleted":
            raise NotFoundError(f"Logged model with ID '{model_id}' not found")
        return row

    @staticmethod
    def _view(s: Session, row: LoggedModel) -> LoggedModelView:
        view = LoggedModelView(row)
        view.params = dict(s.execute(select(LoggedModelParam.key, LoggedModelParam.value)
                                     .where(LoggedModelParam.model_id == row.id)).all())
        view.tags = dict(s.execute(select(LoggedModelTag.key, LoggedModelTag.value)
                                   .where(LoggedModelTag.model_id == row.id)).all())
        latest: dict[tuple[str, str | None, str | None], Metric] = {}
        for m in s.scalars(select(Metric).where(Metric.model_id == row.id).order_by(Metric.step, Metric.timestamp)):
            latest[(m.key, m.dataset_name, m.dataset_digest)] = m
        view.metrics = list(latest.values())
        return view

    def get(self, model_id: str) -> LoggedModelView:
        with self._db.session() as s:
            return self._view(s, self._row(s, model_id))

    def create(self, experiment_id: str, name: str | None, source_run_id: str | None, model_type: str | None,
               params: dict[str, str], tags: dict[str, str]) -> LoggedModelView:
        for key in [*params, *tags]:
            check_key("logged model param or tag", key)
        if name is not None and (not name or any(c in name for c in BAD_NAME_CHARACTERS)):
            raise InvalidRequestError(f"invalid model name {name!r}: it must be a non-empty string without any of "
                                      f"{' '.join(BAD_NAME_CHARACTERS)}")
        if name is not None:
            check_display_name("logged model", name)

        def write(s: Session) -> str:
            experiment = ExperimentService.row(s, experiment_id)
            if source_run_id:
                RunService.row(s, source_run_id)
            model_id = f"m-{uuid.uuid4().hex}"
            now = now_ms()
            s.add(LoggedModel(id=model_id, experiment_id=experiment.id, name=name or "model",
                              source_run_id=source_run_id or None, status="LOGGED_MODEL_PENDING",
                              model_type=model_type or None, lifecycle_stage="active", creation_time=now,
                              last_updated_time=now,
                              artifact_location=f"{experiment.artifact_location}/models/{model_id}/artifacts"))
            s.flush()
            s.add_all(LoggedModelParam(model_id=model_id, key=k, value=v) for k, v in params.items())
            s.add_all(LoggedModelTag(model_id=model_id, key=k, value=v) for k, v in tags.items())
            return model_id

        return self.get(self._db.run_in_transaction(write))

    def finalize(self, model_id: str, status: str) -> LoggedModelView:
        if status not in STATUSES:
            raise InvalidRequestError(f"logged model status {status!r} is not one of {', '.join(STATUSES)}")

        def write(s: Session) -> None:
            row = self._row(s, model_id)
            row.status, row.last_updated_time = status, now_ms()

        self._db.run_in_transaction(write)
        return self.get(model_id)

    def delete(self, model_id: str) -> None:
        def write(s: Session) -> None:
            row = self._row(s, model_id)
            row.lifecycle_stage, row.last_updated_time = "deleted", now_ms()

        self._db.run_in_transaction(write)

    def set_tags(self, model_id: str, tags: dict[str, str]) -> LoggedModelView:
        def write(s: Session) -> None:
            self._row(s, model_id)
            for key, value in tags.items():
                check_key("tag", key)
                s.merge(LoggedModelTag(model_id=model_id, key=key, value=value))

        self._db.run_in_transaction(write)
        return self.get(model_id)

    def delete_tag(self, model_id: str, key: str) -> None:
        def write(s: Session) -> None:
            self._row(s, model_id)
            tag = s.get(LoggedModelTag, (model_id, key))
            if tag is None:
                raise NotFoundError(f"logged model {model_id} has no tag {key!r}")
            s.delete(tag)

        self._db.run_in_transaction(write)

    def log_params(self, model_id: str, params: dict[str, str]) -> None:
        def write(s: Session) -> None:
            self._row(s, model_id)
            for key, value in params.items():
                check_key("param", key)
                s.merge(LoggedModelParam(model_id=model_id, key=key, value=value))

        self._db.run_in_transaction(write)

    def log_outputs(self, run_id: str, models: list[dict[str, Any]]) -> None:
        def write(s: Session) -> None:
            RunService.active_row(s, run_id)
            for item in models:
                model_id = str(item.get("model_id") or "")
                self._row(s, model_id)
                s.merge(RunOutput(run_id=run_id, model_id=model_id, step=int(item.get("step") or 0)))

        self._db.run_in_transaction(write)

    def search(self, experiment_ids: list[str], filter_text: str | None, max_results: int,
               page_token: str | None) -> Page[LoggedModelView]:
        """Logged models of the experiments matching MLflow's filter, newest first."""
        try:
            conditions = parse_logged_model_filter(filter_text)
            ids = [key for e in experiment_ids if (key := experiment_key(e)) is not None]
        except FilterError as exc:
            raise InvalidRequestError(str(exc)) from None
        except (TypeError, ValueError):
            raise InvalidRequestError(f"experiment_ids must be experiment ids; got {experiment_ids!r}") from None
        with self._db.session() as s:
            rows = s.scalars(select(LoggedModel).where(LoggedModel.experiment_id.in_(ids),
                                                       LoggedModel.lifecycle_stage == "active")
                             .order_by(LoggedModel.creation_time.desc(), LoggedModel.id)).all()
            views = [self._view(s, r) for r in rows]
        found = [v for v in views if all(matches(_value(v, c.entity, c.key), c) for c in conditions)]
        offset = decode_token(page_token)
        token = encode_token(offset + max_results) if len(found) > offset + max_results else None
        return Page(found[offset:offset + max_results], token)


def _value(view: LoggedModelView, entity: str, key: str) -> Any:
    if entity == "tag":
        return view.tags.get(key)
    if entity == "param":
        return view.params.get(key)
    if entity == "metric":
        values = [m.value for m in view.metrics if m.key == key]
        return values[-1] if values else None
    row = view.row
    return {"name": row.name, "model_id": row.id, "model_type": row.model_type, "status": row.status,
            "source_run_id": row.source_run_id, "experiment_id": str(row.experiment_id),
            "artifact_location": row.artifact_location, "creation_timestamp": row.creation_time,
            "last_updated_timestamp": row.last_updated_time}.get(key)
