"""The job a schedule's firing submits: its spec, name, display name, experiment and link back.

``create_job`` is stored inline (the client loaded the job file and uploaded its local code and data)
or names an existing job (``azureml:<job>``, alone or as the ``job:`` of an object whose keys
override it); an existing job's spec is read when the schedule fires, as Azure does.

The triggered job is linked to its schedule twice: the tag ``mlyard.schedule: <schedule>`` (also an
MLflow run tag, so ``mlflow.search_runs`` finds a schedule's runs) and a note that ``job show`` prints.
Its name is derived from the schedule and the instant (``<schedule>-YYYYMMDDThhmmssz``), so a
firing retried after a crash finds the job it already created instead of creating a second one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from mlyard.core.errors import InvalidRequestError, InvalidSpecError, NotFoundError, SpecIssue
from mlyard.jobs.plan import refuse_local_paths
from mlyard.specs import load_spec_dict
from mlyard.store.jobs_schema import Job

SCHEDULE_TAG = "mlyard.schedule"
_MERGED = ("inputs", "outputs", "settings", "tags", "properties", "environment_variables")


def stamp(at: datetime) -> str:
    """Azure's suffix of a triggered job's display name: the UTC due instant as ``YYYYMMDDThhmmssZ``."""
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def display_name(schedule: str, at: datetime) -> str:
    return f"{schedule}-{stamp(at)}"


def job_name(schedule: str, at: datetime) -> str:
    """A job name (letters, digits, ``_`` and ``-``) unique to one schedule and instant."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", schedule).lstrip("_-") or "schedule"
    return f"{safe[:200]}-{stamp(at).lower()}"


def job_note(schedule: str, at: datetime, *, catch_up: bool) -> str:
    late = " (a catch-up: the server was down at that time)" if catch_up else ""
    return f"started by schedule {schedule} for its firing due {at.astimezone(UTC).isoformat()}{late}"


def referenced_job(create_job: Any) -> str | None:
    """The job ``create_job`` names (``azureml:<job>``, alone or as ``job:``), or None when it is inline."""
    ref = create_job if isinstance(create_job, str) else create_job.get("job") if isinstance(create_job, dict) else None
    if isinstance(ref, str) and ref.startswith("azureml:"):
        return ref[len("azureml:"):].strip()
    return None


def _existing_spec(session: Session, name: str) -> dict[str, Any]:
    row = session.get(Job, name)
    if row is None or row.parent is not None:
        raise NotFoundError(f"create_job names job {name!r}, which does not exist; 'mlyard job list' shows the "
                            "jobs, or give the job file instead", details={"field": "create_job", "job": name})
    spec = {k: v for k, v in dict(row.spec).items() if k not in ("step", "name")}
    spec.setdefault("experiment_name", row.experiment_name)
    return spec


def resolve_job(session: Session, create_job: Any) -> dict[str, Any]:
    """The job spec ``create_job`` stands for (not yet validated)."""
    ref = referenced_job(create_job)
    if ref is None:
        if not isinstance(create_job, dict):
            raise InvalidRequestError("create_job must be a job (inline), azureml:<job name> or an object with job: "
                                      "azureml:<job name>", details={"field": "create_job"})
        return dict(create_job)
    spec = _existing_spec(session, ref)
    overrides = {k: v for k, v in create_job.items() if k != "job"} if isinstance(create_job, dict) else {}
    for key, value in overrides.items():
        if key in _MERGED and isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


def check_job(session: Session, create_job: Any) -> None:
    """Refuse, at create, a ``create_job`` that could never be submitted (errors point into ``create_job``)."""
    spec = resolve_job(session, create_job)
    try:
        loaded = load_spec_dict(spec, "job").to_dict()
        refuse_local_paths(loaded)
    except InvalidSpecError as exc:
        raise InvalidSpecError(issues=[SpecIssue(message=i.message, field=f"create_job.{i.field}".rstrip("."),
                                                 file=i.file, line=i.line) for i in exc.issues]) from None


def job_for_firing(session: Session, schedule: str, create_job: Any, at: datetime) -> tuple[dict[str, Any], str]:
    """The spec to submit for the firing of ``schedule`` due ``at``, and its experiment."""
    spec = resolve_job(session, create_job)
    spec["tags"] = {**(spec.get("tags") or {}), SCHEDULE_TAG: schedule}
    spec.pop("name", None)
    experiment = str(spec.get("experiment_name") or schedule)
    return spec, experiment
