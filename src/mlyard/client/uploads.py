"""Uploading local files and folders to a datastore, content-addressed by their tree hash; downloading files.

A local path ``.../<basename>`` lands at ``LocalUpload/<tree hash>/<basename>`` in the datastore,
the layout Azure ML uses, so equal content always maps to the same place and the basename is
kept (``AZUREML_MODEL_DIR/<basename>/...``). Files the server already holds are skipped. Several files
move at once (``Transport.transfers``, ``MLYARD_TRANSFERS``; ``client/transfers.py``). A file of
``RESUMABLE_FROM`` bytes or more is resumable: the client asks how much of it the server holds from an
earlier, cut upload and sends only the rest (``store/resumable.py``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from mlyard.client.http import Transport, raise_for_error
from mlyard.client.transfers import Progress as Progress  # re-exported: callers name it from here
from mlyard.client.transfers import serialised, transfer_each
from mlyard.core.errors import InvalidRequestError, StorageError
from mlyard.core.hashing import CHUNK, sha256_file, tree_hash

SHA_HEADER = "X-Mlyard-Sha256"
RESUMABLE_FROM = 16 << 20  # files this large are sent in a resumable upload: a rerun sends only what is missing


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


def _stream(path: Path, progress: Progress | None, offset: int = 0) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(offset)
        while chunk := f.read(CHUNK):
            if progress:
                progress(str(path), len(chunk))
            yield chunk


def upload_plan(transport: Transport, datastore: str, plan: UploadPlan, progress: Progress | None = None) -> str:
    """Upload the planned files that the server lacks; returns the datastore URI of the upload."""
    put_files(transport, datastore, [(f, f"{plan.folder}/{f.path}") for f in plan.files], progress)
    return f"azureml://datastores/{datastore}/paths/{plan.folder}/{plan.basename}"


def put_files(transport: Transport, datastore: str, files: list[tuple[LocalFile, str]],
              progress: Progress | None = None, *, overwrite: bool = False) -> None:
    """Upload each local file to its datastore path, verified by its sha256; files already there are skipped.

    ``transport.transfers`` files go at once. Other content at a path is a ``ConflictError`` unless
    ``overwrite``. A file that fails fails the whole call, naming the file, once the files being sent
    have ended; the files that arrived whole stay (a rerun skips them), nothing else is recorded.
    """
    report = serialised(progress)

    def put(item: tuple[LocalFile, str]) -> None:
        f, dest = item
        url = f"/api/v1/datastores/{quote(datastore, safe='')}/paths/{quote(dest)}"
        head = transport.request("HEAD", url, check=False)  # a refused path is explained by the PUT's answer
        if head.status_code == 200 and head.headers.get(SHA_HEADER) == f.sha256:
            if report:
                report(str(f.source), f.size)
            return
        if f.size >= RESUMABLE_FROM:
            _put_resumable(transport, datastore, f, dest, report, overwrite=overwrite)
            return
        transport.request(
            "PUT", url, content=_stream(f.source, report), params={"overwrite": "true"} if overwrite else None,
            headers={SHA_HEADER: f.sha256, "Content-Type": "application/octet-stream",
                     "Content-Length": str(f.size)},
        )

    transfer_each(files, put, transfers=transport.transfers, label=lambda item: str(item[0].source))


def _put_resumable(transport: Transport, datastore: str, f: LocalFile, dest: str, report: Progress | None, *,
                   overwrite: bool) -> None:
    """Ask how much of ``f`` the server holds from an earlier, cut upload, and send the rest."""
    base = f"/api/v1/datastores/{quote(datastore, safe='')}/uploads"
    held = transport.json("POST", base, json={"path": dest, "sha256": f.sha256, "size": f.size})
    offset = int(held["held"])
    if report and offset:
        report(str(f.source), offset)
    params = {"offset": str(offset), **({"overwrite": "true"} if overwrite else {})}
    transport.request("PUT", f"{base}/{held['id']}", params=params, content=_stream(f.source, report, offset),
                      headers={"Content-Type": "application/octet-stream", "Content-Length": str(f.size - offset)})


def fetch_files(transport: Transport, datastore: str, files: list[tuple[str, Path, str | None]],
                progress: Progress | None = None) -> list[Path]:
    """Download each ``(datastore path, local destination, sha256 or None)``, ``transport.transfers`` at once.

    Returns the destinations in the order given. A file that fails fails the call, naming it, once the
    others being fetched have ended; each file that arrived whole is in place, no file is half-written.
    """
    report = serialised(progress)
    return transfer_each(files, lambda f: fetch_file(transport, datastore, f[0], f[1], sha256=f[2], progress=report),
                         transfers=transport.transfers, label=lambda f: f[0])


def fetch_file(transport: Transport, datastore: str, path: str, dest: Path, *, sha256: str | None = None,
               progress: Progress | None = None) -> Path:
    """Download one datastore file to ``dest`` atomically (a ``.part`` file renamed into place).

    With ``sha256``, the content is verified first and a mismatch leaves nothing at ``dest``.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    digest = hashlib.sha256()
    try:
        with transport.http.stream("GET", f"/api/v1/datastores/{datastore}/paths/{path}") as response:
            if not response.is_success:
                response.read()
                raise_for_error(response)
            with tmp.open("wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    if progress:
                        progress(str(dest), len(chunk))
    except BaseException:
        tmp.unlink(missing_ok=True)  # a cut download leaves nothing behind
        raise
    if sha256 is not None and digest.hexdigest() != sha256:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"{path} arrived with sha256 {digest.hexdigest()}, expected {sha256}; try again")
    os.replace(tmp, dest)
    return dest
