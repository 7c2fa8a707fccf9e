"""The kinds of file mlyard reads, and how a file says which kind it is.

``KINDS`` is the registry the loader reads: each kind's model, its noun, and the command that
creates it. ``detect_kind`` reads what a file says about itself: its ``$schema`` first (Azure's
``pipelineJob.schema.json``...), then its ``type`` and shape (``trigger`` + ``create_job`` is a
schedule, ``endpoint_name`` a deployment). ``OTHER_KIND_KEYS`` names the top-level keys that
belong to a different kind; the loader refuses them (Azure's SDK does), while other unknown keys
stay warnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlyard.specs.assets import Data, Environment, Model
from mlyard.specs.base import typed_union
from mlyard.specs.components import CommandComponent
from mlyard.specs.endpoints import BatchDeployment, BatchEndpoint, OnlineDeployment, OnlineEndpoint
from mlyard.specs.jobs import CommandJob
from mlyard.specs.monitors import MonitorDefinition
from mlyard.specs.pipelines import PipelineComponent, PipelineJob
from mlyard.specs.resources import Compute, Datastore
from mlyard.specs.schedules import Schedule
from mlyard.specs.sweep import SweepJob
from mlyard.specs.triggers import EventTrigger


@dataclass(frozen=True)
class Kind:
    """One kind of file: its model, a noun for messages, and the command that creates it."""

    name: str
    model: Any
    noun: str
    command: str | None = None
    """The mlyard command that creates it from a file; None where mlyard has none yet."""
    azure: str = ""
    """Azure's command, named when mlyard has none."""
    named: bool = True
    """Whether a name is required (registered resources)."""


def _kind(name: str, model: Any, noun: str, command: str | None = None, *, named: bool = True) -> Kind:
    return Kind(name, model, noun, command, f"az ml {name} create", named)


KINDS: dict[str, Kind] = {k.name: k for k in (
    _kind("data", Data, "data asset", "mlyard data create"),
    _kind("environment", Environment, "environment", "mlyard environment create"),
    _kind("model", Model, "model", "mlyard model create"),
    _kind("component", typed_union({None: CommandComponent, "command": CommandComponent,
                                    "pipeline": PipelineComponent}, what="component"),
          "component", "mlyard component create"),
    _kind("job", typed_union({None: CommandJob, "command": CommandJob, "pipeline": PipelineJob, "sweep": SweepJob},
                             what="job"), "job", "mlyard job create", named=False),
    _kind("online-endpoint", OnlineEndpoint, "online endpoint", "mlyard online-endpoint create"),
    _kind("online-deployment", OnlineDeployment, "online deployment", "mlyard online-deployment create"),
    _kind("batch-endpoint", BatchEndpoint, "batch endpoint", "mlyard batch-endpoint create"),
    _kind("batch-deployment", BatchDeployment, "batch deployment", "mlyard batch-deployment create"),
    _kind("schedule", Schedule, "schedule", "mlyard schedule create"),
    Kind("monitor", MonitorDefinition, "monitor", None, "az ml schedule create", named=False),
    _kind("compute", Compute, "compute", "mlyard compute create"),
    _kind("datastore", Datastore, "datastore"),
    _kind("trigger", EventTrigger, "trigger", "mlyard trigger create"),
)}

NOUNS: dict[str, str] = {
    "CommandJob": "command job", "PipelineJob": "pipeline job", "SweepJob": "sweep job",
    "CommandComponent": "command component", "PipelineComponent": "pipeline component",
    "ModelBatchDeployment": "model batch deployment", "PipelineBatchDeployment": "pipeline batch deployment",
    "MonitorDefinition": "monitor", "EventTrigger": "trigger", "Data": "data asset",
    "OnlineEndpoint": "online endpoint",
    "OnlineDeployment": "online deployment", "BatchEndpoint": "batch endpoint",
}
"""Nouns of the models a kind can produce, by class name (the others are their kind's noun)."""

# $schema file stem (lower case) -> (kinds it may be loaded as, noun)
_SCHEMAS: dict[str, tuple[frozenset[str], str]] = {}


def _schemas(kinds: tuple[str, ...], noun: str, *stems: str) -> None:
    for stem in stems:
        _SCHEMAS[stem.lower()] = (frozenset(kinds), noun)


_schemas(("job",), "command job", "commandJob")
_schemas(("job",), "pipeline job", "pipelineJob")
_schemas(("job",), "sweep job", "sweepJob")
_schemas(("job",), "Spark job", "sparkJob")
_schemas(("job",), "AutoML job", "autoMLJob")
_schemas(("component",), "command component", "commandComponent")
_schemas(("component",), "pipeline component", "pipelineComponent")
_schemas(("component",), "Spark component", "sparkComponent")
_schemas(("data",), "data asset", "data")
_schemas(("model",), "model", "model")
_schemas(("environment",), "environment", "environment")
_schemas(("online-endpoint",), "online endpoint", "managedOnlineEndpoint", "kubernetesOnlineEndpoint")
_schemas(("online-deployment",), "online deployment", "managedOnlineDeployment", "kubernetesOnlineDeployment")
_schemas(("batch-endpoint",), "batch endpoint", "batchEndpoint")
_schemas(("batch-deployment",), "batch deployment", "batchDeployment", "modelBatchDeployment",
         "pipelineComponentBatchDeployment")
_schemas(("schedule", "monitor"), "schedule", "schedule", "monitorSchedule")
_schemas(("compute",), "compute", "amlCompute", "computeInstance", "kubernetesCompute", "vmCompute",
         "virtualMachineCompute", "attachedCompute", "synapseSparkCompute")
_schemas(("datastore",), "datastore", "azureBlob", "azureFile", "azureDataLakeGen1", "azureDataLakeGen2",
         "oneLake")
_schemas(("trigger",), "trigger", "trigger")  # mlyard's own: https://mlyard.dev/schemas/trigger.schema.json
_schemas((), "MLTable file (name it MLTable inside a data folder, and register the folder as type: mltable)",
         "MLTable")
_schemas((), "workspace", "workspace")
_schemas((), "registry", "registry")
_schemas((), "connection", "connection", "workspaceConnection")
_schemas((), "feature store", "featureStore", "featureSet", "featureStoreEntity")
_schemas((), "data import", "dataImport")

# type value -> (kinds, noun), where the value alone tells
_TYPES: dict[str, tuple[frozenset[str], str]] = {
    **{t: (frozenset({"data"}), "data asset") for t in ("uri_file", "uri_folder", "mltable")},
    **{t: (frozenset({"model"}), "model") for t in ("custom_model", "mlflow_model", "triton_model")},
    **{t: (frozenset({"datastore"}), "datastore")
       for t in ("azure_blob", "azure_file", "azure_data_lake_gen1", "azure_data_lake_gen2", "s3")},
    **{t: (frozenset({"compute"}), "compute") for t in ("amlcompute", "computeinstance", "virtualmachine")},
    "sweep": (frozenset({"job"}), "sweep job"),
    "command": (frozenset({"job", "component"}), "command job or component"),
    "pipeline": (frozenset({"job", "component", "batch-deployment"}), "pipeline job or component"),
}

OTHER_KIND_KEYS: dict[str, str] = {
    **dict.fromkeys(("jobs",), "a pipeline job or pipeline component (type: pipeline)"),
    **dict.fromkeys(("trial", "search_space", "sampling_algorithm", "objective", "early_termination"),
                    "a sweep job (type: sweep)"),
    "command": "a command job or command component (type: command)",
    **dict.fromkeys(("endpoint_name", "code_configuration"), "a deployment"),
    **dict.fromkeys(("trigger", "create_job", "import_data"), "a schedule"),
    "create_monitor": "a monitor schedule",
    **dict.fromkeys(("traffic", "mirror_traffic"), "an online endpoint"),
    **dict.fromkeys(("account_name", "container_name", "file_share_name", "credentials"), "a datastore"),
    **dict.fromkeys(("min_instances", "max_instances", "idle_time_before_scale_down"), "a compute"),
    **dict.fromkeys(("conda_file", "image", "build", "inference_config"),
                    "an environment (in a job or component, under environment:)"),
    **dict.fromkeys(("monitoring_target", "monitoring_signals", "alert_notification"), "a monitor"),
}
"""Top-level keys that belong to another kind: refused where the file's own kind has no such field."""


@dataclass(frozen=True)
class Detected:
    """What a file says it is: the kinds it may be loaded as, a noun, and the key that says so."""

    kinds: frozenset[str]
    noun: str
    key: str
    evidence: str

    @property
    def default(self) -> str | None:
        """The kind to read the file as when the command does not say: the only one, or a schedule."""
        if len(self.kinds) == 1:
            return next(iter(self.kinds))
        return "schedule" if "schedule" in self.kinds else None


def _schema_stem(value: str) -> str:
    tail = value.strip().rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".schema.json", ".json"):
        if tail.lower().endswith(suffix):
            return tail[: -len(suffix)]
    return tail


def detect_kind(data: dict[str, Any]) -> Detected | None:
    """What ``data`` says about its kind, or None when it says nothing mlyard recognises."""
    schema = data.get("$schema")
    if isinstance(schema, str):
        stem = _schema_stem(schema)
        found = _SCHEMAS.get(stem.lower())
        if found is not None:
            return Detected(found[0], found[1], "$schema", f"{stem}.schema.json" if "schema" in schema else stem)
    if isinstance(data.get("trigger"), dict):
        for action in ("create_job", "create_monitor", "import_data"):
            if action in data:
                readers = ("schedule", "monitor") if action == "create_monitor" else ("schedule",)
                return Detected(frozenset(readers), "schedule", action, f"it has trigger and {action}")
    if isinstance(data.get("event"), dict) and "create_job" in data:
        return Detected(frozenset({"trigger"}), "trigger", "event", "it has event and create_job")
    kind_type = data.get("type")
    if "endpoint_name" in data and kind_type not in ("command", "sweep"):
        return Detected(frozenset({"online-deployment", "batch-deployment"}), "deployment", "endpoint_name",
                        "it has endpoint_name")
    if isinstance(kind_type, str) and kind_type.lower() in _TYPES:
        kinds, noun = _TYPES[kind_type.lower()]
        return Detected(kinds, noun, "type", f"type: {kind_type}")
    if kind_type is None and isinstance(data.get("trial"), dict | str) and "search_space" in data:
        return Detected(frozenset({"job"}), "sweep job", "trial", "it has trial and search_space")
    return None


def a(noun: str) -> str:
    """``noun`` with its indefinite article."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def creating_command(kind: str, file: str, data: dict[str, Any]) -> str:
    """What to run to create ``data``, a file of ``kind``: mlyard's command, or a word on what exists."""
    info = KINDS[kind]
    job = data.get("create_job")
    job = job.get("job") if isinstance(job, dict) else job
    once = (f"; to run its job once now, use 'mlyard job create -f {job}' (from the schedule's folder)"
            if kind == "schedule" and isinstance(job, str) and not job.startswith("azureml:") else "")
    if info.command is not None:
        return f"use '{info.command} -f {file}'{once}"
    return (f"mlyard has no command that creates {a(info.noun)} yet ({info.azure} in Azure); check the file with "
            f"'mlyard validate -f {file}'{once}")
