"""From an invocation of a batch deployment to the job spec that runs it.

A ``type: model`` deployment becomes a command job that runs mlyard's batch engine
(``python -m mlyard.serving.batch``) over one data input, with the model as a second input
(``mlflow_model``/``custom_model``, so the runner resolves its folder) and one output, ``score``,
which holds ``output_file_name``. A ``type: pipeline`` deployment becomes a pipeline job: the
component's steps, with the invocation's inputs and outputs bound to the component's. Run settings
come from the deployment, overridden by the invocation (``--mini-batch-size``, ``--set ...``).
"""

from __future__ import annotations

import os
import shlex
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mlyard.assets.service import AssetService
from mlyard.core.errors import InvalidRequestError, NotFoundError
from mlyard.jobs.environments import mlyard_only_path
from mlyard.jobs.parallel import PROGRESS_FILE, REPORT_FILE
from mlyard.jobs.runner import JobRunner
from mlyard.specs.endpoints import BatchSettings
from mlyard.specs.references import classify_path
from mlyard.store.batch_schema import BatchDeploymentRow, BatchEndpointRow
from mlyard.store.jobs_schema import Job

DATA_TYPES = ("uri_file", "uri_folder")
LITERAL_TYPES = ("string", "number", "integer", "boolean")
# what ``invoke --set`` may change, and where it lives in the deployment's settings
SETTABLE = ("mini_batch_size", "max_concurrency_per_instance", "error_threshold", "mini_batch_error_threshold",
            "logging_level", "output_file_name", "output_action", "retry_settings.max_retries",
            "retry_settings.timeout", "instance_count")
# a no-code MLflow deployment names no environment: Azure runs it in a curated MLflow image; the runner runs
# curated environments with the server's interpreter, which holds mlflow and mlyard's batch engine
NO_CODE_ENVIRONMENT = "azureml:AzureML-mlflow-ubuntu20.04-py38-cpu-inference@latest"


@dataclass
class Invocation:
    """What ``batch-endpoint invoke`` asks for, local paths already uploaded by the client."""

    deployment_name: str | None = None
    input: dict[str, Any] | None = None  # {"type": ..., "path": ...}
    inputs: dict[str, Any] = field(default_factory=dict)  # --file inputs.yml
    outputs: dict[str, Any] = field(default_factory=dict)
    output_path: str | None = None
    mini_batch_size: int | None = None
    instance_count: int | None = None
    settings: dict[str, str] = field(default_factory=dict)  # --set PATH=VALUE
    job_name: str | None = None
    experiment_name: str | None = None


@dataclass(frozen=True)
class Submission:
    name: str
    display_name: str
    spec: dict[str, Any]


def _bad(message: str, field_name: str) -> InvalidRequestError:
    return InvalidRequestError(message, details={"field": field_name})


class InvocationBuilder:
    """Builds the job of one invocation."""

    def __init__(self, assets: AssetService, jobs: JobRunner) -> None:
        self._assets = assets
        self._jobs = jobs

    def source_job(self, reference: str) -> Job:
        """The job a pipeline deployment's ``job_definition`` names (``azureml:<job>`` or ``azureml://jobs/<job>``)."""
        name = reference.removeprefix("azureml://jobs/").removeprefix("azureml:").strip("/")
        try:
            return self._jobs.get(name)
        except NotFoundError:
            raise NotFoundError(f"job_definition names job {name!r}, which does not exist; 'mlyard job list' shows "
                                "the jobs", details={"field": "job_definition"}) from None

    def build(self, endpoint: BatchEndpointRow, deployment: BatchDeploymentRow, inv: Invocation) -> Submission:
        name = inv.job_name or f"batchjob-{uuid.uuid4()}"
        display = f"{endpoint.name}-{deployment.name}"
        tags = {"mlyard.batchEndpoint": endpoint.name, "mlyard.batchDeployment": deployment.name}
        if inv.output_path is not None and classify_path(inv.output_path) != "datastore":
            raise _bad(f"--output-path {inv.output_path!r} is not a datastore path; give "
                       "azureml://datastores/<datastore>/paths/<folder>", "output_path")
        if deployment.type == "pipeline":
            spec = self._pipeline(deployment, inv)
        else:
            spec = self._model(deployment, inv, name)
        spec["tags"] = {**(spec.get("tags") or {}), **tags}
        return Submission(name, display, spec)

    # -- model deployments ---------------------------------------------------------------------

    def _settings(self, deployment: BatchDeploymentRow, inv: Invocation) -> tuple[BatchSettings, int, int]:
        """The run settings after the invocation's overrides, the instance count, the mini-batch error threshold."""
        settings: dict[str, Any] = {k: v for k, v in (deployment.spec.get("settings") or {}).items()
                                    if k != "environment_variables"}
        settings["retry_settings"] = dict(settings.get("retry_settings") or {})
        instances = int((deployment.spec.get("resources") or {}).get("instance_count")
                        or settings.pop("instance_count", None) or 1)
        settings.pop("instance_count", None)
        mini_batch_errors = -1
        for key, value in inv.settings.items():
            if key not in SETTABLE:
                raise _bad(f"--set {key}=...: a batch invocation can set {', '.join(SETTABLE)}", key)
            if key == "instance_count":
                instances = self._int(value, key)
            elif key == "mini_batch_error_threshold":
                mini_batch_errors = self._int(value, key)
            elif key.startswith("retry_settings."):
                settings["retry_settings"][key.split(".", 1)[1]] = value
            else:
                settings[key] = value
        if inv.mini_batch_size is not None:
            settings["mini_batch_size"] = inv.mini_batch_size
        if inv.instance_count is not None:
            instances = inv.instance_count
        if instances < 1:
            raise _bad(f"instance count {instances} must be at least 1", "instance_count")
        if mini_batch_errors < -1:
            raise _bad(f"mini_batch_error_threshold {mini_batch_errors} must be -1 (no limit) or 0 or more",
                       "mini_batch_error_threshold")
        try:
            parsed = BatchSettings.model_validate(settings)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise _bad(f"setting {where}: {first['msg']} (got {first.get('input')!r})", where) from None
        name = parsed.output_file_name
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise _bad(f"output_file_name {name!r} must be a plain file name, e.g. predictions.csv",
                       "output_file_name")
        return parsed, instances, mini_batch_errors

    @staticmethod
    def _int(value: Any, key: str) -> int:
        try:
            return int(str(value))
        except ValueError:
            raise _bad(f"--set {key}={value}: a whole number is expected", key) from None

    def _data_input(self, deployment: BatchDeploymentRow, inv: Invocation) -> dict[str, Any]:
        given = inv.input
        if given is None:
            if len(inv.inputs) != 1:
                raise _bad(f"deployment {deployment.name!r} is a model deployment: it scores exactly one data input; "
                           "give it with --input (or one entry under inputs: in --file)", "input")
            given = next(iter(inv.inputs.values()))
            if not isinstance(given, dict) or not given.get("path"):
                raise _bad("the input of a model deployment is data: {type: uri_folder, path: ...}", "inputs")
        path = str(given.get("path") or "")
        if not path:
            raise _bad("--input is empty; give a local file or folder, azureml:<data>:<version> or a datastore path",
                       "input")
        type_ = given.get("type")
        if type_ is None and classify_path(path) == "asset":
            try:
                type_ = self._assets.resolve("data", path).asset_type
            except NotFoundError as exc:
                raise NotFoundError(f"--input: {exc.message}", details={"field": "input", **exc.details}) from None
        type_ = type_ or "uri_folder"
        if type_ not in DATA_TYPES:
            raise _bad(f"input type {type_!r} cannot be scored by a model deployment: it reads uri_file or "
                       "uri_folder inputs (--input-type)", "input_type")
        return {"type": type_, "path": path}

    def _model(self, deployment: BatchDeploymentRow, inv: Invocation, job_name: str) -> dict[str, Any]:
        spec = deployment.spec
        settings, instances, mini_batch_errors = self._settings(deployment, inv)
        model = self._assets.resolve("model", f"azureml:{deployment.model}")
        code = spec.get("code_configuration")
        retry = settings.retry_settings
        jobdir = self._jobs.jobs_dir / job_name
        words = ["python", "-m", "mlyard.serving.batch", "--input", "${{inputs.data}}", "--output",
                 "${{outputs.score}}", "--model", "${{inputs.model}}"]
        for what, text in (("code_configuration.scoring_script", (code or {}).get("scoring_script", "")),
                           ("output_file_name", settings.output_file_name)):
            if "${{" in text or "$[[" in text:  # the runner would read it as an expression of the command
                raise _bad(f"{what} {text!r} holds an expression (${{{{ or $[[); name a plain file", what)
        if code is not None:
            words += ["--code", ".", "--scoring-script", shlex.quote(code["scoring_script"])]
        options: list[tuple[str, Any]] = [
            ("--mini-batch-size", settings.mini_batch_size), ("--instance-count", instances),
            ("--max-concurrency-per-instance", settings.max_concurrency_per_instance),
            ("--max-retries", retry.max_retries), ("--timeout", retry.timeout),
            ("--error-threshold", settings.error_threshold), ("--mini-batch-error-threshold", mini_batch_errors),
            ("--output-action", settings.output_action), ("--output-file-name", settings.output_file_name),
            ("--logging-level", settings.logging_level), ("--progress", str(jobdir / PROGRESS_FILE)),
            ("--report", str(jobdir / REPORT_FILE))]
        words += [w for option, value in options for w in (option, shlex.quote(str(value)))]
        output: dict[str, Any] = {"type": "uri_folder"}
        if inv.output_path:
            output["path"] = inv.output_path
        variables = {str(k): str(v) for k, v in ((spec.get("settings") or {}).get("environment_variables")
                                                  or {}).items()}
        # in an isolated environment (a uv venv built from the deployment's) the engine must still import
        variables["PYTHONPATH"] = os.pathsep.join(
            p for p in (mlyard_only_path(self._jobs.jobs_dir.parent), variables.get("PYTHONPATH", "")) if p)
        job: dict[str, Any] = {
            "type": "command", "command": " ".join(words),
            "inputs": {"data": self._data_input(deployment, inv),
                       "model": {"type": model.asset_type or "custom_model", "path": f"azureml:{deployment.model}"}},
            "outputs": {"score": output},
            "environment_variables": variables,
        }
        if code is not None:
            job["code"] = code["code"]
        job["environment"] = spec["environment"] if spec.get("environment") is not None else NO_CODE_ENVIRONMENT
        if spec.get("compute"):
            job["compute"] = spec["compute"]
        if spec.get("description"):
            job["description"] = spec["description"]
        return job

    # -- pipeline deployments ------------------------------------------------------------------

    def _pipeline(self, deployment: BatchDeploymentRow, inv: Invocation) -> dict[str, Any]:
        spec = deployment.spec
        if inv.settings or inv.mini_batch_size is not None or inv.instance_count is not None:
            raise _bad(f"deployment {deployment.name!r} is a pipeline deployment: --set, --mini-batch-size and "
                       "--instance-count apply to model deployments; give the pipeline's inputs in --file", "settings")
        if spec.get("job_definition"):
            source = dict(self.source_job(spec["job_definition"]).spec)
            declared_in = {n: self._declared(v) for n, v in (source.get("inputs") or {}).items()}
            declared_out = {n: (v if isinstance(v, dict) else {}) for n, v in (source.get("outputs") or {}).items()}
            base = {k: v for k, v in source.items() if k not in ("name", "display_name", "experiment_name", "step")}
        else:
            component = spec["component"]
            if isinstance(component, str):
                component = dict(self._assets.resolve("component", component).spec)
            declared_in = dict(component.get("inputs") or {})
            declared_out = {n: (v or {}) for n, v in (component.get("outputs") or {}).items()}
            base = {"type": "pipeline", "jobs": component.get("jobs") or {}}
            if component.get("description"):
                base["description"] = component["description"]
        given = dict(inv.inputs)
        if inv.input is not None:
            data = [n for n, d in declared_in.items() if (d or {}).get("type") not in LITERAL_TYPES]
            if len(data) != 1:
                raise _bad(f"pipeline deployment {deployment.name!r} has {len(data)} data inputs "
                           f"({', '.join(data) or 'none'}); give them by name in --file inputs.yml", "input")
            given[data[0]] = inv.input
        unknown = sorted(set(given) - set(declared_in))
        if unknown:
            raise _bad(f"pipeline deployment {deployment.name!r} has no input {unknown[0]!r} (inputs: "
                       f"{', '.join(declared_in) or 'none'})", f"inputs.{unknown[0]}")
        inputs: dict[str, Any] = {}
        for n, decl in declared_in.items():
            decl = decl or {}
            if n in given:
                inputs[n] = self._bound(given[n], decl)
            elif decl.get("default") is not None:
                default = decl["default"]
                inputs[n] = default if decl.get("type") in LITERAL_TYPES else {"type": decl.get("type"),
                                                                                "path": default}
            elif not decl.get("optional"):
                raise _bad(f"input {n!r} of pipeline deployment {deployment.name!r} is required: give it under "
                           "inputs: in --file inputs.yml", f"inputs.{n}")
        unknown = sorted(set(inv.outputs) - set(declared_out))
        if unknown:
            raise _bad(f"pipeline deployment {deployment.name!r} has no output {unknown[0]!r} (outputs: "
                       f"{', '.join(declared_out) or 'none'})", f"outputs.{unknown[0]}")
        outputs: dict[str, Any] = {}
        for n, decl in declared_out.items():
            chosen = inv.outputs.get(n)
            out = {"type": decl.get("type") or "uri_folder"}
            if isinstance(chosen, dict):
                out.update({k: v for k, v in chosen.items() if v is not None})
            outputs[n] = out
        settings = {**(base.get("settings") or {}), **(spec.get("settings") or {})}
        return {**base, "inputs": inputs, "outputs": outputs, "settings": settings}

    @staticmethod
    def _declared(value: Any) -> dict[str, Any]:
        """A pipeline job's input as a declaration: data keeps its type, a literal is optional with its value."""
        if isinstance(value, dict) and "path" in value:
            return {"type": value.get("type") or "uri_folder", "default": value.get("path")}
        if isinstance(value, dict) and "value" in value:
            return {"type": "string", "default": value["value"]}
        return {"type": "string", "default": value}

    @staticmethod
    def _bound(value: Any, decl: dict[str, Any]) -> Any:
        if isinstance(value, dict) and "path" in value:
            return {"type": value.get("type") or decl.get("type") or "uri_folder", "path": value["path"],
                    **({"mode": value["mode"]} if value.get("mode") else {})}
        if isinstance(value, dict):
            for key in ("value", "default"):
                if key in value:
                    return value[key]
            raise _bad(f"input value {value!r} is neither data ({{type, path}}) nor a literal", "inputs")
        return value
