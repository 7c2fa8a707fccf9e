"""Request and response bodies of the ``/api/v1`` REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlyard.store.schema import Asset


class FileEntryModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=1024, description="Path relative to the folder holding the asset.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class AssetCreate(BaseModel):
    """A spec as the YAML loader produces it, with local content already uploaded."""

    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The asset spec (Azure ML YAML fields), paths as datastore URIs.")
    files: list[FileEntryModel] = Field(default_factory=list, description="Uploaded files of the asset.")


MODEL_MUTABLE_FIELDS = ("description", "tags", "stage")
# MLflow's limits on a model version tag
TagKey = Annotated[str, Field(min_length=1, max_length=250)]
TagValue = Annotated[str, Field(max_length=5000)]


class ModelUpdate(BaseModel):
    """What may change on a model version: its metadata. Content and identity (name, version, type,
    path, files) never change; register a new version for that."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=100_000,
                                    description="New description; null or empty clears it (omit to keep it).")
    tags: dict[TagKey, TagValue | None] = Field(
        default_factory=dict, description="Tags to set; a null value removes the tag. Others are kept.")
    stage: str | None = Field(default=None, description="MLflow stage: None, Staging, Production or Archived.")

    @model_validator(mode="before")
    @classmethod
    def _only_metadata(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in MODEL_MUTABLE_FIELDS:
                    raise ValueError(
                        f"field {key!r} of a model version cannot change (content and identity are immutable); "
                        f"only {', '.join(MODEL_MUTABLE_FIELDS)} can: register a new version to change it")
        return data


class AssetRead(BaseModel):
    kind: str
    name: str
    version: str
    type: str | None
    path: str | None
    description: str | None
    tags: dict[str, Any]
    archived: bool
    content_hash: str
    created_at: datetime
    created_by: str | None
    spec: dict[str, Any]
    files: list[FileEntryModel]
    created: bool | None = Field(default=None, description="On create: whether a new version was written.")
    registry: dict[str, Any] | None = Field(
        default=None, description="Models: what the MLflow registry knows (run, source, stage, aliases, lineage).")
    warnings: list[str] = Field(default_factory=list, description="On create: what the user should know "
                                "(a path accepted with allow_missing_path that holds no files yet).")

    @classmethod
    def of(cls, row: Asset, created: bool | None = None, registry: dict[str, Any] | None = None) -> AssetRead:
        return cls(
            kind=row.kind, name=row.name, version=row.version, type=row.asset_type, path=row.path,
            description=row.description, tags=row.tags or {}, archived=row.archived,
            content_hash=row.content_hash, created_at=row.created_at, created_by=row.created_by,
            spec=row.spec, files=[FileEntryModel(path=f.path, sha256=f.sha256, size=f.size) for f in row.files],
            created=created, registry=registry,
        )


class BlobRead(BaseModel):
    datastore: str
    path: str
    sha256: str
    size: int
    uri: str
    created: bool | None = None


class DatastoreRead(BaseModel):
    name: str
    type: str
    root: str
    is_default: bool
    spec: dict[str, Any] = Field(default_factory=dict, description="The datastore's spec, credentials masked.")


class WorkspaceRead(BaseModel):
    name: str
    version: str
    default_datastore: str
    database: str
    mlflow_tracking_uri: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    error: ErrorBody
