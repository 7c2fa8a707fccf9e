"""What a step runs with: its inputs, outputs, environment, cache key, working folder and variables.

Bindings resolve in the parent's context when the step starts (reference §1.3, §3.3): pipeline
inputs, upstream steps' outputs and inputs. Data becomes a datastore location plus a content
identity; outputs get a plan (where they go, whether they are registered). The cache key is what
step reuse compares (reference §3.5, by content rather than by reference).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlyard.assets.service import AssetService
from mlyard.core.errors import InvalidRequestError, MlyardError, NotFoundError
from mlyard.core.hashing import sha256_json
from mlyard.jobs.data import DataRef, JobData
from mlyard.jobs.environments import PreparedEnvironment
from mlyard.jobs.render import literal_text
from mlyard.specs.bindings import find_bindings, single_binding
from mlyard.specs.references import classify_path, parse_asset_reference, parse_datastore_uri
from mlyard.store.blobs import DatastoreRegistry
from mlyard.store.jobs_schema import Job

# Azure's curated environments: ``azureml:AzureML-...`` names, and every environment in Azure's own
# ``azureml`` registry (``azureml://registries/azureml/environments/sklearn-1.5/labels/latest``).
CURATED_PREFIXES = ("azureml-", "azureml://registries/azureml/")


@dataclass
class PipelineContext:
    """What steps of one pipeline see of their parent while it runs."""

    top: Job
    inputs: dict[str, Any]
    done: dict[str, Job] = field(default_factory=dict)
    pipeline_outputs: dict[str, Any] = field(default_factory=dict)
    root: str | None = None  # the top job, when ``top`` is a pipeline-component step inside it


class StepResolver:
    """The resolving part of the runner (mixed into ``JobRunner``)."""

    _assets: AssetService
    _data: JobData
    _datastores: DatastoreRegistry
    server_url: str

    def _resolve_value(self, value: Any, ctx: PipelineContext | None, what: str,
                       declared: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """A step or pipeline input value, bindings resolved: ``{"kind": "literal"|"data", ...}`` or None."""
        if value is None:
            return None
        if isinstance(value, dict) and "path" not in value and "value" in value:
            return self._resolve_value(value["value"], ctx, what, declared)
        if isinstance(value, dict):
            path = value["path"]
            type_ = value.get("type")
            mode = value.get("mode") or (declared or {}).get("mode")
            bound = self._binding(path, ctx) if "${{" in path else None
            if bound is not None:
                if bound.get("kind") != "data":
                    raise InvalidRequestError(f"{what}: {path} is a literal, not data")
                return {**bound, "type": type_ or bound["type"], "mode": mode or bound.get("mode")}
            try:
                ref = self._data.resolve(path, type_ or "uri_folder")
            except MlyardError as exc:  # say which input it is
                raise type(exc)(f"{what}: {exc.message}", details=exc.details) from None
            return {**ref.to_json(), "mode": mode}
        if isinstance(value, str) and "${{" in value:
            single = single_binding(value)
            if single is not None:
                bound = self._binding(value, ctx)
                if bound is not None and bound.get("kind") == "data" and (declared or {}).get("mode") \
                        and not bound.get("mode"):
                    bound = {**bound, "mode": declared["mode"]}  # type: ignore[index]
                return bound
            text = value
            for b in reversed(find_bindings(value)):
                part = self._binding(b.text, ctx)
                shown = "" if part is None else (literal_text(part["value"]) if part["kind"] == "literal"
                                                 else part["uri"])
                text = text[:b.span[0]] + shown + text[b.span[1]:]
            return {"kind": "literal", "value": text}
        return {"kind": "literal", "value": value}

    def _binding(self, text: str, ctx: PipelineContext | None) -> dict[str, Any] | None:
        b = single_binding(text)
        if b is None or ctx is None:
            raise InvalidRequestError(f"{text} cannot be resolved here")
        if b.kind == "parent_inputs":
            return ctx.inputs.get(b.name or "")
        if b.kind == "parent_job_outputs":
            done = ctx.done.get(b.step or "")
            record = (done.outputs or {}).get(b.name or "") if done else None
            if record is None:
                raise InvalidRequestError(f"{text}: step '{b.step}' has no output '{b.name}'")
            return {"kind": "data", "type": record["type"], "uri": record["uri"], "identity": f"tree:{record['tree']}"}
        if b.kind == "parent_job_inputs":
            done = ctx.done.get(b.step or "")
            return (done.inputs or {}).get(b.name or "") if done else None
        raise InvalidRequestError(f"{text} cannot be used as an input value")

    def _step_inputs(self, step: dict[str, Any], ctx: PipelineContext | None) -> dict[str, Any]:
        declared = step.get("declared_inputs")
        given = dict(step.get("inputs") or {})
        resolved = {n: self._resolve_value(v, ctx, f"inputs.{n}", (declared or {}).get(n)) for n, v in given.items()}
        for n, decl in (declared or {}).items():
            if resolved.get(n) is None and decl.get("default") is not None:
                default = decl["default"]
                if decl.get("type") in ("string", "number", "integer", "boolean"):
                    resolved[n] = {"kind": "literal", "value": default}
                else:
                    resolved[n] = self._resolve_value({"type": decl["type"], "path": default}, ctx, f"inputs.{n}")
            resolved.setdefault(n, None)
            if resolved[n] is None and not decl.get("optional"):
                raise InvalidRequestError(f"required input '{n}' has no value: bind it under the step's inputs:")
        return resolved

    def _step_outputs(self, row: Job, step: dict[str, Any], ctx: PipelineContext | None) -> dict[str, Any]:
        declared = step.get("declared_outputs")
        names = list(declared) if declared is not None else list(step.get("outputs") or {})
        default_ds = self._default_datastore(ctx.top.spec if ctx else row.spec)
        plans = {}
        for n in names:
            value = (step.get("outputs") or {}).get(n)
            decl = (declared or {}).get(n) or {}
            parent_output = None
            bound = single_binding(value if isinstance(value, str) else str((value or {}).get("path") or ""))
            if isinstance(value, str) or (bound is not None and bound.kind == "parent_outputs"):
                text = value if isinstance(value, str) else str((value or {}).get("path"))
                b = bound
                if b is None or b.kind != "parent_outputs" or ctx is None:
                    raise InvalidRequestError(f"outputs.{n}: {text} must be ${{{{parent.outputs.<name>}}}}")
                parent_output = b.name
                pipe = (ctx.top.spec.get("outputs") or {}).get(b.name) or {}
                overrides = value if isinstance(value, dict) else {}
                spec = {**pipe, **{k: v for k, v in overrides.items() if k != "path" and v is not None}}
                owner = ctx.top.name
                out_name = b.name or n
            else:
                spec = value or {}
                owner = row.name
                out_name = n
            type_ = spec.get("type") or decl.get("type") or "uri_folder"
            path = spec.get("path")
            if path:
                path = (path.replace("${{name}}", owner).replace("${{output_name}}", out_name)
                        .replace("${{default_datastore}}", default_ds))
                ds, rel = parse_datastore_uri(path)
            else:
                ds, rel = default_ds, f"azureml/{owner}/{out_name}"
                if type_ == "uri_file":
                    rel = f"{rel}/{out_name}"
            self._datastores.get(ds)
            is_file = type_ == "uri_file"
            register = {k: spec[k] for k in ("name", "version", "description") if spec.get(k) is not None}
            plans[n] = {"type": type_, "mode": spec.get("mode") or decl.get("mode") or "rw_mount", "datastore": ds,
                        "path": rel.strip("/"), "is_file": is_file, "filename": rel.rstrip("/").rsplit("/", 1)[-1],
                        "register": register or None, "parent_output": parent_output,
                        "config": {"type": type_, "mode": spec.get("mode"), "path": spec.get("path"),
                                   "register": register or None, "parent": parent_output}}
        return plans

    def _default_datastore(self, spec: dict[str, Any]) -> str:
        ds = (spec.get("settings") or {}).get("default_datastore")
        if isinstance(ds, str) and ds.strip():
            return ds.strip().removeprefix("azureml:")
        return self._datastores.default_name()

    def _environment(self, env: Any) -> tuple[dict[str, Any] | None, str | None]:
        return resolve_environment(self._assets, env)

    def _cache_key(self, step: dict[str, Any], inputs: dict[str, Any], outputs: dict[str, Any], env_identity: str,
                   env_mode: str) -> str:
        return sha256_json({
            "command": step.get("command"), "code": step.get("code"), "environment": env_identity,
            "env_mode": env_mode,
            "inputs": {n: None if v is None else (
                {"literal": literal_text(v["value"])} if v["kind"] == "literal"
                else {"data": v["identity"], "type": v["type"], "mode": v.get("mode")}) for n, v in inputs.items()},
            "outputs": {n: p["config"] for n, p in outputs.items()},
            "settings": {k: step.get(k) for k in ("environment_variables", "distribution", "resources", "compute")},
        })

    def _snapshot(self, code: str | None, jobdir: Path) -> Path:
        wd = jobdir / "wd"
        if wd.exists():
            shutil.rmtree(wd)
        if not code:
            wd.mkdir(parents=True)
            return wd
        ds, rel = parse_datastore_uri(code)
        store = self._datastores.get(ds)
        local = store.local_path(rel)
        if local is not None and os.path.isdir(local):
            shutil.copytree(local, wd, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            wd.mkdir(parents=True)
            fetched = self._data.materialise(DataRef("uri_folder", code, ""), "download", jobdir / "code")
            src = Path(fetched)
            if src.is_dir():
                shutil.copytree(src, wd, dirs_exist_ok=True)
            else:
                shutil.copy2(src, wd / src.name)
        return wd

    def _input_text(self, name: str, value: dict[str, Any] | None, jobdir: Path) -> str | None:
        if value is None:
            return None
        if value["kind"] == "literal":
            return literal_text(value["value"])
        ref = DataRef(value["type"], value["uri"], value["identity"])
        return self._data.materialise(ref, value.get("mode"), jobdir / "inputs" / name)

    def _process_env(self, row: Job, step: dict[str, Any], env: PreparedEnvironment, inputs: dict[str, str | None],
                     outputs: dict[str, str], token: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("MLYARD_", "MLFLOW_")) and k not in ("VIRTUAL_ENV", "PYTHONHOME")}
        base["PATH"] = env.bin_dir + os.pathsep + base.get("PATH", os.defpath)
        base.setdefault("PYTHONUNBUFFERED", "1")
        base.setdefault("DO_NOT_TRACK", "true")
        base["MLFLOW_DISABLE_TELEMETRY"] = "true"
        for k, v in (step.get("environment_variables") or {}).items():
            base[str(k)] = str(v)
        for n, text in inputs.items():
            if text is not None:
                base[f"AZURE_ML_INPUT_{n}"] = text
        for n, path in outputs.items():
            base[f"AZURE_ML_OUTPUT_{n}"] = path
        base.update({
            "MLFLOW_TRACKING_URI": self.server_url,
            "MLFLOW_RUN_ID": row.name,
            "MLFLOW_EXPERIMENT_ID": str(row.experiment_id),
            "MLFLOW_EXPERIMENT_NAME": row.experiment_name,
            "MLFLOW_TRACKING_TOKEN": token,
            "MLYARD_URL": self.server_url,
            "MLYARD_TOKEN": token,
            "MLYARD_JOB_NAME": row.name,
            "AZUREML_RUN_ID": row.name,
        })
        return base


def resolve_environment(assets: AssetService, env: Any) -> tuple[dict[str, Any] | None, str | None]:
    """A job's or deployment's ``environment`` as a definition to build, or None for the server's interpreter
    (none given, or one of Azure's curated environments, with a note saying so).

    Raises:
        InvalidRequestError: an environment in another Azure ML registry, or one not registered here.
    """
    if env is None:
        return None, None
    if isinstance(env, dict):
        return env, None
    text = str(env).strip()
    low = text.lower()
    if low.startswith(CURATED_PREFIXES) or low.removeprefix("azureml:").startswith(CURATED_PREFIXES):
        return None, (f"environment {text} is a curated Azure ML environment: mlyard runs it with the server's "
                      "interpreter and the default packages (pandas, scikit-learn, mlflow, ...)")
    if classify_path(text) == "registry":
        registry = text.split("/")[3] if text.count("/") > 3 else text
        raise InvalidRequestError(
            f"environment {text} is in the Azure ML registry '{registry}', which mlyard cannot reach (of the "
            "registries, only Azure's curated 'azureml' runs, with the server's interpreter): register the "
            "environment here with 'mlyard environment create -f <file>' and refer to it as azureml:<name>@latest")
    try:
        asset = assets.resolve("environment", text)
    except NotFoundError:
        ref = parse_asset_reference(text)
        raise InvalidRequestError(f"environment {text} is not registered in this workspace: create it with "
                                  f"'mlyard environment create -f <file>' (name: {ref.name})") from None
    return dict(asset.spec), None
