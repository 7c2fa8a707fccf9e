"""Datastore operations of the SDK: list datastores, list files, upload a local file or folder to a path.

``upload`` fills a datastore path as ``az storage blob upload-batch`` fills a container path: a
folder's contents land under the path, a file lands at it (or in it, when the path ends with
``/``). Every file is verified by its sha256 on the server; files already there with the same
content are skipped; other content at a path is refused unless ``overwrite``.
"""

from __future__ import annotations

import builtins
import posixpath
import re
from pathlib import Path
from typing import Any

from mlyard.client.http import Transport
from mlyard.client.uploads import LocalFile, Progress, plan_upload, put_files
from mlyard.core.errors import InvalidRequestError
from mlyard.specs.references import parse_datastore_uri

_DRIVE_RE = re.compile(r"^[A-Za-z]:")


def destination_path(path: str) -> str:
    """A datastore path as given by a user, checked: relative, inside the datastore, no ``..``."""
    raw = path.strip().replace("\\", "/")
    if not raw.strip("/"):
        raise InvalidRequestError("--path: give the destination inside the datastore, e.g. data/train")
    if raw.startswith("/") or _DRIVE_RE.match(raw):
        raise InvalidRequestError(f"--path {path!r} is absolute: give a path inside the datastore, e.g. data/train")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidRequestError(f"--path {path!r} has a '..' segment: give a path inside the datastore, "
                                  "without '..'")
    return "/".join(parts) + ("/" if raw.endswith("/") else "")


class DatastoreOperations:
    """``client.datastores``."""

    def __init__(self, transport: Transport, default_datastore: Any) -> None:
        self._t = transport
        self._default_datastore = default_datastore

    def list(self) -> builtins.list[dict[str, Any]]:
        result: builtins.list[dict[str, Any]] = self._t.json("GET", "/api/v1/datastores")
        return result

    def create(self, spec: dict[str, Any], *, set_default: bool = False) -> dict[str, Any]:
        """Create a datastore from its spec (Azure Blob / ADLS Gen2 with an account key or a SAS token).

        The server checks the store answers with those credentials before recording it; what comes
        back (and ``get``/``list``) shows the credentials masked.
        """
        result: dict[str, Any] = self._t.json("POST", "/api/v1/datastores",
                                              json={"spec": spec, "set_default": set_default})
        return result

    def get(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("GET", f"/api/v1/datastores/{name}")
        return result

    def list_files(self, name: str, prefix: str) -> builtins.list[dict[str, Any]]:
        """Every file under ``prefix`` (paths relative to the datastore)."""
        result: builtins.list[dict[str, Any]] = self._t.json(
            "GET", f"/api/v1/datastores/{name}/files", params={"prefix": prefix, "max_results": 100_000})
        return result

    def upload(self, src: str | Path, path: str, name: str | None = None, *, overwrite: bool = False,
               progress: Progress | None = None) -> str:
        """Upload a local file or folder to ``path`` in datastore ``name`` (default: the workspace's).

        ``path`` may also be a whole ``azureml://datastores/<name>/paths/<path>`` URI. Returns the
        ``azureml://`` URI of what was uploaded: the file, or the folder (ending with ``/``).
        """
        if path.strip().lower().startswith("azureml://"):
            store, inner = parse_datastore_uri(path)
            if name and name != store:
                raise InvalidRequestError(f"--path {path} names datastore {store!r}, but --name says {name!r}")
            name, path = store, inner
        dest = destination_path(path)
        name = name or str(self._default_datastore())
        local = Path(src)
        plan = plan_upload(local, field="--src")
        if local.is_file():
            target = f"{dest}{plan.basename}" if dest.endswith("/") else dest
            files = [(plan.files[0], target)]
            uri_path = target
        else:
            if not plan.files:
                raise InvalidRequestError(f"--src: folder {local} holds no files to upload")
            folder = dest.rstrip("/")
            files = [(f, f"{folder}/{_inside(f, plan.basename)}") for f in plan.files]
            uri_path = f"{folder}/"
        put_files(self._t, name, files, progress, overwrite=overwrite)
        return f"azureml://datastores/{name}/paths/{uri_path}"


def _inside(f: LocalFile, basename: str) -> str:
    """A planned file's path inside the uploaded folder (plans put the folder's basename first)."""
    return posixpath.relpath(f.path, basename)
