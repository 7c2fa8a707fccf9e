"""Job operations of the SDK: submit (uploading local code and data), follow, cancel, download."""

from __future__ import annotations

import builtins
import posixpath
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlyard.client.http import Transport
from mlyard.client.uploads import Progress, fetch_files, plan_upload, upload_plan
from mlyard.core.errors import InvalidRequestError
from mlyard.specs.references import classify_path, parse_datastore_uri

TERMINAL = ("Completed", "Failed", "Canceled")


def _is_local(value: Any) -> bool:
    return isinstance(value, str) and "${{" not in value and classify_path(value) == "local"


class JobOperations:
    """``client.jobs``."""

    def __init__(self, transport: Transport, default_datastore: Callable[[], str]) -> None:
        self._t = transport
        self._default_datastore = default_datastore

    # -- submit -------------------------------------------------------------------------------

    def create(self, spec: dict[str, Any], *, name: str | None = None, experiment_name: str | None = None,
               display_name: str | None = None, env_mode: str | None = None,
               progress: Progress | None = None) -> dict[str, Any]:
        """Upload the local code and data a job spec names, then submit it."""
        body = _Uploader(self._t, self._default_datastore, progress).prepare(spec)
        payload = {"spec": body, "name": name, "experiment_name": experiment_name, "display_name": display_name,
                   "env_mode": env_mode}
        result: dict[str, Any] = self._t.json("POST", "/api/v1/jobs",
                                              json={k: v for k, v in payload.items() if v is not None})
        return result

    # -- read ---------------------------------------------------------------------------------

    def get(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("GET", f"/api/v1/jobs/{name}")
        return result

    def list(self, parent_job_name: str | None = None, max_results: int = 50) -> builtins.list[dict[str, Any]]:
        params: dict[str, Any] = {"max_results": max_results}
        if parent_job_name:
            params["parent_job_name"] = parent_job_name
        result: builtins.list[dict[str, Any]] = self._t.json("GET", "/api/v1/jobs", params=params)
        return result

    def cancel(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("POST", f"/api/v1/jobs/{name}/cancel")
        return result

    def logs(self, name: str, offset: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("GET", f"/api/v1/jobs/{name}/logs", params={"offset": offset})
        return result

    # -- download -----------------------------------------------------------------------------

    def download(self, name: str, *, download_path: str | Path = ".", output_name: str | None = None,
                 all_: bool = False) -> builtins.list[Path]:
        """Azure's layout: ``<dir>/named-outputs/<output>/...`` and, with ``all_``, ``<dir>/artifacts/...``."""
        job = self.get(name)
        root = Path(download_path)
        outputs = job.get("outputs") or {}
        if output_name is not None:
            if output_name not in outputs:
                have = ", ".join(sorted(outputs)) or "none"
                raise InvalidRequestError(f"job {name} has no output {output_name!r} (outputs: {have})")
            chosen = [output_name]
        elif all_:
            chosen = sorted(outputs)
        else:
            chosen = []
        written: builtins.list[Path] = []
        for out in chosen:
            ds, rel = parse_datastore_uri(outputs[out]["uri"])
            written += self._fetch_tree(ds, rel, root / "named-outputs" / out,
                                        is_file=outputs[out].get("type") == "uri_file")
        if all_ or output_name is None:
            runs = [job, *(job.get("steps") or [])]
            for run in runs:
                prefix = f"mlflow/{run['experiment_id']}/{run['run_id']}/artifacts"
                target = root / "artifacts" if run is job else root / "steps" / str(run.get("step")) / "artifacts"
                written += self._fetch_tree(self._default_datastore(), prefix, target, is_file=False)
        return written

    def _fetch_tree(self, datastore: str, prefix: str, target: Path, *, is_file: bool) -> builtins.list[Path]:
        files = self._t.json("GET", f"/api/v1/datastores/{datastore}/files", params={"prefix": prefix})
        wanted: builtins.list[tuple[str, Path, str | None]] = []
        for f in files:
            rel = posixpath.basename(f["path"]) if is_file or f["path"] == prefix else \
                posixpath.relpath(f["path"], prefix)
            wanted.append((f["path"], target / rel, None))
        return fetch_files(self._t, datastore, wanted)


class _Uploader:
    """Replaces every local path of a job spec with the datastore URI of its uploaded content."""

    def __init__(self, transport: Transport, default_datastore: Callable[[], str], progress: Progress | None) -> None:
        self._t = transport
        self._default_datastore = default_datastore
        self._progress = progress
        self._done: dict[str, str] = {}

    def prepare(self, spec: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = _copy(spec)
        self._inputs(body.get("inputs"))
        self._runnable(body)
        for step in (body.get("jobs") or {}).values():
            if isinstance(step, dict):
                self._inputs(step.get("inputs"))
                self._runnable(step)
        return body

    def _upload(self, local: str) -> str:
        if local not in self._done:
            plan = plan_upload(local)
            self._done[local] = upload_plan(self._t, self._default_datastore(), plan, self._progress)
        return self._done[local]

    def _inputs(self, inputs: dict[str, Any] | None) -> None:
        for value in (inputs or {}).values():
            if isinstance(value, dict) and _is_local(value.get("path")):
                value["path"] = self._upload(value["path"])

    def _runnable(self, spec: dict[str, Any]) -> None:
        includes = spec.pop("additional_includes", None) if isinstance(spec.get("additional_includes"), list) else None
        code = spec.get("code")
        if includes:
            spec["code"] = self._with_includes(code if _is_local(code) else None, includes)
        elif isinstance(code, str) and _is_local(code):
            spec["code"] = self._upload(code)
        env = spec.get("environment")
        if isinstance(env, dict) and isinstance(env.get("build"), dict) and _is_local(env["build"].get("path")):
            env["build"]["path"] = self._upload(env["build"]["path"])
        if isinstance(spec.get("component"), dict):
            self._runnable(spec["component"])
            for inner in (spec["component"].get("jobs") or {}).values():  # a pipeline component's steps
                if isinstance(inner, dict):
                    self._inputs(inner.get("inputs"))
                    self._runnable(inner)
        if isinstance(spec.get("task"), dict):  # a parallel step's code and environment
            self._runnable(spec["task"])
        if isinstance(spec.get("trial"), dict):  # a sweep's trial command or component
            self._runnable(spec["trial"])

    def _with_includes(self, code: str | None, includes: list[str]) -> str:
        """The code folder plus each additional include copied into its root (Azure's snapshot)."""
        with tempfile.TemporaryDirectory(prefix="mlyard-code-") as tmp:
            root = Path(tmp) / (Path(code).name if code else "code")
            if code:
                shutil.copytree(code, root, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                root.mkdir()
            for inc in includes:
                src = Path(inc)
                if not src.exists():
                    raise InvalidRequestError(f"additional include {inc} does not exist")
                if src.is_dir():
                    shutil.copytree(src, root / src.name, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(src, root / src.name)
            plan = plan_upload(root)
            return upload_plan(self._t, self._default_datastore(), plan, self._progress)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
