"""``search_runs``: MLflow's filter and order grammar as SQL over the run tables.

A condition on a metric, param or tag asks for a row of that table (``IN`` a subquery for metrics,
``EXISTS`` for the others), so a run lacking the key never matches (MLflow's semantics, ``!=``
included). Metrics compare their current value (``latest_metrics``). Ordering by a key puts runs
without it last, whatever the direction; ties fall back to newest start time, then run id.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy.orm import aliased

from mlyard.core.errors import InvalidRequestError
from mlyard.core.paging import Page, ViewType, decode_token, encode_token
from mlyard.specs.search_filters import Condition, FilterError, OrderBy, parse_run_filter, parse_run_order_by
from mlyard.store.db import Database
from mlyard.store.tracking_schema import Dataset, LatestMetric, Param, Run, RunInput, RunTag
from mlyard.tracking.checks import experiment_key
from mlyard.tracking.runs import RUN_COLUMNS, RunRecord, RunService, RunView
from mlyard.tracking.sql import lifecycle_clause, numeric_compare, string_compare

ATTRIBUTES: dict[str, Any] = {
    "run_id": Run.id, "run_name": Run.name, "status": Run.status, "user_id": Run.user_id,
    "artifact_uri": Run.artifact_uri, "start_time": Run.start_time, "end_time": Run.end_time,
    "created": Run.start_time, "lifecycle_stage": Run.lifecycle_stage,
}
NUMERIC_ATTRIBUTES = frozenset({"start_time", "end_time", "created"})


def _attribute(key: str) -> Any:
    column = ATTRIBUTES.get(key) or ATTRIBUTES.get(key.lower().replace(" ", "_"))
    if column is None:
        raise InvalidRequestError(f"invalid attribute key {key!r}; expected one of {', '.join(sorted(ATTRIBUTES))}")
    return column


def _condition(c: Condition, sqlite: bool) -> ColumnElement[bool]:
    if c.entity == "metric":  # IN, not EXISTS: SQLite then reads the matches from the (key, value) index once
        return Run.id.in_(select(LatestMetric.run_id).where(
            LatestMetric.key == c.key, LatestMetric.is_nan.is_(False),
            numeric_compare(LatestMetric.value, c.comparator, c.value)))
    if c.entity in ("param", "tag"):
        table: Any = Param if c.entity == "param" else RunTag
        if c.comparator in ("IS NULL", "IS NOT NULL"):  # the key is absent / present
            present = exists().where(table.run_id == Run.id, table.key == c.key)
            return ~present if c.comparator == "IS NULL" else present
        return exists().where(table.run_id == Run.id, table.key == c.key,
                              string_compare(table.value, c.comparator, c.value, sqlite=sqlite))
    if c.entity == "dataset":
        if c.key not in ("name", "digest"):
            raise InvalidRequestError(f"filtering on datasets.{c.key} is not supported; use datasets.name or "
                                      "datasets.digest")
        column = Dataset.name if c.key == "name" else Dataset.digest
        return exists().where(RunInput.run_id == Run.id, Dataset.id == RunInput.dataset_id,
                              string_compare(column, c.comparator, c.value, sqlite=sqlite))
    column = _attribute(c.key)
    if c.key in NUMERIC_ATTRIBUTES:
        return numeric_compare(column, c.comparator, c.value)
    return string_compare(column, c.comparator, c.value, sqlite=sqlite)


def _order(q: Any, order: OrderBy) -> Any:
    if order.entity == "attribute":
        column = _attribute(order.key)
    else:
        table = {"metric": LatestMetric, "param": Param, "tag": RunTag}.get(order.entity)
        if table is None:
            raise InvalidRequestError(f"cannot order runs by {order.entity}s")
        joined: Any = aliased(table)
        q = q.outerjoin(joined, and_(joined.run_id == Run.id, joined.key == order.key))
        column = joined.value
    q = q.order_by(column.is_(None))
    return q.order_by(column.asc() if order.ascending else column.desc())


class RunSearch:
    def __init__(self, db: Database) -> None:
        self._db = db

    def search(self, experiment_ids: list[str], filter_text: str | None, view: ViewType, max_results: int,
               order_by: list[str] | None, page_token: str | None) -> Page[RunView]:
        try:
            conditions = parse_run_filter(filter_text)
            orders = parse_run_order_by(order_by)
        except FilterError as exc:
            raise InvalidRequestError(str(exc)) from None
        try:
            ids = [key for e in experiment_ids if (key := experiment_key(e)) is not None]
        except (TypeError, ValueError):
            raise InvalidRequestError(f"experiment_ids must be experiment ids; got {experiment_ids!r}") from None
        offset = decode_token(page_token)
        q = select(*RUN_COLUMNS).where(Run.experiment_id.in_(ids), lifecycle_clause(Run.lifecycle_stage, view))
        for c in conditions:
            q = q.where(_condition(c, self._db.is_sqlite))
        for o in orders:
            q = _order(q, o)
        q = q.order_by(Run.start_time.desc(), Run.id.asc()).offset(offset).limit(max_results + 1)
        with self._db.session() as s:
            rows = [RunRecord._make(row) for row in s.connection().execute(q)]
            views = RunService.views(s, rows[:max_results])
        token = encode_token(offset + max_results) if len(rows) > max_results else None
        return Page(views, token)
