"""The model registry MLflow clients see, on mlyard's model assets (one source of truth).

A registered model is a model asset name; a model version is a model asset version, created through
``AssetService`` (so it is immutable and content-hashed) with MLflow's record beside it. Versions
made with ``mlyard model create`` appear here too, and MLflow-registered ones in ``mlyard model
list``. MLflow's "delete" archives the asset and hides the version; its number is never reused.
Aliases move with an entry in ``alias_history`` and an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from mlyard.assets.model_sources import locate
from mlyard.assets.service import AssetService, FileEntry
from mlyard.core.errors import AlreadyExistsError, InvalidRequestError, NotFoundError
from mlyard.core.timeutil import now_ms
from mlyard.store.blobs import BlobService, DatastoreRegistry
from mlyard.store.db import Database
from mlyard.store.events import append_event
from mlyard.store.registry_schema import (
    AliasMove,
    ModelAlias,
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelTag,
)
from mlyard.store.schema import Asset
from mlyard.store.tracking_schema import Dataset, Run, RunInput

DELETED = "Deleted_Internal"
STAGES = ("None", "Staging", "Production", "Archived")


def created_ms(asset: Asset) -> int:
    """When a version was created, in MLflow's milliseconds."""
    return int(asset.created_at.timestamp() * 1000)


@dataclass
class VersionView:
    asset: Asset
    record: ModelVersion | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    @property
    def stage(self) -> str:
        return self.record.current_stage if self.record else "None"


@dataclass
class ModelView:
    name: str
    creation_time: int
    last_updated_time: int
    description: str | None
    tags: dict[str, str]
    aliases: dict[str, str]
    latest: list[VersionView]




class Registry:
    def __init__(self, db: Database, assets: AssetService, blobs: BlobService, datastores: DatastoreRegistry) -> None:
        self._db = db
        self._assets = assets
        self._blobs = blobs
        self._datastores = datastores

    # -- reading ----------------------------------------------------------------------------------------

    @staticmethod
    def _versions(s: Session, name: str | None = None) -> list[VersionView]:
        q = (select(Asset, ModelVersion).outerjoin(ModelVersion, ModelVersion.asset_id == Asset.id)
             .options(selectinload(Asset.files)).where(Asset.kind == "model"))
        if name is not None:
            q = q.where(Asset.name == name)
        # One set of tags per version: the asset's (mlyard model create/update) and MLflow's, kept in step on write.
        views = [VersionView(a, r, tags={k: str(v) for k, v in (a.tags or {}).items()})
                 for a, r in s.execute(q).tuples() if not (r and r.current_stage == DELETED)]
        if not views:
            return []
        ids = {v.asset.id: v for v in views}
        for asset_id, key, value in s.execute(select(ModelVersionTag.asset_id, ModelVersionTag.key,
                                                     ModelVersionTag.value).where(ModelVersionTag.asset_id.in_(ids))):
            ids[asset_id].tags[key] = value
        by_version = {(v.asset.name, v.asset.version): v for v in views}
        alias_q = select(ModelAlias)
        if name is not None:
            alias_q = alias_q.where(ModelAlias.name == name)
        for alias in s.scalars(alias_q):
            if (hit := by_version.get((alias.name, alias.version))) is not None:
                hit.aliases.append(alias.alias)
        return views

    def _version(self, s: Session, name: str, version: str) -> VersionView:
        for v in self._versions(s, name):
            if v.asset.version == str(version):
                return v
        raise NotFoundError(f"Model Version (name={name}, version={version}) not found")

    def _model(self, s: Session, name: str) -> ModelView:
        row = s.get(RegisteredModel, name)
        versions = self._versions(s, name)
        if row is None and not versions:
            raise NotFoundError(f"Registered Model with name={name} not found")
        tags = dict(s.execute(select(RegisteredModelTag.key, RegisteredModelTag.value)
                              .where(RegisteredModelTag.name == name)).tuples().all())
        aliases = dict(s.execute(select(ModelAlias.alias, ModelAlias.version)
                                 .where(ModelAlias.name == name)).tuples().all())
        latest: dict[str, VersionView] = {}
        for v in sorted(versions, key=lambda v: _number(v.asset.version)):
            latest[v.stage] = v
        times = [created_ms(v.asset) for v in versions]
        created = row.creation_time if row else min(times)
        updated = max(([row.last_updated_time] if row else []) + times)
        return ModelView(name, created, updated, row.description if row else None, tags, aliases,
                         sorted(latest.values(), key=lambda v: _number(v.asset.version)))

    def get_model(self, name: str) -> ModelView:
        with self._db.session() as s:
            return self._model(s, name)

    def get_version(self, name: str, version: str) -> VersionView:
        with self._db.session() as s:
            return self._version(s, name, version)

    def all_models(self) -> list[ModelView]:
        with self._db.session() as s:
            names = set(s.scalars(select(RegisteredModel.name)).all())
            names |= {v.asset.name for v in self._versions(s)}
            return [self._model(s, n) for n in sorted(names)]

    def all_versions(self) -> list[VersionView]:
        with self._db.session() as s:
            return self._versions(s)

    def by_alias(self, name: str, alias: str) -> VersionView:
        with self._db.session() as s:
            row = s.get(ModelAlias, (name, alias))
            if row is None:  # MLflow answers INVALID_PARAMETER_VALUE here, not RESOURCE_DOES_NOT_EXIST
                raise InvalidRequestError(f"Registered model alias {alias} not found.")
            return self._version(s, name, row.version)

    def latest_versions(self, name: str, stages: list[str]) -> list[VersionView]:
        model = self.get_model(name)
        wanted = {s.lower() for s in stages}
        return [v for v in model.latest if not wanted or v.stage.lower() in wanted]

    def describe(self, asset: Asset) -> dict[str, Any]:
        """The registry's record of a model asset version, with its lineage (version -> run -> inputs)."""
        with self._db.session() as s:
            record = s.get(ModelVersion, asset.id)
            aliases = sorted(s.scalars(select(ModelAlias.alias).where(ModelAlias.name == asset.name,
                                                                      ModelAlias.version == asset.version)).all())
            out: dict[str, Any] = {"stage": record.current_stage if record else "None", "aliases": aliases}
            if record is None:
                return out
            out.update({k: v for k, v in (("run_id", record.run_id), ("source", record.source),
                                          ("model_id", record.model_id)) if v})
            run = s.get(Run, record.run_id) if record.run_id else None
            if run is not None:
                out["experiment_id"] = str(run.experiment_id)
                out["run_name"] = run.name
                out["inputs"] = [{"name": d.name, "digest": d.digest, "source": d.source} for d in s.scalars(
                    select(Dataset).join(RunInput, RunInput.dataset_id == Dataset.id).where(RunInput.run_id == run.id))]
            return out

    def download_uri(self, name: str, version: str) -> str:
        view = self.get_version(name, version)
        path = view.asset.path or ""
        prefix = f"azureml://datastores/{self._datastores.default_name()}/paths/"
        if not path.startswith(prefix):
            raise InvalidRequestError(f"model {name}:{version} is not stored on the default datastore; download it "
                                      f"with 'mlyard model download -n {name}:{version}'")
        return "mlflow-artifacts:/" + path[len(prefix):]

    # -- registered models ------------------------------------------------------------------------------

    def create_model(self, name: str, description: str | None, tags: dict[str, str], *,
                     actor: str = "mlyard") -> ModelView:
        def write(s: Session) -> None:
            if s.get(RegisteredModel, name) is not None or self._versions(s, name):
                raise AlreadyExistsError(f"Registered Model (name={name}) already exists.")
            now = now_ms()
            s.add(RegisteredModel(name=name, description=description, creation_time=now, last_updated_time=now))
            s.flush()
            s.add_all(RegisteredModelTag(name=name, key=k, value=v) for k, v in tags.items())
            append_event(s, "model.created", name, actor, name=name, description=description, tags=dict(tags))

        if not name or not name.strip():
            raise InvalidRequestError("registered model name must not be empty")
        self._db.run_in_transaction(write)
        return self.get_model(name)

    def _ensure_row(self, s: Session, name: str) -> RegisteredModel:
        self._model(s, name)  # raises when the model does not exist at all
        row = s.get(RegisteredModel, name)
        if row is None:
            now = now_ms()
            row = RegisteredModel(name=name, description=None, creation_time=now, last_updated_time=now)
            s.add(row)
            s.flush()
        return row

    def update_model(self, name: str, description: str | None) -> ModelView:
        def write(s: Session) -> None:
            row = self._ensure_row(s, name)
            row.description, row.last_updated_time = description, now_ms()

        self._db.run_in_transaction(write)
        return self.get_model(name)

    def rename_model(self, name: str, new_name: str) -> ModelView:
        def write(s: Session) -> None:
            self._ensure_row(s, name)
            if s.get(RegisteredModel, new_name) is not None or self._versions(s, new_name):
                raise AlreadyExistsError(f"Registered Model (name={new_name}) already exists.")
            row = s.get(RegisteredModel, name)
            assert row is not None
            row.name, row.last_updated_time = new_name, now_ms()
            for asset in s.scalars(select(Asset).where(Asset.kind == "model", Asset.name == name)):
                asset.name = new_name
                asset.spec = {**asset.spec, "name": new_name}
            for alias in s.scalars(select(ModelAlias).where(ModelAlias.name == name)):
                alias.name = new_name

        if not new_name or not new_name.strip():
            raise InvalidRequestError("new_name must not be empty")
        self._db.run_in_transaction(write)
        return self.get_model(new_name)

    def delete_model(self, name: str, actor: str) -> None:
        """Hide every version (archiving its asset) and drop the name's metadata and aliases."""

        def write(s: Session) -> None:
            self._model(s, name)
            for v in self._versions(s, name):
                self._hide(s, v)
            s.execute(delete(ModelAlias).where(ModelAlias.name == name))
            s.execute(delete(RegisteredModelTag).where(RegisteredModelTag.name == name))
            s.execute(delete(RegisteredModel).where(RegisteredModel.name == name))
            append_event(s, "model.deleted", name, actor)

        self._db.run_in_transaction(write)

    def set_model_tag(self, name: str, key: str, value: str | None) -> None:
        def write(s: Session) -> None:
            self._ensure_row(s, name)
            if value is None:
                tag = s.get(RegisteredModelTag, (name, key))
                if tag is None:
                    raise NotFoundError(f"registered model {name} has no tag {key!r}")
                s.delete(tag)
            else:
                s.merge(RegisteredModelTag(name=name, key=key, value=value))

        self._db.run_in_transaction(write)

    # -- versions ---------------------------------------------------------------------------------------

    def create_version(self, name: str, source: str, run_id: str | None, tags: dict[str, str],
                       run_link: str | None, description: str | None, model_id: str | None,
                       actor: str) -> VersionView:
        with self._db.session() as s:
            self._model(s, name)
            default = self._datastores.get(self._datastores.default_name())
            where = locate(s, source, run_id, model_id,
                           has_files=lambda path: next(iter(default.list_files(path)), None) is not None)
        datastore = where.datastore or self._datastores.default_name()
        folder, files = self._blobs.freeze_tree(datastore, where.path, where.basename)
        is_mlflow = any(f.path == f"{where.basename}/MLmodel" for f in files)
        spec: dict[str, Any] = {"name": name, "type": "mlflow_model" if is_mlflow else "custom_model",
                                "path": f"azureml://datastores/{datastore}/paths/{folder}/{where.basename}"}
        if description:
            spec["description"] = description
        if tags:
            spec["tags"] = dict(tags)

        def record(s: Session, asset: Asset) -> None:
            row = self._ensure_row(s, name)
            row.last_updated_time = now_ms()
            s.add(ModelVersion(asset_id=asset.id, run_id=where.run_id, source=source, status="READY",
                               current_stage="None", description=description, user_id=actor, run_link=run_link,
                               model_id=where.model_id, last_updated_time=now_ms()))
            s.add_all(ModelVersionTag(asset_id=asset.id, key=k, value=v) for k, v in tags.items())
            append_event(s, "model.version_created", f"{name}:{asset.version}", actor, run_id=where.run_id,
                         source=source, name=name, version=asset.version, type=asset.asset_type, path=asset.path,
                         tags=dict(tags), description=description)

        entries = [FileEntry(f.path, f.sha256, f.size) for f in files]
        asset, _ = self._assets.create("model", spec, entries, actor, reuse_identical=False, on_create=record,
                                       event=False)
        return self.get_version(name, asset.version)

    def _record(self, s: Session, name: str, version: str) -> tuple[VersionView, ModelVersion]:
        view = self._version(s, name, version)
        if view.record is None:  # a version made with 'mlyard model create': give it MLflow's record
            view.record = ModelVersion(asset_id=view.asset.id, source=view.asset.path, status="READY",
                                       current_stage="None", user_id=view.asset.created_by,
                                       last_updated_time=created_ms(view.asset))
            s.add(view.record)
            s.flush()
        return view, view.record

    def update_version(self, name: str, version: str, description: str | None) -> VersionView:
        def write(s: Session) -> None:
            view, record = self._record(s, name, version)
            record.description, record.last_updated_time = description, now_ms()
            _set_asset_description(view.asset, description)

        self._db.run_in_transaction(write)
        return self.get_version(name, version)

    def transition_stage(self, name: str, version: str, stage: str, archive_existing: bool) -> VersionView:
        canonical = _stage(stage)

        def write(s: Session) -> None:
            view, record = self._record(s, name, version)
            if archive_existing and canonical in ("Staging", "Production"):
                for other in self._versions(s, name):
                    if other.asset.id != view.asset.id and other.stage == canonical and other.record:
                        other.record.current_stage = "Archived"
            record.current_stage, record.last_updated_time = canonical, now_ms()

        self._db.run_in_transaction(write)
        return self.get_version(name, version)

    @staticmethod
    def _hide(s: Session, view: VersionView) -> None:
        if view.record is None:
            view.record = ModelVersion(asset_id=view.asset.id, source=view.asset.path, status="READY",
                                       current_stage=DELETED, last_updated_time=now_ms())
            s.add(view.record)
        view.record.current_stage = DELETED
        view.asset.archived = True
        s.execute(delete(ModelAlias).where(ModelAlias.name == view.asset.name,
                                           ModelAlias.version == view.asset.version))

    def delete_version(self, name: str, version: str, actor: str) -> None:
        def write(s: Session) -> None:
            self._hide(s, self._version(s, name, version))
            append_event(s, "model.version_deleted", f"{name}:{version}", actor)

        self._db.run_in_transaction(write)

    def set_version_tag(self, name: str, version: str, key: str, value: str | None, *, actor: str = "mlyard") -> None:
        """Set (or, with value None, remove) one tag: MLflow's set-tag and delete-tag."""
        def write(s: Session) -> None:
            view = self._version(s, name, version)
            if value is None and key not in view.tags:
                raise NotFoundError(f"model version {name}:{version} has no tag {key!r}")
            _set_version_tag(s, view.asset, key, value)
            append_event(s, "model.version_updated", f"{name}:{version}", actor, fields=[f"tags.{key}"], key=key,
                         value=value)

        self._db.run_in_transaction(write)

    def update_metadata(self, name: str, version: str, *, description: str | None = None,
                        set_description: bool = False, tags: dict[str, str | None] | None = None,
                        stage: str | None = None, actor: str) -> None:
        """Change what may change on a version (``mlyard model update``): description, tags, stage.

        Content and identity (name, version, type, path, files) never change. Tags are shared with
        MLflow's registry: what is set here, ``get_model_version`` shows, and the other way round.
        A tag whose value is None is removed; ``set_description`` with no description clears it.
        """
        canonical = _stage(stage) if stage is not None else None

        def write(s: Session) -> None:
            view, record = self._record(s, name, version)
            missing = [k for k, v in (tags or {}).items() if v is None and k not in view.tags]
            if missing:
                raise NotFoundError(f"model {name}:{version} has no tag {missing[0]!r} to remove",
                                    details={"field": f"tags.{missing[0]}"})
            if set_description:
                record.description = description or None
                _set_asset_description(view.asset, description or None)
            for key, value in (tags or {}).items():
                _set_version_tag(s, view.asset, key, value)
            if canonical is not None:
                record.current_stage = canonical
            record.last_updated_time = now_ms()
            append_event(s, "model.version_updated", f"{name}:{version}", actor,
                   fields=sorted({*(["description"] if set_description else []),
                                  *(f"tags.{k}" for k in tags or {}), *(["stage"] if stage is not None else [])}),
                   tags=dict(tags or {}))

        self._db.run_in_transaction(write)

    # -- aliases ----------------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: str, actor: str) -> None:
        if not alias or alias.lower() == "latest" or alias.lower().startswith("v") and alias[1:].isdigit():
            raise InvalidRequestError(f"alias {alias!r} is reserved or empty: 'latest' and v<number> name versions")

        def write(s: Session) -> None:
            self._version(s, name, version)
            row = s.get(ModelAlias, (name, alias))
            previous = row.version if row else None
            if row is None:
                s.add(ModelAlias(name=name, alias=alias, version=str(version)))
            else:
                row.version = str(version)
            if previous != str(version):
                s.add(AliasMove(at=now_ms(), name=name, alias=alias, from_version=previous, to_version=str(version),
                                actor=actor))
                append_event(s, "model.alias_moved", f"{name}@{alias}", actor, alias=alias, previous=previous,
                       version=str(version))

        self._db.run_in_transaction(write)

    def delete_alias(self, name: str, alias: str, actor: str) -> None:
        def write(s: Session) -> None:
            self._model(s, name)
            row = s.get(ModelAlias, (name, alias))
            if row is None:  # as in MLflow: deleting an alias that is not set changes nothing
                return
            s.add(AliasMove(at=now_ms(), name=name, alias=alias, from_version=row.version, to_version=None,
                            actor=actor))
            append_event(s, "model.alias_moved", f"{name}@{alias}", actor, alias=alias, previous=row.version,
                         version=None)
            s.delete(row)

        self._db.run_in_transaction(write)


def _number(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (0, version)


def _stage(stage: str) -> str:
    canonical = {s.lower(): s for s in STAGES}.get(stage.lower())
    if canonical is None:
        raise InvalidRequestError(f"invalid model version stage {stage!r}; expected one of {', '.join(STAGES)}",
                                  details={"field": "stage"})
    return canonical


def _set_asset_description(asset: Asset, description: str | None) -> None:
    """Metadata, not content: the content hash stays the one the version was registered with."""
    asset.description = description
    spec = dict(asset.spec)  # a new dict: JSON columns see assignments, not changes in place
    if description:
        spec["description"] = description
    else:
        spec.pop("description", None)
    asset.spec = spec


def _set_version_tag(s: Session, asset: Asset, key: str, value: str | None) -> None:
    """Set (or, with None, remove) a tag on both the asset and MLflow's record of the version."""
    tags = dict(asset.tags or {})
    if value is None:
        tags.pop(key, None)
    else:
        tags[key] = value
    asset.tags = tags
    spec = dict(asset.spec)
    if tags:
        spec["tags"] = tags
    else:
        spec.pop("tags", None)
    asset.spec = spec
    if value is None:
        s.execute(delete(ModelVersionTag).where(ModelVersionTag.asset_id == asset.id, ModelVersionTag.key == key))
    else:
        s.merge(ModelVersionTag(asset_id=asset.id, key=key, value=value))
