"""The runs table: columns for the params and metrics of the runs on a page, sorting in MLflow's order_by syntax."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlyard.core.paging import decode_token, encode_token
from mlyard.tracking.runs import RunView

MAX_KEY_COLUMNS = 12  # params and metrics each; the run page shows them all
PAGE_SIZES = (25, 50, 100, 250, 500, 1000)
SORTABLE_ATTRIBUTES = {"run_name": "Run", "status": "Status", "start_time": "Started", "user_id": "User"}


@dataclass
class RunsTable:
    runs: list[RunView]
    params: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    more_params: int = 0
    more_metrics: int = 0
    values: dict[str, dict[str, float]] = field(default_factory=dict)  # run id -> metric -> value


def runs_table(runs: list[RunView]) -> RunsTable:
    params = sorted({k for r in runs for k in r.params})
    metrics = sorted({m.key for r in runs for m in r.metrics})
    table = RunsTable(runs, params[:MAX_KEY_COLUMNS], metrics[:MAX_KEY_COLUMNS],
                      max(0, len(params) - MAX_KEY_COLUMNS), max(0, len(metrics) - MAX_KEY_COLUMNS))
    table.values = {r.row.id: {m.key: m.value for m in r.metrics} for r in runs}
    return table


def order_clause(sort: str, ascending: bool) -> str:
    """``metrics.acc`` -> ``metrics.`acc` DESC`` (backticks: keys may hold spaces and dots)."""
    entity, _, key = sort.partition(".")
    if entity in ("params", "metrics", "tags") and key:
        return f"{entity}.`{key.replace('`', '')}` {'ASC' if ascending else 'DESC'}"
    return f"attributes.{key or entity} {'ASC' if ascending else 'DESC'}"


def previous_token(token: str | None, size: int) -> str | None:
    """The page before ``token``'s (offset paging): None on the first page, '' for the first page itself."""
    offset = decode_token(token)
    if offset == 0:
        return None
    return encode_token(offset - size) if offset - size > 0 else ""


def page_number(token: str | None, size: int) -> int:
    return decode_token(token) // size + 1
