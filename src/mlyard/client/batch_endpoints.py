"""Batch endpoint operations of the SDK: endpoints, deployments (uploading local code), invoke, list jobs."""

from __future__ import annotations

import builtins
import copy
from collections.abc import Callable
from typing import Any

from mlyard.client.http import Transport
from mlyard.client.jobs import _Uploader
from mlyard.client.uploads import Progress, plan_upload, upload_plan
from mlyard.specs.references import classify_path

BASE = "/api/v1/batch-endpoints"


def _local(value: Any) -> bool:
    return isinstance(value, str) and "${{" not in value and classify_path(value) == "local"


class BatchEndpointOperations:
    """``client.batch_endpoints``."""

    def __init__(self, transport: Transport, default_datastore: Callable[[], str]) -> None:
        self._t = transport
        self._default_datastore = default_datastore

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("POST", BASE, json={"spec": spec})
        return result

    def get(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("GET", f"{BASE}/{name}")
        return result

    def list(self) -> builtins.list[dict[str, Any]]:
        result: builtins.list[dict[str, Any]] = self._t.json("GET", BASE)
        return result

    def update(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("PATCH", f"{BASE}/{name}", json={"spec": spec})
        return result

    def delete(self, name: str) -> None:
        self._t.request("DELETE", f"{BASE}/{name}")

    def invoke(self, name: str, *, deployment_name: str | None = None, input: dict[str, Any] | None = None,
               inputs: dict[str, Any] | None = None, outputs: dict[str, Any] | None = None,
               output_path: str | None = None, mini_batch_size: int | None = None,
               instance_count: int | None = None, settings: dict[str, str] | None = None,
               job_name: str | None = None, experiment_name: str | None = None,
               progress: Progress | None = None) -> dict[str, Any]:
        """Upload local inputs, then submit the invocation; returns the job it started.

        Args:
            input: ``{"type": "uri_folder"|"uri_file"|None, "path": ...}``: a local path, ``azureml:<data>:<v>``,
                ``azureml://datastores/...`` or a URL.
            inputs: named inputs (``inputs.yml``): data as ``{"type", "path"}``, literals as values.
            settings: ``--set`` overrides of run settings (``output_file_name``, ``retry_settings.timeout``...).
        """
        uploader = _Uploader(self._t, self._default_datastore, progress)
        body: dict[str, Any] = {"deployment_name": deployment_name, "output_path": output_path,
                                "mini_batch_size": mini_batch_size, "instance_count": instance_count,
                                "job_name": job_name, "experiment_name": experiment_name}
        if input is not None:
            data = dict(input)
            if _local(data.get("path")):
                data["path"] = uploader._upload(data["path"])
            body["input"] = data
        if inputs:
            named = copy.deepcopy(inputs)
            uploader._inputs(named)
            body["inputs"] = named
        if outputs:
            body["outputs"] = outputs
        if settings:
            body["settings"] = settings
        result: dict[str, Any] = self._t.json("POST", f"{BASE}/{name}/jobs",
                                              json={k: v for k, v in body.items() if v is not None})
        return result

    def list_jobs(self, name: str, max_results: int = 50) -> builtins.list[dict[str, Any]]:
        result: builtins.list[dict[str, Any]] = self._t.json("GET", f"{BASE}/{name}/jobs",
                                                             params={"max_results": max_results})
        return result


class BatchDeploymentOperations:
    """``client.batch_deployments``."""

    def __init__(self, transport: Transport, default_datastore: Callable[[], str]) -> None:
        self._t = transport
        self._default_datastore = default_datastore

    def _prepare(self, spec: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        body = copy.deepcopy(spec)
        code = body.get("code_configuration")
        if isinstance(code, dict) and _local(code.get("code")):
            code["code"] = upload_plan(self._t, self._default_datastore(), plan_upload(code["code"], field="code"),
                                       progress)
        if isinstance(body.get("component"), dict):  # a pipeline component file: its steps' code
            body["component"] = _Uploader(self._t, self._default_datastore, progress).prepare(body["component"])
        return body

    def create(self, endpoint: str, spec: dict[str, Any], *, set_default: bool = False,
               progress: Progress | None = None) -> dict[str, Any]:
        body = {"spec": self._prepare(spec, progress), "set_default": set_default}
        result: dict[str, Any] = self._t.json("POST", f"{BASE}/{endpoint}/deployments", json=body)
        return result

    def update(self, endpoint: str, spec: dict[str, Any], *, set_default: bool = False,
               progress: Progress | None = None) -> dict[str, Any]:
        body = {"spec": self._prepare(spec, progress), "set_default": set_default}
        result: dict[str, Any] = self._t.json("PUT", f"{BASE}/{endpoint}/deployments/{spec['name']}", json=body)
        return result

    def get(self, endpoint: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("GET", f"{BASE}/{endpoint}/deployments/{name}")
        return result

    def list(self, endpoint: str) -> builtins.list[dict[str, Any]]:
        result: builtins.list[dict[str, Any]] = self._t.json("GET", f"{BASE}/{endpoint}/deployments")
        return result

    def delete(self, endpoint: str, name: str) -> None:
        self._t.request("DELETE", f"{BASE}/{endpoint}/deployments/{name}")

    def list_jobs(self, endpoint: str, name: str, max_results: int = 50) -> builtins.list[dict[str, Any]]:
        result: builtins.list[dict[str, Any]] = self._t.json("GET", f"{BASE}/{endpoint}/deployments/{name}/jobs",
                                                             params={"max_results": max_results})
        return result
