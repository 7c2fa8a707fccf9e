"""Uploading local files and folders to a datastore, content-addressed by their tree hash.

A local path ``.../<basename>`` lands at ``LocalUpload/<tree hash>/<basename>`` in the datastore,
the layout Azure ML uses, so equal content always maps to the same place and the basename is
kept (``AZUREML_MODEL_DIR/<basename>/...``). Files the server already holds are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mlyard.client.http import Transport
from mlyard.core.errors import InvalidRequestError
from mlyard.core.hashing import CHUNK, sha256_file, tree_hash

SHA_HEADER = "X-Mlyard-Sha256"
Progress = Callable[[str, int], None]  # (file path, bytes just sent)


@dataclass(frozen=True)
class LocalFile:
    source: Path
    path: str  # relative to the folder holding the upload's basename
    sha256: str
    size: int


@dataclass(frozen=True)
class UploadPlan:
    basename: str
    files: list[LocalFile]

    @property
    def tree(self) -> str:
        return tree_hash((f.path, f.sha256, f.size) for f in self.files)

    @property
    def folder(self) -> str:
        return f"LocalUpload/{self.tree}"

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def plan_upload(local: str | Path, *, field: str = "path") -> UploadPlan:
    """Hash every file under ``local`` (a file or a folder)."""
    root = Path(local)
    if not root.exists():
        raise InvalidRequestError(f"{field}: local path {root} does not exist; fix the path in the spec")
    base = root.resolve().name
    if root.is_file():
        sha, size = sha256_file(root)
        return UploadPlan(base, [LocalFile(root, base, sha, size)])
    files = []
    for source in sorted(_walk(root)):
        rel = source.relative_to(root).as_posix()
        sha, size = sha256_file(source)
        files.append(LocalFile(source, f"{base}/{rel}", sha, size))
    return UploadPlan(base, files)


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for n in names:
            p = Path(folder) / n
            if p.is_file():
                yield p


def _stream(path: Path, progress: Progress | None) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            if progress:
                progress(str(path), len(chunk))
            yield chunk


def upload_plan(transport: Transport, datastore: str, plan: UploadPlan, progress: Progress | None = None) -> str:
    """Upload the planned files that the server lacks; returns the datastore URI of the upload."""
    for f in plan.files:
        url = f"/api/v1/datastores/{datastore}/paths/{plan.folder}/{f.path}"
        head = transport.request("HEAD", url)
        if head.status_code == 200 and head.headers.get(SHA_HEADER) == f.sha256:
            if progress:
                progress(str(f.source), f.size)
            continue
        transport.request(
            "PUT", url, content=_stream(f.source, progress),
            headers={SHA_HEADER: f.sha256, "Content-Type": "application/octet-stream",
                     "Content-Length": str(f.size)},
        )
    return f"azureml://datastores/{datastore}/paths/{plan.folder}/{plan.basename}"
