"""``mlyard workspace check``: every stored hash and every reference, and what is missing or corrupt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from mlyard.core.hashing import sha256_stream
from mlyard.store.batch_schema import BatchDeploymentRow
from mlyard.store.datastores import FsspecDatastore
from mlyard.store.lifecycle.layout import UPLOAD_FOLDER, OpenWorkspace
from mlyard.store.lifecycle.references import asset_file_refs, referenced_uploads
from mlyard.store.registry_schema import ModelVersion
from mlyard.store.schema import Asset, Blob
from mlyard.store.serving_schema import OnlineDeploymentRow
from mlyard.store.tracking_schema import Run

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Problem:
    """One thing that is wrong: ``kind`` is missing, corrupt or database."""

    kind: str
    where: str
    detail: str

    def line(self) -> str:
        return f"{self.kind}: {self.where}: {self.detail}"


@dataclass
class CheckReport:
    checked: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked,
                "problems": [{"kind": p.kind, "where": p.where, "detail": p.detail} for p in self.problems],
                "notes": self.notes}


def _ignore(_line: str) -> None:
    pass


def check_workspace(ws: OpenWorkspace, *, verify_hashes: bool = True, progress: Progress = _ignore) -> CheckReport:
    """Check the store's integrity, every recorded file's size and sha256, and every reference to a file."""
    report = CheckReport()
    stores = ws.datastores()
    _check_database(ws, report)
    with ws.db.session() as s:
        blobs = {(b.datastore, b.path): (b.sha256, b.size) for b in s.scalars(select(Blob))}
        progress(f"checking {len(blobs)} recorded file(s)")
        _check_blobs(blobs, stores, verify_hashes, report)
        _check_asset_files(s, blobs, report)
        _check_uploads(s, blobs, report)
        _check_models_in_use(s, report)
    return report


def _check_database(ws: OpenWorkspace, report: CheckReport) -> None:
    if not ws.db.is_sqlite:
        report.checked["database"] = 1
        return
    with ws.db.engine.connect() as conn:
        result = [r[0] for r in conn.execute(text("PRAGMA quick_check"))]
        if result != ["ok"]:
            report.problems.append(Problem("database", "mlyard.db", "; ".join(map(str, result[:5]))))
        for table, rowid, parent, _fk in conn.execute(text("PRAGMA foreign_key_check")):
            report.problems.append(Problem("database", f"{table} row {rowid}", f"references a missing {parent} row"))
    report.checked["database"] = 1


def _check_blobs(blobs: dict[tuple[str, str], tuple[str, int]], stores: dict[str, FsspecDatastore],
                 verify_hashes: bool, report: CheckReport) -> None:
    for (datastore, path), (sha, size) in sorted(blobs.items()):
        where = f"{datastore}:{path}"
        store = stores.get(datastore)
        if store is None:
            report.problems.append(Problem("missing", where, f"datastore {datastore!r} is not in the store"))
            continue
        have = store.size(path)
        if have is None:
            report.problems.append(Problem("missing", where, f"recorded ({size} bytes) but not on disk"))
            continue
        if have != size:
            report.problems.append(Problem("corrupt", where, f"{have} bytes on disk, {size} recorded"))
            continue
        if verify_hashes:
            with store.open_read(path) as stream:
                got = sha256_stream(stream)[0]
            if got != sha:
                report.problems.append(Problem("corrupt", where,
                                               f"sha256 {got[:12]}... on disk, {sha[:12]}... recorded"))
    report.checked["files"] = len(blobs)


def _check_asset_files(s: Session, blobs: dict[tuple[str, str], tuple[str, int]], report: CheckReport) -> None:
    refs = asset_file_refs(s)
    for ref in refs:
        got = blobs.get((ref.datastore, ref.path))
        if got is None:
            report.problems.append(Problem("missing", ref.asset,
                                           f"its file {ref.datastore}:{ref.path} is not recorded"))
        elif got != (ref.sha256, ref.size):
            report.problems.append(Problem("corrupt", ref.asset, f"its file {ref.datastore}:{ref.path} was recorded "
                                           "with another sha256 or size"))
    report.checked["asset files"] = len(refs)


def _check_uploads(s: Session, blobs: dict[tuple[str, str], tuple[str, int]], report: CheckReport) -> None:
    held = {path.split("/")[1] for _ds, path in blobs if path.startswith(f"{UPLOAD_FOLDER}/") and path.count("/") >= 2}
    named = referenced_uploads(s)
    for tree in sorted(named - held):
        report.problems.append(Problem("missing", f"{UPLOAD_FOLDER}/{tree}", "named by the store (an asset, job, "
                                       "deployment or schedule) but no file of it is recorded"))
    report.checked["upload folders"] = len(named)


def _check_models_in_use(s: Session, report: CheckReport) -> None:
    models = {f"{n}:{v}" for n, v in s.execute(select(Asset.name, Asset.version).where(Asset.kind == "model"))}
    used = [(f"online deployment {e}/{d}", m) for e, d, m in s.execute(
        select(OnlineDeploymentRow.endpoint, OnlineDeploymentRow.name, OnlineDeploymentRow.model))]
    used += [(f"batch deployment {e}/{d}", m) for e, d, m in s.execute(
        select(BatchDeploymentRow.endpoint, BatchDeploymentRow.name, BatchDeploymentRow.model))]
    for where, model in used:
        if model and model not in models:
            report.problems.append(Problem("missing", where, f"serves model {model}, which is not in the store"))
    runs = set(s.scalars(select(Run.id)))
    for run_id in s.scalars(select(ModelVersion.run_id).where(ModelVersion.run_id.is_not(None))):
        if run_id not in runs:
            report.notes.append(f"a model version names run {run_id}, which this store does not hold")
    report.checked["deployments"] = len(used)
