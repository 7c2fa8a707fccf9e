"""From a deployment spec to what its workers need: the model's folder, the code folder, the environment.

Paths in a stored spec are datastore URIs (the client uploaded local code); they resolve to folders on this
machine, where the content-addressed store already holds the files, so nothing is copied.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from mlyard.assets.service import AssetService
from mlyard.core.errors import InvalidRequestError
from mlyard.jobs.environments import EnvironmentCache
from mlyard.serving.environments import prepare_worker_environment
from mlyard.serving.supervisor import WorkerPlan
from mlyard.specs import load_spec_dict
from mlyard.specs.references import classify_path, parse_datastore_uri
from mlyard.store.blobs import DatastoreRegistry

COLLECTOR_ENV = "MLYARD_DATA_COLLECTOR"  # read by the worker (collector.py)
COLLECTOR_ROOT = "modelDataCollector"
log = logging.getLogger("mlyard.serving")


class DeploymentResolver:
    """Validates deployment specs and resolves them into worker plans."""

    def __init__(self, assets: AssetService, datastores: DatastoreRegistry, envs: EnvironmentCache | None = None,
                 env_mode: str = "inherit") -> None:
        self._assets = assets
        self._datastores = datastores
        self._envs = envs
        self._env_mode = env_mode

    @staticmethod
    def validate(endpoint: str, spec: dict[str, Any]) -> dict[str, Any]:
        """The spec validated as a deployment of ``endpoint`` (its ``endpoint_name`` filled in when absent)."""
        if isinstance(spec, dict) and not spec.get("endpoint_name"):
            spec = {**spec, "endpoint_name": endpoint}
        clean = load_spec_dict(spec, "online-deployment").to_dict()
        if clean["endpoint_name"] != endpoint:
            raise InvalidRequestError(f"the deployment spec names endpoint {clean['endpoint_name']!r}, but it is "
                                      f"being created under {endpoint!r}; drop endpoint_name or make them agree")
        return clean

    def model_asset(self, spec: dict[str, Any]) -> Any:
        model = spec.get("model")
        if model is None:
            return None
        if not isinstance(model, str):
            raise InvalidRequestError(
                "the deployment's model is inline; register it first ('mlyard model create -f model.yml') and "
                "name it as model: azureml:<name>:<version>", details={"field": "model"})
        return self._assets.resolve("model", model)

    def model_label(self, spec: dict[str, Any]) -> str | None:
        asset = self.model_asset(spec)
        return f"{asset.name}:{asset.version}" if asset is not None else None

    def local(self, uri: str, what: str) -> str:
        if classify_path(uri) == "local":
            raise InvalidRequestError(f"{what} {uri!r} is a path on the client; upload it first (the CLI and the "
                                      "SDK do) and send its datastore URI")
        ds, rel = parse_datastore_uri(uri)
        local = self._datastores.get(ds).local_path(rel)
        if local is None:
            raise InvalidRequestError(f"{what} {uri!r} is on datastore {ds!r}, which is not on this machine; "
                                      "online deployments serve from the workspace's local datastores")
        return local

    def _collections(self, endpoint: str, spec: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
        """Enabled collections: (name, its ``data`` settings, the datastore URI it writes to)."""
        settings = spec.get("data_collector") or {}
        found = []
        for name, collection in (settings.get("collections") or {}).items():
            if collection.get("enabled"):
                data = collection.get("data") or {}
                uri = data.get("path") or (f"azureml://datastores/{self._datastores.default_name()}/paths/"
                                           f"{COLLECTOR_ROOT}/{endpoint}/{spec['name']}/{name}")
                found.append((name, data, uri))
        return found

    def collector(self, endpoint: str, spec: dict[str, Any], model: str) -> dict[str, Any] | None:
        """The worker's ``MLYARD_DATA_COLLECTOR``: each enabled collection with the local folder it writes to
        (its ``data.path``, by default Azure's ``modelDataCollector/<endpoint>/<deployment>/<collection>``)."""
        folders = {name: self.local(uri, f"data_collector.collections.{name}.data.path")
                   for name, _, uri in self._collections(endpoint, spec)}
        if not folders:
            return None
        settings = spec.get("data_collector") or {}
        return {"sampling_rate": settings.get("sampling_rate", 1.0),
                "rolling_rate": settings.get("rolling_rate", "hour"), "source": f"{endpoint}/{spec['name']}",
                "model_version": model, "collections": folders}

    def collected_data(self, endpoint: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
        """Specs of the ``uri_folder`` data assets the enabled collections fill, named as Azure names them
        (``data.name``, else ``<endpoint>-<deployment>-<collection>``; ``data.version``, else 1)."""
        return [{"name": data.get("name") or f"{endpoint}-{spec['name']}-{name}",
                 "version": str(data.get("version") or 1), "type": "uri_folder", "path": uri,
                 "description": f"Data collected by online deployment {spec['name']} of endpoint {endpoint} "
                                f"({name})."}
                for name, data, uri in self._collections(endpoint, spec)]

    def plan(self, endpoint: str, spec: dict[str, Any], progress: Callable[[str], None] | None = None) -> WorkerPlan:
        """How to run the workers of a validated spec; the model must be a registered model asset. An isolated
        environment is built here (or found in the cache), its progress sent to ``progress``."""
        asset = self.model_asset(spec)
        code = spec.get("code_configuration")
        if asset is None and code is None:
            raise InvalidRequestError("the deployment has neither a model nor code_configuration to serve")
        if code is None and asset.asset_type != "mlflow_model":
            raise InvalidRequestError(
                f"model {asset.name}:{asset.version} is a {asset.asset_type}, not an mlflow_model: deploy it with "
                "code_configuration (a scoring script) and an environment", details={"field": "model"})
        model_dir, model_folder = "", None
        if asset is not None:
            if not asset.path:
                raise InvalidRequestError(f"model {asset.name}:{asset.version} has no files to serve")
            local = PurePosixPath(self.local(asset.path, f"model {asset.name}:{asset.version}"))
            model_dir, model_folder = str(local.parent), local.name
        code_dir = self.local(code["code"], "code_configuration.code") if code else None
        env = {str(k): str(v) for k, v in (spec.get("environment_variables") or {}).items()}
        try:
            worker_count = int(env.get("WORKER_COUNT", "1"))
        except ValueError:
            worker_count = 0
        if not 1 <= worker_count <= 64:
            raise InvalidRequestError(f"environment_variables.WORKER_COUNT is {env.get('WORKER_COUNT')!r}; it must "
                                      "be a whole number from 1 to 64", details={"field": "environment_variables"})
        collector = self.collector(endpoint, spec, f"{asset.name}:{asset.version}" if asset is not None else "")
        if collector is not None:
            env[COLLECTOR_ENV] = json.dumps(collector)
        python = None
        if self._envs is not None:
            def note(line: str) -> None:
                log.info("%s/%s: %s", endpoint, spec["name"], line)
                if progress is not None:
                    progress(line)

            nocode_model = Path(model_dir) / model_folder if model_folder and code is None else None
            prepared = prepare_worker_environment(self._assets, self._envs, spec, default_mode=self._env_mode,
                                                  model=nocode_model, log=note)
            python = prepared.python if prepared.mode == "isolated" else None
        settings = spec.get("request_settings") or {}
        liveness = spec.get("liveness_probe") or {}
        return WorkerPlan(
            endpoint=endpoint, deployment=spec["name"], model_dir=model_dir, model_folder=model_folder,
            code_dir=code_dir, scoring_script=code["scoring_script"] if code else None, env=env,
            instance_count=int(spec.get("instance_count", 1)), worker_count=worker_count,
            request_timeout_ms=int(settings.get("request_timeout_ms", 5000)),
            max_concurrent_per_instance=int(settings.get("max_concurrent_requests_per_instance", 1)),
            liveness_period_s=float(liveness.get("period", 10)), liveness_timeout_s=float(liveness.get("timeout", 2)),
            liveness_failures=int(liveness.get("failure_threshold", 30)), python=python,
        )
