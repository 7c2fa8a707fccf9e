"""Job data: resolving inputs to datastore locations, materialising them, and uploading outputs.

Every data input ends up as a datastore location plus an *identity* (what step reuse compares):
``LocalUpload/<tree hash>/...`` paths carry their identity in the path, and assets uploaded there are
identified by their content hash. Any other location, a data asset registered by its datastore path
included, is identified by the tree hash of the files under it when the job resolves it (taken from
the blob records, hashing only files written or changed outside mlyard). A location that holds no
file is refused as an input.

On a local datastore, ``ro_mount`` hands the process the stored folder itself: nothing is copied.
``download`` copies into the job's folder; ``direct`` passes the URI.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from mlyard.assets.service import AssetService
from mlyard.core.errors import InvalidRequestError, NotFoundError
from mlyard.core.hashing import CHUNK, sha256_file, sha256_stream, tree_hash
from mlyard.core.timeutil import utcnow
from mlyard.specs.references import classify_path, parse_datastore_uri, parse_job_output_uri
from mlyard.store.blobs import DatastoreRegistry
from mlyard.store.datastores import FileInfo, FsspecDatastore, WrittenFile, datastore_uri
from mlyard.store.db import Database
from mlyard.store.jobs_schema import Job
from mlyard.store.schema import Blob

MODEL_TYPES = ("mlflow_model", "custom_model", "triton_model")
EMPTY = "empty:"  # the identity of a location that holds no file
HASH_CACHE_SIZE = 200_000
_UPLOAD_RE = re.compile(r"^LocalUpload/([0-9a-f]{64})(/.*)?$")


@dataclass(frozen=True)
class DataRef:
    """A resolved data input (or a step's output seen downstream)."""

    type: str
    uri: str  # azureml://datastores/<ds>/paths/<path>, or an http(s) URL
    identity: str
    asset: str | None = None  # "name:version" when it came from a registered asset

    def to_json(self) -> dict[str, Any]:
        return {"kind": "data", "type": self.type, "uri": self.uri, "identity": self.identity,
                **({"asset": self.asset} if self.asset else {})}


class JobData:
    def __init__(self, db: Database, datastores: DatastoreRegistry, assets: AssetService) -> None:
        self._db = db
        self._datastores = datastores
        self._assets = assets
        # sha256 of files written outside mlyard, by (datastore, path, size, mtime): an unchanged big
        # folder is listed, not read, when the next job is submitted
        self._hashes: dict[tuple[str, str, int, float | None], str] = {}
        self._hash_lock = threading.Lock()

    # -- inputs -------------------------------------------------------------------------------

    def resolve(self, path: str, type_: str) -> DataRef:
        """Resolve a data input's ``path`` (after the client uploaded local content).

        A datastore location, or a registered asset whose content is not content-addressed, is
        fingerprinted by the files under it now; one that holds no file is refused.
        """
        kind = classify_path(path)
        if kind == "datastore":
            ds, rel = parse_datastore_uri(path)
            self._datastores.get(ds)  # an unknown datastore is a clear 404
            uri = datastore_uri(ds, rel)
            identity = self.identity(ds, rel)
            if identity.startswith(EMPTY):
                raise NotFoundError(f"input {uri} holds no files: datastore {ds!r} has nothing at {rel.strip('/')!r}; "
                                    f"upload the data with 'mlyard datastore upload --name {ds} --src <local path> "
                                    f"--path {rel.strip('/')}'", details={"datastore": ds, "path": rel})
            return DataRef(type_, uri, identity)
        if kind == "asset":
            asset = self._assets.resolve("model" if type_ in MODEL_TYPES else "data", path)
            if not asset.path or classify_path(asset.path) != "datastore":
                raise InvalidRequestError(f"{path} has no stored content to read (its path is {asset.path!r})")
            ds, rel = parse_datastore_uri(asset.path)
            if asset.files and _UPLOAD_RE.match(rel.strip("/")):
                # content-addressed: these bytes never change, so the asset's own hash says what they are
                return DataRef(type_, asset.path, f"asset:{asset.content_hash}", f"{asset.name}:{asset.version}")
            self._datastores.get(ds)
            identity = self.identity(ds, rel)
            if identity.startswith(EMPTY):
                raise NotFoundError(
                    f"{asset.kind} asset {asset.name}:{asset.version} holds no files: its path {asset.path} is empty "
                    f"or missing in datastore {ds!r}; upload the data with 'mlyard datastore upload --name {ds} "
                    f"--src <local path> --path {rel.strip('/')}'",
                    details={"asset": f"{asset.name}:{asset.version}", "path": asset.path})
            return DataRef(type_, asset.path, identity, f"{asset.name}:{asset.version}")
        if kind == "job_output":
            ref = parse_job_output_uri(path)
            with self._db.session() as s:
                job = s.get(Job, ref.job)
                record = (job.outputs or {}).get(ref.output) if job is not None else None
            if record is None:
                raise NotFoundError(f"{path}: job {ref.job!r} has no output {ref.output!r} (yet)")
            uri = record["uri"] if not ref.path else f"{record['uri'].rstrip('/')}/{ref.path}"
            ds, rel = parse_datastore_uri(uri)
            return DataRef(type_, uri, self.identity(ds, rel))
        if kind == "http":
            return DataRef(type_, path, f"url:{path}")
        if kind == "local":
            raise InvalidRequestError(f"{path!r} is a local path; the client uploads local inputs before it "
                                      "submits a job (the mlyard CLI and SDK do this)")
        raise InvalidRequestError(f"{path!r}: mlyard cannot read {kind} locations yet; register the data or "
                                  "copy it to a datastore")

    def identity(self, datastore: str, path: str) -> str:
        """What the content under ``path`` is now: the upload's tree hash, or the tree hash of its files.

        A file's sha256 comes from its blob record when the file has not changed since mlyard wrote
        it (same size, not modified after the record), else from the hash cache (keyed by path, size
        and modification time), else it is hashed. ``empty:...`` when nothing is there.
        """
        rel = path.strip("/")
        m = _UPLOAD_RE.match(rel)
        if m:
            return f"tree:{m.group(1)}{m.group(2) or ''}"
        store = self._datastores.get(datastore)
        files = list(store.list_files(rel)) if rel else []
        if not files:
            return f"{EMPTY}{datastore}/{rel}"
        known = self._recorded(datastore, [f.path for f in files])
        entries = []
        for f in files:
            entries.append((posixpath.relpath(f.path, rel) if f.path != rel else posixpath.basename(rel),
                            self._sha256(store, f, known.get(f.path)), f.size))
        return f"tree:{tree_hash(entries)}"

    def _recorded(self, datastore: str, paths: list[str]) -> dict[str, tuple[str, int, float]]:
        """(sha256, size, when recorded) of the blob records of ``paths``, fetched in batches."""
        found: dict[str, tuple[str, int, float]] = {}
        with self._db.session() as s:
            for i in range(0, len(paths), 500):
                batch = paths[i:i + 500]
                for b in s.scalars(select(Blob).where(Blob.datastore == datastore, Blob.path.in_(batch))):
                    found[b.path] = (b.sha256, b.size, _timestamp(b.created_at))
        return found

    def _sha256(self, store: FsspecDatastore, f: FileInfo, record: tuple[str, int, float] | None) -> str:
        if record is not None and record[1] == f.size and (f.mtime is None or f.mtime <= record[2]):
            return record[0]  # written and verified by mlyard, untouched since
        key = (store.name, f.path, f.size, f.mtime)
        cached = self._hashes.get(key) if f.mtime is not None else None
        if cached is not None:
            return cached
        local = store.local_path(f.path)
        if local is not None:
            sha, _ = sha256_file(Path(local))
        else:
            with store.open_read(f.path) as stream:
                sha, _ = sha256_stream(stream)
        if f.mtime is not None:
            with self._hash_lock:
                if len(self._hashes) >= HASH_CACHE_SIZE:
                    self._hashes.clear()
                self._hashes[key] = sha
        return sha

    def materialise(self, ref: DataRef, mode: str | None, scratch: Path) -> str:
        """The text ``${{inputs.x}}`` becomes: a local path (or the URI for ``direct``)."""
        mode = mode or "ro_mount"
        if mode == "direct":
            return ref.uri
        if ref.uri.startswith(("http://", "https://")):
            return self._fetch_url(ref.uri, scratch)
        ds, rel = parse_datastore_uri(ref.uri)
        store = self._datastores.get(ds)
        local = store.local_path(rel) if rel else None
        if mode not in ("download", "eval_download") and local is not None:
            if not os.path.exists(local):  # an output nobody wrote to: an empty folder
                empty = scratch / "empty"
                empty.mkdir(parents=True, exist_ok=True)
                return str(empty)
            return local
        return self._download(store, rel, scratch)

    @staticmethod
    def _download(store: FsspecDatastore, rel: str, scratch: Path) -> str:
        base = scratch / (posixpath.basename(rel.rstrip("/")) or "data")
        files = list(store.list_files(rel))
        is_file = len(files) == 1 and files[0].path == rel.strip("/")
        for f in files:
            dest = base if is_file else base / posixpath.relpath(f.path, rel.strip("/"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            with store.open_read(f.path) as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
        if not files:
            base.mkdir(parents=True, exist_ok=True)
        return str(base)

    @staticmethod
    def _fetch_url(url: str, scratch: Path) -> str:
        name = posixpath.basename(url.split("?", 1)[0].rstrip("/")) or "download"
        dest = scratch / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with httpx.stream("GET", url, follow_redirects=True, timeout=60) as r:
                r.raise_for_status()
                with dest.open("wb") as out:
                    for chunk in r.iter_bytes(CHUNK):
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise InvalidRequestError(f"could not download input {url}: {exc}; check the URL, or use "
                                      "mode: direct and let the script fetch it") from exc
        return str(dest)

    # -- outputs ------------------------------------------------------------------------------

    def upload(self, local: Path, datastore: str, dest: str, *, is_file: bool) -> tuple[str, list[WrittenFile]]:
        """Copy a finished output into the datastore and record its files; returns (tree hash, files).

        File paths in the result are relative to the folder that holds ``dest``'s basename, as asset
        manifests are.
        """
        store = self._datastores.get(datastore)
        dest = dest.strip("/")
        base = posixpath.basename(dest)
        written: list[WrittenFile] = []
        sources = [(local, dest)] if is_file else [
            (p, f"{dest}/{p.relative_to(local).as_posix()}") for p in sorted(local.rglob("*")) if p.is_file()]
        for src, rel in sources:
            w = store.put_file(src, rel)
            written.append(WrittenFile(f"{base}/{posixpath.relpath(rel, dest)}" if not is_file else base, w.sha256,
                                       w.size))

        def record(s: Any) -> None:
            for w in written:
                full = posixpath.join(posixpath.dirname(dest), w.path)
                row = s.get(Blob, (datastore, full))
                if row is None:
                    s.add(Blob(datastore=datastore, path=full, sha256=w.sha256, size=w.size))
                else:
                    row.sha256, row.size, row.created_at = w.sha256, w.size, utcnow()

        if written:
            self._db.run_in_transaction(record)
        inner = [(posixpath.relpath(w.path, base) if w.path != base else base, w.sha256, w.size) for w in written]
        return tree_hash(inner), written

    def exists(self, uri: str) -> bool:
        """Whether a recorded output is still there to reuse."""
        try:
            ds, rel = parse_datastore_uri(uri)
            store = self._datastores.get(ds)
        except (InvalidRequestError, NotFoundError):
            return False
        except Exception:  # noqa: BLE001 - a malformed stored URI is simply not reusable
            return False
        return next(iter(store.list_files(rel)), None) is not None or store.size(rel) is not None


def _timestamp(when: datetime) -> float:
    """Seconds since the epoch of a stored time (SQLite gives it back without its UTC zone)."""
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()
