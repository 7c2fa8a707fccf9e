"""Experiments, runs, a run (params, tags, metric charts, artifacts, datasets), and comparing runs."""

from __future__ import annotations

import math
import posixpath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from mlyard.core.errors import InvalidRequestError, NotFoundError
from mlyard.core.paging import ViewType, decode_token
from mlyard.server.deps import get_services
from mlyard.server.services import Services
from mlyard.server.studio.auth import API_PREFIX, PREFIX, Signed, StudioRoute
from mlyard.server.studio.previews import IMAGES, kind_of, preview
from mlyard.server.studio.tables import (
    PAGE_SIZES,
    SORTABLE_ATTRIBUTES,
    order_clause,
    page_number,
    previous_token,
    runs_table,
)
from mlyard.server.studio.templating import render
from mlyard.tracking.artifacts import artifact_path
from mlyard.tracking.runs import RunView

router = APIRouter(route_class=StudioRoute, include_in_schema=False)
Svc = Annotated[Services, Depends(get_services)]
MAX_COMPARE = 10
MAX_POINTS = 100_000


def _experiments(services: Services) -> list[Any]:
    view: ViewType = "ACTIVE_ONLY"
    return services.experiments.search(view, None, ["creation_time DESC"], 1000, None).items


@router.get(PREFIX + "/", response_class=HTMLResponse)
@router.get(PREFIX + "/experiments", response_class=HTMLResponse)
def experiments(request: Request, session: Signed, services: Svc) -> Response:
    return render(request, "experiments.html", session=session, section="experiments",
                  experiments=_experiments(services))


@router.get(PREFIX + "/experiments/{experiment_id}", response_class=HTMLResponse)
def runs(request: Request, session: Signed, services: Svc, experiment_id: str,
         filter: Annotated[str, Query(max_length=2000)] = "",
         sort: Annotated[str, Query(max_length=300)] = "attributes.start_time",
         asc: bool = False, size: Annotated[int, Query(ge=1, le=1000)] = 100,
         page: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    experiment = services.experiments.get(experiment_id)
    decode_token(page)  # a mangled page link is a 400 page, not an empty table
    error = None
    try:
        result = services.run_search.search([experiment_id], filter or None, "ACTIVE_ONLY", size,
                                            [order_clause(sort, asc)], page or None)
    except InvalidRequestError as err:  # a bad filter is shown beside the box, with an empty table
        error, result = str(err), None
    table = runs_table(result.items if result else [])
    return render(request, "runs.html", session=session, section="experiments", experiment=experiment,
                  experiments=_experiments(services), table=table, filter=filter, sort=sort, asc=asc, size=size,
                  sizes=PAGE_SIZES, attributes=SORTABLE_ATTRIBUTES, error=error, page=page,
                  next_page=result.next_page_token if result else None,
                  prev_page=previous_token(page, size) if result else None,
                  page_number=page_number(page, size) if result else 1)


def _artifact_root(run: RunView) -> str:
    return artifact_path(run.row.artifact_uri)


@router.get(PREFIX + "/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, session: Signed, services: Svc, run_id: str) -> Response:
    run = services.runs.get(run_id)
    experiment = services.experiments.get(run.row.experiment_id)
    job = _job_of(services, run_id)
    models = [v for v in services.registry.all_versions() if v.record is not None and v.record.run_id == run_id]
    return render(request, "run.html", session=session, section="experiments", run=run, experiment=experiment,
                  job=job, models=models)


def _job_of(services: Services, run_id: str) -> Any:
    try:
        return services.jobs.get(run_id)  # a job's MLflow run is named after the job
    except NotFoundError:
        return None


@router.get(PREFIX + "/runs/{run_id}/artifacts", response_class=HTMLResponse)
def artifacts(request: Request, session: Signed, services: Svc, run_id: str,
              path: Annotated[str, Query(max_length=1024)] = "") -> Response:
    """One folder of the run's artifacts (an htmx fragment) or, for a file, its preview."""
    run = services.runs.get(run_id)
    rel = path.strip("/")
    if ".." in rel.split("/"):
        raise InvalidRequestError(f"artifact path {path!r} may not contain '..'")
    root = _artifact_root(run)
    full = f"{root}/{rel}" if rel else root
    entries = services.artifacts.list(full) if services.artifacts.store().size(full) is None else None
    if entries is None:  # a file
        with services.artifacts.open(full) as stream:
            shown = preview(rel, stream)
        return render(request, "artifact_preview.html", session=session, run=run, path=rel, preview=shown)
    items = sorted(entries, key=lambda e: (not e.is_dir, e.name))
    return render(request, "artifact_list.html", session=session, run=run, path=rel, entries=items,
                  parent=posixpath.dirname(rel) if rel else None)


@router.get(PREFIX + "/runs/{run_id}/raw")
def artifact_raw(session: Signed, services: Svc, run_id: str, path: Annotated[str, Query(max_length=1024)]) -> Response:
    """A file of the run's artifacts, as itself (images in previews); never rendered as HTML."""
    run = services.runs.get(run_id)
    rel = path.strip("/")
    if not rel or ".." in rel.split("/"):
        raise InvalidRequestError(f"artifact path {path!r} must name a file, without '..'")
    stream = services.artifacts.open(f"{_artifact_root(run)}/{rel}")
    media = IMAGES.get(posixpath.splitext(rel)[1].lower(), "application/octet-stream")
    if media == "image/svg+xml":  # an SVG may hold script: shown only as an image, under a sandbox policy
        headers = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox"}
    else:
        headers = {}
    headers["X-Content-Type-Options"] = "nosniff"
    if kind_of(rel) != "image":
        headers["Content-Disposition"] = f'attachment; filename="{posixpath.basename(rel)}"'

    def chunks() -> Any:
        with stream:
            while block := stream.read(1 << 16):
                yield block

    return StreamingResponse(chunks(), media_type=media, headers=headers)


@router.get(PREFIX + "/compare", response_class=HTMLResponse)
def compare(request: Request, session: Signed, services: Svc,
            runs: Annotated[list[str], Query(max_length=64)] = []) -> Response:  # noqa: B006
    ids = list(dict.fromkeys(r for r in runs if r))
    if not 2 <= len(ids) <= MAX_COMPARE:
        raise InvalidRequestError(f"compare takes 2 to {MAX_COMPARE} runs; {len(ids)} were selected: tick them in "
                                  "the runs table")
    views = [services.runs.get(r) for r in ids]
    param_keys = sorted({k for v in views for k in v.params})
    metric_keys = sorted({m.key for v in views for m in v.metrics})
    differ = {k for k in param_keys if len({v.params.get(k) for v in views}) > 1}
    latest = {v.row.id: {m.key: m.value for m in v.metrics} for v in views}
    chart = {"runs": [{"id": v.row.id, "name": v.row.name} for v in views], "keys": metric_keys,
             "axes": parallel_axes(views, param_keys, metric_keys, latest)}
    return render(request, "compare.html", session=session, section="experiments", runs=views,
                  param_keys=param_keys, metric_keys=metric_keys, differ=differ, latest=latest, chart=chart)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def parallel_axes(views: list[RunView], param_keys: list[str], metric_keys: list[str],
                  latest: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """The parallel-coordinates axes: each numeric param, then each metric's latest value (one per run)."""
    axes = []
    for key in param_keys:
        values = [_number(v.params.get(key)) for v in views]
        if any(x is not None for x in values) and all(x is not None or key not in v.params
                                                      for x, v in zip(values, views, strict=True)):
            axes.append({"name": key, "kind": "param", "values": values})
    for key in metric_keys:
        values = [_number(str(latest[v.row.id][key])) if key in latest[v.row.id] else None for v in views]
        axes.append({"name": key, "kind": "metric", "values": values})
    return axes


@router.get(API_PREFIX + "runs/{run_id}/metrics")
def metric_history(session: Signed, services: Svc, run_id: str, key: Annotated[str, Query(max_length=250)]) -> Any:
    """One metric's points as columns (step, timestamp, value), for the charts."""
    page = services.run_logger.history(run_id, key, MAX_POINTS, None)
    steps, times, values = [], [], []
    for point in page.items:  # (key, value, timestamp, step, is_nan, ...)
        steps.append(point[3])
        times.append(point[2])
        values.append(point[1] if not point[4] and math.isfinite(point[1]) else None)
    return {"run_id": run_id, "key": key, "step": steps, "timestamp": times, "value": values,
            "truncated": page.next_page_token is not None}
