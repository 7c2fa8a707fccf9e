"""Online endpoint operations of the SDK: endpoints, deployments (uploading local code), keys, invoke."""

from __future__ import annotations

import builtins
import copy
from collections.abc import Callable
from typing import Any

import httpx

from mlyard.client.http import Transport, raise_for_error
from mlyard.client.uploads import Progress, plan_upload, upload_plan
from mlyard.specs.references import classify_path

BASE = "/api/v1/online-endpoints"
# creating or updating a deployment returns when its workers are ready: loading a model takes a while
DEPLOY_TIMEOUT = httpx.Timeout(900.0, connect=5.0)


class OnlineEndpointOperations:
    """``client.online_endpoints``."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("POST", BASE, json={"spec": spec})
        return result

    def get(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("GET", f"{BASE}/{name}")
        return result

    def list(self) -> builtins.list[dict[str, Any]]:
        result: builtins.list[dict[str, Any]] = self._t.json("GET", BASE)
        return result

    def update(self, name: str, *, spec: dict[str, Any] | None = None, traffic: dict[str, int] | None = None,
               mirror_traffic: dict[str, int] | None = None) -> dict[str, Any]:
        body = {"spec": spec, "traffic": traffic, "mirror_traffic": mirror_traffic}
        result: dict[str, Any] = self._t.json("PATCH", f"{BASE}/{name}",
                                              json={k: v for k, v in body.items() if v is not None})
        return result

    def delete(self, name: str) -> None:
        self._t.request("DELETE", f"{BASE}/{name}", timeout=DEPLOY_TIMEOUT)

    def get_credentials(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("POST", f"{BASE}/{name}/credentials")
        return result

    def regenerate_keys(self, name: str, key_type: str = "primary") -> None:
        self._t.request("POST", f"{BASE}/{name}/regenerate-keys", json={"key_type": key_type})

    def invoke(self, name: str, body: bytes, *, deployment_name: str | None = None) -> httpx.Response:
        """POST ``body`` to the endpoint's scoring URI with its credential; raises on an error answer."""
        endpoint = self.get(name)
        headers = {"content-type": "application/json"}
        if endpoint["auth_mode"] == "aad_token":
            credential = self._t.http.headers.get("authorization", "").partition(" ")[2]
        else:
            creds = self.get_credentials(name)
            credential = creds.get("primaryKey") or creds.get("accessToken") or ""
        headers["authorization"] = f"Bearer {credential}"
        if deployment_name:
            headers["azureml-model-deployment"] = deployment_name
        url = self._t.url + f"/endpoints/{name}/score"
        response = self._t.http.post(url, content=body, headers=headers, timeout=DEPLOY_TIMEOUT)
        raise_for_error(response)
        return response


class OnlineDeploymentOperations:
    """``client.online_deployments``."""

    def __init__(self, transport: Transport, default_datastore: Callable[[], str]) -> None:
        self._t = transport
        self._default_datastore = default_datastore

    def _prepare(self, spec: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        body = copy.deepcopy(spec)
        code = body.get("code_configuration")
        if isinstance(code, dict) and isinstance(code.get("code"), str) and classify_path(code["code"]) == "local":
            code["code"] = upload_plan(self._t, self._default_datastore(), plan_upload(code["code"], field="code"),
                                       progress)
        return body

    def create(self, endpoint: str, spec: dict[str, Any], *, all_traffic: bool = False,
               progress: Progress | None = None) -> dict[str, Any]:
        body = {"spec": self._prepare(spec, progress), "all_traffic": all_traffic}
        result: dict[str, Any] = self._t.json("POST", f"{BASE}/{endpoint}/deployments", json=body,
                                              timeout=DEPLOY_TIMEOUT)
        return result

    def update(self, endpoint: str, spec: dict[str, Any], *, progress: Progress | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("PUT", f"{BASE}/{endpoint}/deployments/{spec['name']}",
                                              json={"spec": self._prepare(spec, progress)}, timeout=DEPLOY_TIMEOUT)
        return result

    def get(self, endpoint: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("GET", f"{BASE}/{endpoint}/deployments/{name}")
        return result

    def list(self, endpoint: str) -> builtins.list[dict[str, Any]]:
        result: builtins.list[dict[str, Any]] = self._t.json("GET", f"{BASE}/{endpoint}/deployments")
        return result

    def delete(self, endpoint: str, name: str) -> None:
        self._t.request("DELETE", f"{BASE}/{endpoint}/deployments/{name}", timeout=DEPLOY_TIMEOUT)

    def get_logs(self, endpoint: str, name: str, lines: int = 100) -> str:
        result: dict[str, Any] = self._t.json("GET", f"{BASE}/{endpoint}/deployments/{name}/logs",
                                              params={"lines": lines})
        return str(result["text"])
