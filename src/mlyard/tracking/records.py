"""Writing to a run: metrics, params, tags, datasets; and reading a metric's history.

Every metric point is appended to the history; the run's current value of the metric is upserted
with one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE newer`` statement, so concurrent writers to
one run never lose a point nor move the current value backwards. A param, once logged, keeps its
value (logging a different one is an error, as in MLflow).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select, tuple_, update
from sqlalchemy.orm import Session

from mlyard.core.errors import InvalidRequestError
from mlyard.core.paging import Page, decode_after, encode_after
from mlyard.core.timeutil import now_ms
from mlyard.store.db import Database
from mlyard.store.tracking_schema import Dataset, LatestMetric, Metric, Param, Run, RunInput, RunTag
from mlyard.tracking.checks import MAX_RUN_NAME, check_display_name, check_key, to_int64, to_metric_value
from mlyard.tracking.runs import RUN_NAME_TAG, RunService

MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    timestamp: int
    step: int = 0
    model_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


# One point of a metric's history as a plain row (ORM objects would cost more than the query): key, value,
# timestamp, step, is_nan, model_id, dataset_name, dataset_digest, run_id, and the row id last (for paging).
PointRow = tuple[str, float, int, int, bool, str | None, str | None, str | None, str, int]
_POINT_COLUMNS = (Metric.key, Metric.value, Metric.timestamp, Metric.step, Metric.is_nan, Metric.model_id,
                  Metric.dataset_name, Metric.dataset_digest, Metric.run_id, Metric.id)


def metric_point(key: Any, value: Any, timestamp: Any, step: Any, **link: Any) -> MetricPoint:
    check_key("metric", key)
    number = to_metric_value(key, value)
    ts = to_int64(f"metric {key!r}: timestamp", timestamp) if timestamp not in (None, "") else now_ms()
    st = to_int64(f"metric {key!r}: step", step) if step not in (None, "") else 0
    return MetricPoint(key, number, ts, st, **link)


def _stored(value: float) -> tuple[float, bool]:
    """NaN is stored as 0 with a flag (PostgreSQL and SQLite disagree on NaN); infinities as they are."""
    return (0.0, True) if math.isnan(value) else (value, False)


class RunLogger:
    def __init__(self, db: Database) -> None:
        self._db = db
        history, latest = cast(Table, Metric.__table__), cast(Table, LatestMetric.__table__)
        # Built once: building an upsert costs more than running it.
        self._history_upsert = db.upsert_statement(
            history, keys=("run_id", "key", "timestamp", "step", "value", "is_nan"),
            update=("model_id", "dataset_name", "dataset_digest"),
            where=lambda new: new.model_id.is_not(None) | new.dataset_name.is_not(None))
        self._latest_upsert = db.upsert_statement(
            latest, keys=("run_id", "key"), update=("value", "timestamp", "step", "is_nan"),
            where=lambda new: tuple_(new.step, new.timestamp, new.value)
            >= tuple_(latest.c.step, latest.c.timestamp, latest.c.value))
        self._tag_upsert = db.upsert_statement(cast(Table, RunTag.__table__), keys=("run_id", "key"),
                                               update=("value",))

    # -- metrics ----------------------------------------------------------------------------------------

    def _write_metrics(self, s: Session, run_id: str, points: list[MetricPoint]) -> None:
        if not points:
            return
        rows: list[dict[str, Any]] = []
        for p in points:
            value, is_nan = _stored(p.value)
            rows.append({"run_id": run_id, "key": p.key, "value": value, "timestamp": p.timestamp, "step": p.step,
                         "is_nan": is_nan, "model_id": p.model_id, "dataset_name": p.dataset_name,
                         "dataset_digest": p.dataset_digest})
        self._db.upsert(s, self._history_upsert, rows)
        newest: dict[str, dict[str, Any]] = {}
        for row in rows:  # the batch's newest point per key, by (step, timestamp, value)
            best = newest.get(row["key"])
            if best is None or (row["step"], row["timestamp"], row["value"]) > (best["step"], best["timestamp"],
                                                                                best["value"]):
                newest[row["key"]] = row
        latest = [{k: r[k] for k in ("run_id", "key", "value", "timestamp", "step", "is_nan")} for r in newest.values()]
        self._db.upsert(s, self._latest_upsert, latest)

    def log_metric(self, run_id: str, point: MetricPoint) -> None:
        self.log_batch(run_id, [point], {}, {})

    # -- batch -----------------------------------------------------------------------------------------

    def log_batch(self, run_id: str, metrics: list[MetricPoint], params: dict[str, str], tags: dict[str, str]) -> None:
        """Log all of it in one transaction, or none of it."""
        if len(metrics) > MAX_METRICS_PER_BATCH:
            raise InvalidRequestError(f"a batch holds at most {MAX_METRICS_PER_BATCH} metrics; got {len(metrics)}")
        if len(params) > MAX_PARAMS_TAGS_PER_BATCH or len(tags) > MAX_PARAMS_TAGS_PER_BATCH:
            raise InvalidRequestError(f"a batch holds at most {MAX_PARAMS_TAGS_PER_BATCH} params and as many tags")
        for key, value in params.items():
            check_key("param", key)
            if len(value) > MAX_PARAM_VALUE:
                raise InvalidRequestError(f"param {key!r} value is longer than {MAX_PARAM_VALUE} characters")
        for key, value in tags.items():
            check_key("tag", key)
            if len(value) > MAX_TAG_VALUE:
                raise InvalidRequestError(f"tag {key!r} value is longer than {MAX_TAG_VALUE} characters")
        if RUN_NAME_TAG in tags:  # the run's name
            check_display_name("run", tags[RUN_NAME_TAG], MAX_RUN_NAME)

        def write(s: Session) -> None:
            RunService.check_active(s, run_id)
            self._write_params(s, run_id, params)
            self._write_tags(s, run_id, tags)
            self._write_metrics(s, run_id, metrics)

        self._db.run_in_transaction(write)

    @staticmethod
    def _write_params(s: Session, run_id: str, params: dict[str, str]) -> None:
        if not params:
            return
        existing = dict(s.execute(select(Param.key, Param.value).where(Param.run_id == run_id,
                                                                        Param.key.in_(list(params)))).all())
        for key, value in params.items():
            if key in existing:
                if existing[key] != value:
                    raise InvalidRequestError(
                        f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                        f"value='{existing[key]}' for run ID='{run_id}'. Attempted logging new value '{value}'.")
                continue
            s.add(Param(run_id=run_id, key=key, value=value))

    def _write_tags(self, s: Session, run_id: str, tags: dict[str, str]) -> None:
        if not tags:
            return
        self._db.upsert(s, self._tag_upsert, [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()])
        if RUN_NAME_TAG in tags:
            s.execute(update(Run).where(Run.id == run_id).values(name=tags[RUN_NAME_TAG]))

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.log_batch(run_id, [], {}, {key: value})

    def delete_tag(self, run_id: str, key: str) -> None:
        def write(s: Session) -> None:
            RunService.active_row(s, run_id)
            tag = s.get(RunTag, (run_id, key))
            if tag is None:
                raise InvalidRequestError(f"no tag with name {key!r} in run {run_id}")
            s.delete(tag)

        self._db.run_in_transaction(write)

    # -- inputs ----------------------------------------------------------------------------------------

    def log_inputs(self, run_id: str, datasets: list[dict[str, Any]]) -> None:
        """Record datasets (name, digest, source...) as inputs of a run, with their tags (``mlflow.data.context``)."""

        def write(s: Session) -> None:
            run = RunService.active_row(s, run_id)
            for item in datasets:
                ds = item.get("dataset") or {}
                name, digest = str(ds.get("name") or ""), str(ds.get("digest") or "")
                if not name or not digest:
                    raise InvalidRequestError("a dataset input needs a name and a digest")
                row = s.scalar(select(Dataset).where(Dataset.experiment_id == run.experiment_id,
                                                     Dataset.name == name, Dataset.digest == digest))
                if row is None:
                    row = Dataset(id=uuid.uuid4().hex, experiment_id=run.experiment_id, name=name, digest=digest,
                                  source_type=str(ds.get("source_type") or ""), source=str(ds.get("source") or ""),
                                  schema=ds.get("schema"), profile=ds.get("profile"))
                    s.add(row)
                    s.flush()
                tags = {t.get("key"): t.get("value") for t in item.get("tags") or [] if isinstance(t, dict)}
                if s.get(RunInput, (run_id, row.id)) is None:
                    s.add(RunInput(run_id=run_id, dataset_id=row.id, tags=tags))

        self._db.run_in_transaction(write)

    # -- history ---------------------------------------------------------------------------------------

    def history(self, run_id: str, key: str, max_results: int | None, page_token: str | None) -> Page[PointRow]:
        """Points of one metric by step, time and id; all of them when ``max_results`` is None."""
        after = decode_after(page_token, 3)
        q = (select(*_POINT_COLUMNS).where(Metric.run_id == run_id, Metric.key == key)
             .order_by(Metric.step, Metric.timestamp, Metric.id))
        if after is not None:
            q = q.where(tuple_(Metric.step, Metric.timestamp, Metric.id) > tuple_(*after))
        if max_results is not None:
            q = q.limit(max_results + 1)
        with self._db.session() as s:
            RunService.record(s, run_id)
            rows = cast(list[PointRow], s.connection().execute(q).all())
        if max_results is None or len(rows) <= max_results:
            return Page(rows)
        last = rows[max_results - 1]
        return Page(rows[:max_results], encode_after((last[3], last[2], last[9])))
