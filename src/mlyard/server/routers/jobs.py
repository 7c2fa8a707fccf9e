"""``/api/v1/jobs`` and ``/api/v1/computes``: submit, follow, cancel jobs; name computes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from mlyard.auth.tokens import Principal
from mlyard.core.errors import AlreadyExistsError, NotFoundError
from mlyard.core.timeutil import now_ms
from mlyard.jobs.parallel import PROGRESS_FILE
from mlyard.jobs.sweep import trial_table
from mlyard.server.deps import get_principal, get_services
from mlyard.server.services import Services
from mlyard.specs import load_spec_dict
from mlyard.store.jobs_schema import Compute, Job

router = APIRouter(tags=["jobs"])
Svc = Annotated[Services, Depends(get_services)]
Who = Annotated[Principal, Depends(get_principal)]


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The job spec (Azure ML YAML fields), local content already uploaded.")
    name: str | None = Field(default=None, max_length=255, description="Job name (default: the spec's, or new).")
    experiment_name: str | None = Field(default=None, max_length=500)
    display_name: str | None = Field(default=None, max_length=255)
    env_mode: str | None = Field(default=None, description="inherit (server interpreter) or isolated (uv venv).")


class JobRead(BaseModel):
    name: str
    type: str
    status: str
    display_name: str | None
    experiment_name: str
    experiment_id: str
    run_id: str = Field(description="The MLflow run of the job (its name, as on Azure ML).")
    parent: str | None
    step: str | None
    compute: str | None
    env_mode: str
    created_at: int
    started_at: int | None
    ended_at: int | None
    created_by: str
    error: str | None
    notes: list[Any]
    reused_from: str | None
    depends_on: list[Any]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    steps: list[JobRead] | None = None
    spec: dict[str, Any] | None = None
    progress: dict[str, Any] | None = Field(default=None, description="A batch scoring job's or parallel step's "
                                            "progress: mini-batches, files, rows, rows/s, failed files.")
    trials: list[dict[str, Any]] | None = Field(default=None, description="A sweep's trials, best first by the "
                                                "objective: params, metric, status, times, early termination.")

    @classmethod
    def of(cls, row: Job, *, steps: list[Job] | None = None, with_spec: bool = False,
           jobs_dir: Path | None = None, trials: list[dict[str, Any]] | None = None) -> JobRead:
        return cls(
            name=row.name, type=row.type, status=row.status, display_name=row.display_name,
            experiment_name=row.experiment_name, experiment_id=str(row.experiment_id), run_id=row.name,
            parent=row.parent, step=row.step, compute=row.compute, env_mode=row.env_mode, created_at=row.created_at,
            started_at=row.started_at, ended_at=row.ended_at, created_by=row.created_by, error=row.error,
            notes=row.notes or [], reused_from=row.reused_from, depends_on=row.depends_on or [],
            inputs=row.inputs or {}, outputs=row.outputs or {},
            steps=[cls.of(s, jobs_dir=jobs_dir) for s in steps] if steps is not None else None,
            spec=row.spec if with_spec else None,
            progress=_progress(jobs_dir / row.name / PROGRESS_FILE) if jobs_dir is not None else None,
            trials=trials,
        )


def _progress(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):  # none (not a batch job), or being replaced right now
        return None
    return value if isinstance(value, dict) else None


class LogChunk(BaseModel):
    text: str
    offset: int = Field(description="Where the next read starts.")
    status: str
    done: bool = Field(description="The job has ended and the log has been read to its end.")


class ComputeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any]


class ComputeRead(BaseModel):
    name: str
    type: str
    executor: str
    max_parallel: int
    spec: dict[str, Any]
    created_at: int
    created_by: str

    @classmethod
    def of(cls, row: Compute) -> ComputeRead:
        kind = str(row.spec.get("type") or "amlcompute")
        return cls(name=row.name, type=kind, executor="ray" if kind == "ray" else "local",
                   max_parallel=int(row.spec.get("max_instances") or 1), spec=row.spec, created_at=row.created_at,
                   created_by=row.created_by)


@router.post("/api/v1/jobs", response_model=JobRead, status_code=201,
             summary="Submit a command, pipeline or sweep job")
def create_job(body: JobCreate, services: Svc, who: Who) -> JobRead:
    row = services.jobs.submit(body.spec, actor=who.name, role=who.role, name=body.name,
                               experiment_name=body.experiment_name, display_name=body.display_name,
                               env_mode=body.env_mode)
    return JobRead.of(row, steps=services.jobs.children(row.name) if row.type in ("pipeline", "sweep") else None)


@router.get("/api/v1/jobs", response_model=list[JobRead], summary="List jobs, newest first")
def list_jobs(services: Svc, parent_job_name: Annotated[str | None, Query(max_length=255)] = None,
              max_results: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[JobRead]:
    return [JobRead.of(r) for r in services.jobs.list(parent_job_name, max_results)]


@router.get("/api/v1/jobs/{name}", response_model=JobRead,
            summary="Show a job (a pipeline with its steps, a sweep with its trials)")
def show_job(name: str, services: Svc) -> JobRead:
    row = services.jobs.get(name)
    trials = trial_table(services.jobs, row) if row.type == "sweep" else None
    return JobRead.of(row, steps=services.jobs.children(name) if row.type in ("pipeline", "sweep") else None,
                      with_spec=True, jobs_dir=services.jobs.jobs_dir, trials=trials)


@router.post("/api/v1/jobs/{name}/cancel", response_model=JobRead, summary="Cancel a job and kill its processes")
def cancel_job(name: str, services: Svc, who: Who) -> JobRead:
    return JobRead.of(services.jobs.cancel(name, who.name))


@router.get("/api/v1/jobs/{name}/logs", response_model=LogChunk, summary="Read a job's log from an offset")
def job_logs(name: str, services: Svc, offset: Annotated[int, Query(ge=0)] = 0,
             limit: Annotated[int, Query(ge=1, le=4 << 20)] = 1 << 20) -> LogChunk:
    status = services.jobs.get(name).status
    data, next_offset = services.jobs.read_log(name, offset, limit)
    done = status in ("Completed", "Failed", "Canceled") and len(data) < limit
    return LogChunk(text=data.decode(errors="replace"), offset=next_offset, status=status, done=done)


@router.post("/api/v1/computes", response_model=ComputeRead, status_code=201, tags=["computes"],
             summary="Create a compute (a name for an executor and its limits)")
def create_compute(body: ComputeCreate, services: Svc, who: Who) -> ComputeRead:
    spec = load_spec_dict(body.spec, "compute").to_dict()

    def write(s: Any) -> Compute:
        if s.get(Compute, spec["name"]) is not None:
            raise AlreadyExistsError(f"compute {spec['name']!r} already exists; delete it first to change it")
        row = Compute(name=spec["name"], spec=spec, created_at=now_ms(), created_by=who.name)
        s.add(row)
        return row

    return ComputeRead.of(services.db.run_in_transaction(write))


@router.get("/api/v1/computes", response_model=list[ComputeRead], tags=["computes"], summary="List computes")
def list_computes(services: Svc) -> list[ComputeRead]:
    from sqlalchemy import select

    with services.db.session() as s:
        return [ComputeRead.of(r) for r in s.scalars(select(Compute).order_by(Compute.name))]


def _compute(services: Services, name: str) -> Compute:
    with services.db.session() as s:
        row = s.get(Compute, name)
    if row is None:
        raise NotFoundError(f"compute {name!r} not found; 'mlyard compute list' shows the computes")
    return row


@router.get("/api/v1/computes/{name}", response_model=ComputeRead, tags=["computes"], summary="Show a compute")
def show_compute(name: str, services: Svc) -> ComputeRead:
    return ComputeRead.of(_compute(services, name))


@router.delete("/api/v1/computes/{name}", status_code=204, tags=["computes"], summary="Delete a compute")
def delete_compute(name: str, services: Svc) -> None:
    _compute(services, name)
    services.db.run_in_transaction(lambda s: s.delete(s.get(Compute, name)))
