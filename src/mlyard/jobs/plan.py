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
from mlyard.specs.bindings import find_bindings, single_binding
from mlyard.specs.references import classify_path

STEP_FIELDS = ("command", "code", "environment", "environment_variables", "distribution", "resources", "limits")


@dataclass
class StepPlan:
    key: str  # the step's key in the pipeline; the job's own name for a command job
    spec: dict[str, Any]
    depends_on: list[str] = field(default_factory=list)
    children: list[StepPlan] = field(default_factory=list)  # a pipeline-component step's own steps


def step_type(spec: dict[str, Any]) -> str:
    """The job type of a planned step's row."""
    return "sweep" if "sweep" in spec else "pipeline" if "pipeline_component" in spec else "command"


def bind_parent_outputs(written: dict[str, Any], records: dict[str, Any], outer: Any) -> None:
    """A step's outputs written as ``${{parent.outputs.z}}`` become the pipeline's outputs ``z``
    (``outer``: the pipeline's ``PipelineContext``)."""
    for n, value in written.items():
        text = value if isinstance(value, str) else (value or {}).get("path")
        bound = single_binding(text) if isinstance(text, str) else None
        if bound is not None and bound.kind == "parent_outputs" and n in records:
            outer.pipeline_outputs[bound.name or n] = records[n]


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
        elif kind == "sweep":
            from mlyard.jobs.sweep import plan_sweep_step

            step = plan_sweep_step(key, raw, lambda k, r: _command_step(k, r, resolve_component))
        elif kind == "pipeline":
            step, children = _pipeline_step(key, raw, job, resolve_component, mlyard_path)
        elif kind != "command":
            raise _issue(f"step '{key}' is a {kind} step; mlyard runs command, parallel, sweep and pipeline "
                         "steps", "jobs", key, "type")
        else:
            step = _command_step(key, raw, resolve_component)
        step["compute"] = raw.get("compute") or default_compute
        plans.append(StepPlan(key, step, sorted(_dependencies(raw)),
                              children if kind == "pipeline" else []))
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


PARAMETER_TYPES = ("string", "number", "integer", "boolean")


def unwrap_pipeline_component(job: dict[str, Any],
                              resolve_component: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """A pipeline job that wraps a pipeline component (``component:`` instead of ``jobs:``, reference §3.1) as
    the pipeline job it stands for: the component's steps, its inputs with the job's values over the defaults,
    its outputs with the job's settings over the declared ones."""
    component = job["component"]
    if isinstance(component, str):
        if classify_path(component) not in ("asset", "registry"):
            raise _issue(f"component {component!r} is neither a component file nor an azureml: reference",
                         "component")
        component = resolve_component(component)
    if not isinstance(component, dict) or component.get("type") != "pipeline":
        raise _issue("a pipeline job's component must be a pipeline component (type: pipeline, with jobs:)",
                     "component")
    declared = component.get("inputs") or {}
    given = job.get("inputs") or {}
    for n in given:
        if n not in declared:
            raise _issue(f"the component has no input '{n}' (inputs: {', '.join(sorted(declared)) or 'none'})",
                         "inputs", n)
    inputs: dict[str, Any] = {}
    for n, d in declared.items():
        if n in given:
            inputs[n] = given[n]
        elif (d or {}).get("default") is not None:
            inputs[n] = d["default"] if d.get("type") in PARAMETER_TYPES else {"type": d["type"], "path": d["default"]}
        elif not (d or {}).get("optional"):
            raise _issue(f"required component input '{n}' has no value: give it under the job's inputs:", "inputs")
    written = job.get("outputs") or {}
    outputs = {z: {**(d or {}), **(written.get(z) or {})} for z, d in (component.get("outputs") or {}).items()}
    return {**{k: v for k, v in job.items() if k != "component"}, "jobs": component.get("jobs") or {},
            "inputs": inputs, "outputs": outputs}


def _pipeline_step(key: str, raw: dict[str, Any], job: dict[str, Any],
                   resolve_component: Callable[[str], dict[str, Any]], mlyard_path: str,
                   ) -> tuple[dict[str, Any], list[StepPlan]]:
    """A pipeline-component step (reference §3.2 form 4, §4.1): a row of its own whose steps are planned
    like a pipeline's, under it; the pipeline's settings and compute apply inside."""
    component = raw.get("component")
    if isinstance(component, str):
        if classify_path(component) not in ("asset", "registry"):
            raise _issue(f"component {component!r} is neither a component file nor an azureml: reference",
                         "jobs", key, "component")
        component = resolve_component(component)
    if not isinstance(component, dict) or component.get("type") != "pipeline":
        kind = component.get("type") if isinstance(component, dict) else None
        raise _issue(f"step '{key}' is a pipeline step, but its component is a {kind or 'missing'} component; "
                     "give a pipeline component (type: pipeline, with jobs:)", "jobs", key, "component")
    settings = {k: v for k, v in (job.get("settings") or {}).items() if v is not None}
    compute = raw.get("compute") or settings.get("default_compute") or job.get("compute")
    inner = {"type": "pipeline", "jobs": component.get("jobs") or {}, "compute": compute,
             "settings": {**settings, "default_compute": compute} if compute else settings}
    try:
        children = plan_pipeline(inner, resolve_component, mlyard_path)
    except InvalidSpecError as exc:  # name the step the inner field belongs to
        raise InvalidSpecError(issues=[SpecIssue(message=i.message, field=f"jobs.{key}.component.{i.field}")
                                       for i in exc.issues]) from None
    written = raw.get("outputs") or {}
    outputs: dict[str, Any] = {}
    for z, declared in (component.get("outputs") or {}).items():
        spec = dict(declared or {})
        value = written.get(z)
        if isinstance(value, dict):
            bound = isinstance(value.get("path"), str) and single_binding(value["path"]) is not None
            spec.update({k: v for k, v in value.items() if v is not None and not (k == "path" and bound)})
        outputs[z] = spec
    step = {"pipeline_component": component.get("name") or key, "inputs": raw.get("inputs") or {},
            "declared_inputs": component.get("inputs") or {}, "declared_outputs": None, "outputs": outputs,
            "bound_outputs": written, "settings": inner["settings"], "is_deterministic": False,
            "display_name": raw.get("display_name") or key, "tags": raw.get("tags") or {}}
    return step, children


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
            for key, inner in (spec["component"].get("jobs") or {}).items():  # a pipeline component's steps
                if isinstance(inner, dict):
                    data(f"{where}component.jobs.{key}.inputs", inner.get("inputs"))
                    runnable(f"{where}component.jobs.{key}.", inner)
        if isinstance(spec.get("task"), dict):  # a parallel step's code and environment
            runnable(f"{where}task.", spec["task"])
        if isinstance(spec.get("trial"), dict):  # a sweep's trial command or component
            runnable(f"{where}trial.", spec["trial"])

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
