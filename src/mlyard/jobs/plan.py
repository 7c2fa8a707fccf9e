"""Planning: a validated job spec becomes the rows the runner executes.

A command job is one step. A pipeline job is a parent plus one step per entry of ``jobs``; each
step carries everything it needs to run (command, code, environment, inputs as written, declared
inputs and outputs of its component) and the steps it depends on, found from its
``${{parent.jobs.<step>...}}`` bindings (reference §3.3). Bindings are resolved later, when the
step starts, because they name outputs that do not exist yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlyard.core.errors import InvalidRequestError, InvalidSpecError, SpecIssue
from mlyard.jobs.parallel import parallel_command
from mlyard.specs.bindings import find_bindings
from mlyard.specs.references import classify_path

STEP_FIELDS = ("command", "code", "environment", "environment_variables", "distribution", "resources", "limits")


@dataclass
class StepPlan:
    key: str  # the step's key in the pipeline; the job's own name for a command job
    spec: dict[str, Any]
    depends_on: list[str] = field(default_factory=list)


def _issue(message: str, *path: str | int) -> InvalidSpecError:
    return InvalidSpecError(issues=[SpecIssue(message=message, field=".".join(str(p) for p in path))])


def step_from_command_job(job: dict[str, Any]) -> dict[str, Any]:
    """The runnable step of a command job."""
    step = {k: job[k] for k in STEP_FIELDS if job.get(k) is not None}
    step.update(inputs=job.get("inputs") or {}, outputs=job.get("outputs") or {}, compute=job.get("compute"),
                declared_inputs=None, declared_outputs=None, is_deterministic=True,
                display_name=job.get("display_name"), tags=job.get("tags") or {})
    return step


def plan_pipeline(job: dict[str, Any], resolve_component: Callable[[str], dict[str, Any]],
                  mlyard_path: str = "") -> list[StepPlan]:
    """One plan per step, in the order the YAML lists them.

    Args:
        resolve_component: turns an ``azureml:`` component reference into the component's spec.
        mlyard_path: a folder holding only mlyard, for the batch engine of parallel steps in isolated environments.
    """
    if job.get("component") is not None:
        raise _issue("a pipeline job wrapping a pipeline component is not run by mlyard yet; list the steps "
                     "under jobs:", "component")
    settings = job.get("settings") or {}
    default_compute = settings.get("default_compute") or job.get("compute")
    plans = []
    for key, raw in (job.get("jobs") or {}).items():
        kind = raw.get("type") or "command"
        if kind == "parallel":
            step = _parallel_step(key, raw, mlyard_path)
        elif kind != "command":
            raise _issue(f"step '{key}' is a {kind} step; mlyard runs command and parallel steps (sweep and "
                         "pipeline-component steps come later)", "jobs", key, "type")
        else:
            step = _command_step(key, raw, resolve_component)
        step["compute"] = raw.get("compute") or default_compute
        plans.append(StepPlan(key, step, sorted(_dependencies(raw))))
    return plans


def _command_step(key: str, raw: dict[str, Any], resolve_component: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    component = raw.get("component")
    if isinstance(component, str):
        if classify_path(component) not in ("asset", "registry"):
            raise _issue(f"component {component!r} is neither a component file nor an azureml: reference",
                         "jobs", key, "component")
        component = resolve_component(component)
    if component is None:
        step = {k: raw[k] for k in STEP_FIELDS if raw.get(k) is not None}
        step.update(declared_inputs=None, declared_outputs=None, is_deterministic=True)
    else:
        if component.get("type", "command") != "command":
            raise _issue(f"step '{key}' names a {component.get('type')} component; only command components run "
                         "as steps", "jobs", key, "component")
        step = {k: component[k] for k in STEP_FIELDS if component.get(k) is not None}
        # run settings given on the step win over the component's
        for k in ("environment_variables", "distribution", "resources", "limits"):
            if raw.get(k):
                step[k] = {**(step.get(k) or {}), **raw[k]}
        step.update(declared_inputs=component.get("inputs") or {},
                    declared_outputs={n: (o or {}) for n, o in (component.get("outputs") or {}).items()},
                    is_deterministic=bool(component.get("is_deterministic", True)),
                    component=component.get("name"))
    step.update(inputs=raw.get("inputs") or {}, outputs=raw.get("outputs") or {},
                display_name=raw.get("display_name") or key, tags=raw.get("tags") or {})
    return step


def _parallel_step(key: str, raw: dict[str, Any], mlyard_path: str) -> dict[str, Any]:
    step = parallel_command(raw, mlyard_path)
    step.update(declared_inputs=None, declared_outputs=None, is_deterministic=True, inputs=raw.get("inputs") or {},
                outputs=raw.get("outputs") or {}, display_name=raw.get("display_name") or key,
                tags=raw.get("tags") or {}, parallel=True)
    return step


def _dependencies(raw: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for value in (raw.get("inputs") or {}).values():
        text = value.get("path") if isinstance(value, dict) else value
        if isinstance(value, dict) and "value" in value:
            text = value["value"]
        if isinstance(text, str):
            found |= {b.step for b in find_bindings(text) if b.step}
    return found


def local_paths(job: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, path) of every local path left in a job spec; a server never reads the client's files."""
    found: list[tuple[str, str]] = []

    def data(where: str, values: dict[str, Any] | None) -> None:
        for name, value in (values or {}).items():
            if isinstance(value, dict) and isinstance(value.get("path"), str) and _is_local(value["path"]):
                found.append((f"{where}.{name}.path", value["path"]))

    def runnable(where: str, spec: dict[str, Any]) -> None:
        if isinstance(spec.get("code"), str) and _is_local(spec["code"]):
            found.append((f"{where}code", spec["code"]))
        env = spec.get("environment")
        if isinstance(env, dict) and isinstance((env.get("build") or {}).get("path"), str) \
                and _is_local(env["build"]["path"]):
            found.append((f"{where}environment.build.path", env["build"]["path"]))
        if isinstance(spec.get("component"), dict):
            runnable(f"{where}component.", spec["component"])
        if isinstance(spec.get("task"), dict):  # a parallel step's code and environment
            runnable(f"{where}task.", spec["task"])

    data("inputs", job.get("inputs"))
    runnable("", job)
    for key, step in (job.get("jobs") or {}).items():
        if isinstance(step, dict):
            data(f"jobs.{key}.inputs", step.get("inputs"))
            runnable(f"jobs.{key}.", step)
    return found


def _is_local(path: str) -> bool:
    return "${{" not in path and classify_path(path) == "local"


def refuse_local_paths(job: dict[str, Any]) -> None:
    found = local_paths(job)
    if found:
        raise InvalidSpecError(issues=[SpecIssue(
            message=f"{value!r} is a local path; upload its content to a datastore first and give the "
                    "azureml://datastores/... URI (the mlyard CLI and SDK do this for you)", field=where)
            for where, value in found])


def check_job_name(name: str) -> str:
    import re

    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,254}$", name):
        raise InvalidRequestError(f"job name {name!r} is not valid: use letters, digits, '_' and '-', starting "
                                  "with a letter or digit (at most 255 characters)")
    return name
