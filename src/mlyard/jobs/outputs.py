"""Finishing a step: its outputs into the datastore, named ones registered, its files kept as run artifacts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlyard.assets.service import AssetService, FileEntry
from mlyard.core.errors import MlyardError
from mlyard.jobs.data import MODEL_TYPES, JobData
from mlyard.jobs.records import LOG_FILE, JobRecords
from mlyard.jobs.resolve import PipelineContext
from mlyard.specs.references import parse_datastore_uri
from mlyard.store.blobs import DatastoreRegistry
from mlyard.store.datastores import datastore_uri
from mlyard.store.jobs_schema import Job
from mlyard.tracking.artifacts import artifact_path


class StepFailed(MlyardError):
    """A step could not be prepared or finalised; the message is the reason shown on the job."""

    code = "step_failed"
    status_code = 500


class StepOutputs(JobRecords):
    """The finishing part of the runner (mixed into ``JobRunner``); it records through ``JobRecords``."""

    _assets: AssetService
    _data: JobData
    _datastores: DatastoreRegistry

    def _finalise_outputs(self, row: Job, outputs: dict[str, Any], jobdir: Path,
                          ctx: PipelineContext | None) -> dict[str, Any]:
        records: dict[str, Any] = {}
        for n, plan in outputs.items():
            local = jobdir / "outputs" / n
            source = local / plan["filename"] if plan["is_file"] else local
            if plan["is_file"] and not source.exists():
                raise StepFailed(f"output '{n}' is a uri_file, but the command wrote nothing at {source}")
            tree, files = self._data.upload(source, plan["datastore"], plan["path"], is_file=plan["is_file"])
            record = {"type": plan["type"], "uri": datastore_uri(plan["datastore"], plan["path"]), "tree": tree,
                      "files": len(files), "bytes": sum(f.size for f in files)}
            if plan["register"] and files:
                record["asset"] = self._register(plan["register"], plan["type"], record["uri"], files, row.created_by)
            records[n] = record
            if ctx is not None and plan["parent_output"]:
                ctx.pipeline_outputs[plan["parent_output"]] = record
        return records

    def _register(self, register: dict[str, Any], type_: str, uri: str, files: Sequence[Any], actor: str) -> str:
        kind = "model" if type_ in MODEL_TYPES else "data"
        spec = {"name": register["name"], "type": type_, "path": uri,
                **{k: register[k] for k in ("version", "description") if register.get(k) is not None}}
        entries = [FileEntry(f.path, f.sha256, f.size) for f in files]
        asset, _ = self._assets.create(kind, spec, entries, actor)  # type: ignore[arg-type]
        return f"{asset.name}:{asset.version}"

    def _register_pipeline_outputs(self, top: Job, outputs: dict[str, Any], actor: str) -> None:
        for z, spec in (top.spec.get("outputs") or {}).items():
            record = outputs.get(z)
            if not spec or not spec.get("name") or record is None or record.get("asset"):
                continue
            ds, rel = parse_datastore_uri(record["uri"])
            store = self._datastores.get(ds)
            base = rel.rstrip("/").rsplit("/", 1)[-1]
            files = []
            with self._db.session() as s:
                from mlyard.store.schema import Blob

                for f in store.list_files(rel):
                    blob = s.get(Blob, (ds, f.path))
                    if blob is not None:
                        inner = f.path[len(rel.rstrip('/')) + 1:] if f.path != rel else ""
                        files.append(FileEntry(f"{base}/{inner}" if inner else base, blob.sha256, blob.size))
            try:
                record["asset"] = self._register(spec, record["type"], record["uri"], files, actor)
            except MlyardError as exc:
                self._note(top.name, f"output {z} was not registered: {exc.message}")
        self._set_outputs(top.name, outputs)

    def _collect_artifacts(self, row: Job, wd: Path) -> None:
        """``./outputs`` and ``./logs`` of the working folder, and the job's log, become run artifacts."""
        try:
            run = self._runs.get(row.name).row
            root = artifact_path(run.artifact_uri)
        except MlyardError:
            return
        store = self._datastores.get(self._datastores.default_name())
        pairs = [(self.log_path(row.name), LOG_FILE)]
        for folder in ("outputs", "logs"):
            base = wd / folder
            if base.is_dir():
                pairs += [(p, f"{folder}/{p.relative_to(base).as_posix()}") for p in sorted(base.rglob("*"))
                          if p.is_file()]
        for local, rel in pairs:
            if local.exists():
                try:
                    store.put_file(local, f"{root}/{rel}")
                except MlyardError as exc:
                    self._log(row.name, f"could not keep {rel} as a run artifact: {exc.message}")
