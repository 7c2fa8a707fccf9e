"""Versioned, immutable assets: data, environments, models and components.

A version is created once and never changes meaning. Creating an existing version with the same
content returns it (a no-op); with other content it is a conflict. Without a version, the next
integer is taken, unless the newest version already has exactly this content, which is then
returned: re-running a registration does not pile up identical versions.

The content of a version is its validated spec (less name and version) plus the manifest of its
files (path, sha256, size). Every file must have been uploaded and verified first (see
``mlyard.store.blobs``), so a version row exists only once all its bytes do.
"""

from __future__ import annotations

import builtins
import posixpath
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mlyard.core.errors import ConflictError, InvalidRequestError, NotFoundError
from mlyard.core.hashing import sha256_json, tree_hash
from mlyard.specs import load_spec_dict
from mlyard.specs.content import check_no_local_paths, describe_difference, spec_fields
from mlyard.specs.references import parse_asset_reference, parse_datastore_uri
from mlyard.store.blobs import DatastoreRegistry, find_blob
from mlyard.store.db import Database
from mlyard.store.events import append_event
from mlyard.store.registry_schema import ModelAlias, RegisteredModel
from mlyard.store.schema import Asset, AssetFile

AssetKind = Literal["data", "environment", "model", "component"]
ASSET_KINDS: tuple[AssetKind, ...] = ("data", "environment", "model", "component")
UPLOAD_PREFIX = "LocalUpload/"


@dataclass(frozen=True)
class FileEntry:
    """A file of an asset, relative to the folder that holds the asset's path."""

    path: str
    sha256: str
    size: int


class AssetService:
    """Create, find, list, archive and restore asset versions."""

    def __init__(self, db: Database, datastores: DatastoreRegistry) -> None:
        self._db = db
        self._datastores = datastores
        # SQLite allows one writer; serialising creates here avoids busy retries in-process.
        self._create_lock = threading.Lock()

    # -- create -----------------------------------------------------------------------------

    def create(self, kind: AssetKind, spec: dict[str, Any], files: list[FileEntry], actor: str, *,
               reuse_identical: bool = True, on_create: Callable[[Session, Asset], None] | None = None,
               allow_missing_path: bool = False, warnings: builtins.list[str] | None = None,
               event: bool = True) -> tuple[Asset, bool]:
        """Create a version (or return the identical existing one). Returns (asset, created).

        Args:
            reuse_identical: without a version, return the newest version when its content is the
                same (False: always take the next number, as MLflow's registry does).
            on_create: called in the creating transaction with the new row, to write what belongs
                with it (the registry's record of an MLflow model version).
            allow_missing_path: accept a datastore path that holds no file yet (it is refused
                otherwise); what was accepted is said in ``warnings``.
            warnings: receives what the caller should tell the user.
            event: write the new version's event (``data.version_created``, ``model.version_created``) in
                the creating transaction; False when ``on_create`` writes its own (the MLflow registry's).
        """
        loaded = load_spec_dict(spec, kind)
        clean = loaded.spec.model_dump(mode="json", exclude_none=True, by_alias=True)
        check_no_local_paths(kind, clean)
        name = str(clean["name"])
        requested_version = clean.pop("version", None)
        manifest = self._verify_files(kind, clean, files)
        if not manifest:
            missing = self._missing_path(kind, name, clean, allow_missing_path)
            if missing and warnings is not None:
                warnings.append(missing)
        fields = spec_fields(kind, clean)
        content_hash = sha256_json({"kind": kind, "spec": {k: v for k, v in clean.items() if k != "name"},
                                    "files": [(f.path, f.sha256, f.size) for f in manifest]})

        def attempt(s: Session) -> tuple[Asset, bool]:
            if requested_version is not None:
                existing = self._find(s, kind, name, str(requested_version))
                if existing is not None:
                    return self._same_or_conflict(existing, content_hash, clean), False
                version = str(requested_version)
            else:
                latest = self._latest(s, kind, name, include_archived=True)
                if reuse_identical and latest is not None and latest.content_hash == content_hash:
                    return latest, False
                version = self._next_version(s, kind, name)
            first = self._find_any(s, kind, name) is None
            row = Asset(
                kind=kind, name=name, version=version, asset_type=fields.asset_type, path=fields.path,
                description=clean.get("description"), tags=clean.get("tags") or {},
                spec={**clean, "version": version}, content_hash=content_hash, created_by=actor,
                files=[AssetFile(path=f.path, sha256=f.sha256, size=f.size) for f in manifest],
            )
            s.add(row)
            s.flush()
            if kind == "model" and first and s.get(RegisteredModel, name) is None:
                append_event(s, "model.created", name, actor, name=name)
            if event and kind in ("data", "model"):
                append_event(s, f"{kind}.version_created", f"{name}:{version}", actor, name=name, version=version,
                             type=row.asset_type, path=row.path)
            if on_create is not None:
                on_create(s, row)
            return row, True

        with self._create_lock:
            asset, created = self._db.run_in_transaction(attempt)
        return self.get(kind, asset.name, asset.version) if created else asset, created

    def _missing_path(self, kind: str, name: str, spec: dict[str, Any], allow: bool) -> str | None:
        """An asset registered by a datastore path must find files there (a typo would otherwise give jobs
        an empty folder); with ``allow``, the warning to show instead of the refusal."""
        uri = spec_fields(kind, spec).content_uri
        if not uri:
            return None
        datastore, path = parse_datastore_uri(uri)
        store = self._datastores.get(datastore)  # an unknown datastore is refused either way
        rel = path.strip("/")
        if rel and next(iter(store.list_files(rel)), None) is not None:
            return None
        what = (f"datastore {datastore!r} has no file at {rel!r}" if rel
                else f"it names no folder inside datastore {datastore!r}")
        if allow:
            return (f"{kind} {name}: {uri} holds no files yet ({what}); jobs that read it fail until data is "
                    f"uploaded there ('mlyard datastore upload --name {datastore} --src <local path> --path {rel}')")
        raise InvalidRequestError(
            f"{kind} {name}: path {uri} holds no files ({what}); upload the data first with 'mlyard datastore "
            f"upload --name {datastore} --src <local path> --path {rel}', or register it anyway with "
            "--allow-missing-path", details={"field": "path", "datastore": datastore, "path": rel})

    def _same_or_conflict(self, existing: Asset, content_hash: str, clean: dict[str, Any]) -> Asset:
        if existing.content_hash == content_hash:
            return existing
        diff = describe_difference(existing.spec, {**clean, "version": existing.version})
        raise ConflictError(
            f"{existing.kind} {existing.name}:{existing.version} already exists with different content"
            f" ({diff}); versions are immutable: give a new version, or omit it to take the next one",
            details={"kind": existing.kind, "name": existing.name, "version": existing.version},
        )

    def _verify_files(self, kind: str, spec: dict[str, Any], files: list[FileEntry]) -> list[FileEntry]:
        """Check that every announced file was uploaded with that hash, under the asset's path."""
        if not files:
            return []
        fields = spec_fields(kind, spec)
        if not fields.content_uri:
            raise InvalidRequestError(f"files were sent for a {kind} that has no local content path")
        datastore, path = parse_datastore_uri(fields.content_uri)
        root = posixpath.dirname(path.rstrip("/"))
        seen: set[str] = set()
        with self._db.session() as s:
            for f in files:
                if f.path in seen:
                    raise InvalidRequestError(f"file {f.path!r} is listed twice")
                seen.add(f.path)
                full = posixpath.join(root, f.path)
                blob = find_blob(s, datastore, full)
                if blob is None or blob.sha256 != f.sha256 or blob.size != f.size:
                    raise InvalidRequestError(
                        f"file {f.path!r} of this {kind} was not uploaded to datastore {datastore!r} with "
                        f"sha256 {f.sha256[:12]}... and {f.size} bytes: upload it first (the CLI and SDK do this)",
                        details={"path": f.path},
                    )
        if root.startswith(UPLOAD_PREFIX.rstrip("/")):
            announced = root.removeprefix(UPLOAD_PREFIX)
            actual = tree_hash((f.path, f.sha256, f.size) for f in files)
            if announced != actual:
                raise InvalidRequestError(
                    f"the upload folder {root!r} does not match the files' tree hash {actual}: "
                    "upload content under LocalUpload/<tree hash>/"
                )
        if kind == "model" and spec.get("type") == "mlflow_model":
            base = posixpath.basename(path.rstrip("/"))
            if f"{base}/MLmodel" not in seen:
                raise InvalidRequestError(
                    f"an mlflow_model must be a folder holding an MLmodel file; {base!r} has none",
                    details={"field": "path"},
                )
        return sorted(files, key=lambda f: f.path)

    # -- read -------------------------------------------------------------------------------

    @staticmethod
    def _query(kind: str, name: str) -> Any:
        return select(Asset).options(selectinload(Asset.files)).where(Asset.kind == kind, Asset.name == name)

    def _find(self, s: Session, kind: str, name: str, version: str) -> Asset | None:
        return s.scalars(self._query(kind, name).where(Asset.version == version)).first()

    @staticmethod
    def _find_any(s: Session, kind: str, name: str) -> int | None:
        return s.scalar(select(Asset.id).where(Asset.kind == kind, Asset.name == name).limit(1))

    def _latest(self, s: Session, kind: str, name: str, *, include_archived: bool = False) -> Asset | None:
        q = self._query(kind, name)
        if not include_archived:
            q = q.where(Asset.archived.is_(False))
        return s.scalars(q.order_by(Asset.created_at.desc(), Asset.id.desc())).first()

    @staticmethod
    def _next_version(s: Session, kind: str, name: str) -> str:
        versions = s.scalars(select(Asset.version).where(Asset.kind == kind, Asset.name == name)).all()
        numbers = [int(v) for v in versions if v.isdigit()]
        return str(max(numbers, default=0) + 1)

    def get(self, kind: AssetKind, name: str, version: str | None = None, label: str | None = None) -> Asset:
        """One version; without a version (or with label ``latest``) the newest unarchived one."""
        with self._db.session() as s:
            if version is not None:
                row = self._find(s, kind, name, version)
            else:
                if label not in (None, "latest"):
                    version = self._aliased(s, kind, name, label)
                    row = self._find(s, kind, name, version)
                else:
                    row = self._latest(s, kind, name)
            if row is None:
                what = f"{name}:{version}" if version else f"{name}@latest"
                raise NotFoundError(
                    f"{kind} {what} not found: list what exists with 'mlyard {kind} list'",
                    details={"kind": kind, "name": name, "version": version},
                )
            return row

    @staticmethod
    def _aliased(s: Session, kind: str, name: str, label: str) -> str:
        """The version a model alias (``name@champion``) points at."""
        if kind == "model":
            version = s.scalar(select(ModelAlias.version).where(ModelAlias.name == name, ModelAlias.alias == label))
            if version is not None:
                return version
            raise NotFoundError(f"model {name} has no alias {label!r}", details={"kind": kind, "name": name})
        raise InvalidRequestError(f"unknown label {label!r}: {kind} versions are named by number or @latest")

    def resolve(self, kind: AssetKind, reference: str) -> Asset:
        """Resolve ``azureml:name:1``, ``name@latest``, ``name:1`` or a bare name."""
        ref = parse_asset_reference(reference)
        return self.get(kind, ref.name, ref.version, ref.label)

    def list(self, kind: AssetKind, name: str | None = None, include_archived: bool = False) -> builtins.list[Asset]:
        """Every version of ``name``, newest first; without a name, the newest version of each asset."""
        with self._db.session() as s:
            q = select(Asset).options(selectinload(Asset.files)).where(Asset.kind == kind)
            if not include_archived:
                q = q.where(Asset.archived.is_(False))
            if name is not None:
                q = q.where(Asset.name == name)
            rows = list(s.scalars(q.order_by(Asset.name, Asset.created_at.desc(), Asset.id.desc())).all())
        if name is not None:
            return rows
        newest: dict[str, Asset] = {}
        for row in rows:
            newest.setdefault(row.name, row)
        return list(newest.values())

    # -- archive ----------------------------------------------------------------------------

    def set_archived(self, kind: AssetKind, name: str, version: str | None, archived: bool) -> builtins.list[Asset]:
        """Archive or restore one version, or every version of ``name``."""

        def change(s: Session) -> builtins.list[Asset]:
            q = self._query(kind, name)
            if version is not None:
                q = q.where(Asset.version == version)
            rows = list(s.scalars(q).all())
            if not rows:
                what = f"{name}:{version}" if version else name
                raise NotFoundError(f"{kind} {what} not found", details={"kind": kind, "name": name})
            for row in rows:
                row.archived = archived
            return rows

        return self._db.run_in_transaction(change)
