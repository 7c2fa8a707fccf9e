"""Computes and datastores (reference §0, §10): named places to run and to store.

Azure's compute types are accepted as written and map to mlyard's local executor; ``type: ray``
(an mlyard extension) names a Ray cluster by its ``address``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from mlyard.specs.base import Documented, Text, spec_error


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


ComputeName = Annotated[Text, Field(pattern=r"^[A-Za-z][A-Za-z0-9-]{1,31}$")]


class Compute(Documented):
    name: ComputeName
    type: Annotated[Literal["amlcompute", "computeinstance", "kubernetes", "virtualmachine", "local", "ray"],
                    BeforeValidator(_lower)] = "amlcompute"
    size: Text | None = None
    min_instances: int = Field(default=0, ge=0)
    max_instances: int = Field(default=1, ge=1)
    idle_time_before_scale_down: int | None = Field(default=None, ge=0)
    tier: Annotated[Literal["dedicated", "low_priority"], BeforeValidator(_lower)] | None = None
    location: Text | None = None
    identity: dict[str, Any] | None = None
    ssh_public_access_enabled: bool | None = None
    ssh_settings: dict[str, Any] | None = None
    network_settings: dict[str, Any] | None = None
    address: Text | None = None  # type: ray

    @model_validator(mode="after")
    def _bounds(self) -> Compute:
        if self.min_instances > self.max_instances:
            raise spec_error(f"min_instances ({self.min_instances}) is above max_instances ({self.max_instances})",
                             "min_instances")
        if self.type == "ray" and not self.address:
            raise spec_error("a ray compute needs 'address' (local: a Ray that mlyard starts on this machine; or a "
                             "cluster's, for example ray://head:10001, or auto)", "address")
        return self


class Datastore(Documented):
    """Azure's datastore YAML, plus mlyard's ``type: s3`` (``bucket``, ``prefix``, ``endpoint_url``, ``region``,
    ``credentials: {access_key_id, secret_access_key, session_token}``): Azure ML has no S3 datastore."""

    name: Annotated[Text, Field(pattern=r"^[A-Za-z0-9_]{1,255}$")]
    type: Annotated[Literal["azure_blob", "azure_file", "azure_data_lake_gen1", "azure_data_lake_gen2", "local", "s3"],
                    BeforeValidator(_lower)]
    account_name: Text | None = None
    container_name: Text | None = None
    file_share_name: Text | None = None
    filesystem: Text | None = None
    store_name: Text | None = None
    endpoint: Text | None = None
    protocol: Text | None = None
    credentials: dict[str, Any] | None = None
    path: Text | None = None  # type: local
    bucket: Text | None = None  # type: s3, and the rest below
    prefix: Text | None = None
    endpoint_url: Text | None = None
    region: Text | None = None

    @model_validator(mode="after")
    def _where(self) -> Datastore:
        needs = {"azure_blob": ("account_name", "container_name"), "azure_file": ("account_name", "file_share_name"),
                 "azure_data_lake_gen2": ("account_name", "filesystem"), "azure_data_lake_gen1": ("store_name",),
                 "local": ("path",), "s3": ("bucket",)}[self.type]
        for key in needs:
            if not getattr(self, key):
                raise spec_error(f"a datastore of type {self.type} needs '{key}'", key)
        return self
