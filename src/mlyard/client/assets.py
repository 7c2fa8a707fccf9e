"""Asset operations of the SDK: create (uploading local content), list, show, download, archive."""

from __future__ import annotations

import builtins
import posixpath
from pathlib import Path
from typing import Any

from mlyard.client.http import Transport
from mlyard.client.uploads import Progress, fetch_files, plan_upload, upload_plan
from mlyard.core.errors import NotFoundError
from mlyard.specs import LoadedSpec
from mlyard.specs.content import local_content_paths, spec_fields
from mlyard.specs.references import parse_asset_reference, parse_datastore_uri

SEGMENTS = {"data": "data", "environment": "environments", "model": "models", "component": "components"}


def _set(spec: dict[str, Any], dotted: str, value: str) -> None:
    parts = dotted.split(".")
    target = spec
    for p in parts[:-1]:
        target = target[p]
    target[parts[-1]] = value


class AssetOperations:
    """``client.data``, ``client.environments``, ``client.models``, ``client.components``."""

    def __init__(self, transport: Transport, kind: str, default_datastore: Any) -> None:
        self._t = transport
        self.kind = kind
        self._base = f"/api/v1/{SEGMENTS[kind]}"
        self._default_datastore = default_datastore

    def create(self, spec: LoadedSpec | dict[str, Any], *, progress: Progress | None = None,
               allow_missing_path: bool = False) -> dict[str, Any]:
        """Upload any local content the spec names, then create the version on the server.

        A datastore path that holds no files is refused unless ``allow_missing_path`` (then the
        result's ``warnings`` say so).
        """
        body = (
            spec.spec.model_dump(mode="json", exclude_none=True, by_alias=True)
            if isinstance(spec, LoadedSpec) else dict(spec)
        )
        files: list[dict[str, Any]] = []
        content_field = spec_fields(self.kind, body).content_field
        for field, local in local_content_paths(self.kind, body):
            plan = plan_upload(local, field=field)
            uri = upload_plan(self._t, self._default_datastore(), plan, progress)
            _set(body, field, uri)
            if field == content_field:
                files = [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in plan.files]
        params = {"allow_missing_path": "true"} if allow_missing_path else {}
        result: dict[str, Any] = self._t.json("POST", self._base, json={"spec": body, "files": files}, params=params)
        return result

    def list(self, name: str | None = None, *, include_archived: bool = False) -> builtins.list[dict[str, Any]]:
        params: dict[str, Any] = {"include_archived": include_archived}
        if name:
            params["name"] = name
        result: builtins.list[dict[str, Any]] = self._t.json("GET", self._base, params=params)
        return result

    def get(self, name: str, version: str | None = None, *, label: str | None = None) -> dict[str, Any]:
        """One version; accepts ``name``, ``name:3``, ``name@latest`` and ``azureml:`` forms."""
        ref = parse_asset_reference(name)
        version = version or ref.version
        if version:
            result: dict[str, Any] = self._t.json("GET", f"{self._base}/{ref.name}/versions/{version}")
        else:
            result = self._t.json("GET", f"{self._base}/{ref.name}", params={"label": label or ref.label or "latest"})
        return result

    def archive(self, name: str, version: str | None = None) -> builtins.list[dict[str, Any]]:
        return self._set_archived("archive", name, version)

    def restore(self, name: str, version: str | None = None) -> builtins.list[dict[str, Any]]:
        return self._set_archived("restore", name, version)

    def _set_archived(self, verb: str, name: str, version: str | None) -> builtins.list[dict[str, Any]]:
        ref = parse_asset_reference(name)
        params = {"version": version or ref.version} if (version or ref.version) else {}
        result: builtins.list[dict[str, Any]] = self._t.json("POST", f"{self._base}/{ref.name}/{verb}", params=params)
        return result

    def download(self, name: str, version: str | None = None, *, download_path: str | Path = ".",
                 progress: Progress | None = None) -> Path:
        """Download a version's files to ``<download_path>/<name>/``, verifying every sha256.

        An asset registered by its datastore path lists no files of its own: what is there now is
        downloaded. An asset with no files at all is a ``NotFoundError`` naming it and its path.
        """
        asset = self.get(name, version)
        target = Path(download_path) / str(asset["name"])
        uri = spec_fields(self.kind, asset["spec"]).content_uri
        files: list[dict[str, Any]] = list(asset["files"])
        datastore, path = parse_datastore_uri(uri) if uri else ("", "")
        root = posixpath.dirname(path.rstrip("/"))
        if uri and not files and path.strip("/"):
            found = self._t.json("GET", f"/api/v1/datastores/{datastore}/files",
                                 params={"prefix": path.strip("/"), "max_results": 100_000})
            files = [{"path": posixpath.relpath(f["path"], root) if root else f["path"], "sha256": None}
                     for f in found]
        if not files:
            what = f"{self.kind} {asset['name']}:{asset['version']}"
            raise NotFoundError(
                f"{what} has no files to download: its path {asset.get('path')} holds none"
                + (f"; upload data there with 'mlyard datastore upload --name {datastore} --src <local path> "
                   f"--path {path.strip('/')}'" if uri else ""),
                details={"kind": self.kind, "name": asset["name"], "version": asset["version"],
                         "path": asset.get("path")})
        fetch_files(self._t, datastore, [(f"{root}/{f['path']}" if root else f["path"], target / f["path"],
                                          f["sha256"]) for f in files], progress)
        return target
