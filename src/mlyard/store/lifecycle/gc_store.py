"""gc of what the store records: uploads nothing references, runs and logged models deleted in MLflow's sense.

Rows go first, in a transaction that checks again that nothing references them; files follow. Files no
row names any more (left by a gc killed half-way, or by a crashed upload) are found as orphans by the
next gc, once older than the upload grace period, so an upload in flight is never taken.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import partial

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mlyard.store.datastores import FsspecDatastore
from mlyard.store.jobs_schema import Job
from mlyard.store.lifecycle.gc import DAY, Item, Retention
from mlyard.store.lifecycle.layout import RUN_ARTIFACTS_FOLDER, UPLOAD_FOLDER, OpenWorkspace
from mlyard.store.lifecycle.references import artifact_folder, referenced_uploads
from mlyard.store.registry_schema import LoggedModel, ModelVersion
from mlyard.store.schema import Blob
from mlyard.store.tracking_schema import Experiment, Run


def _files(store: FsspecDatastore, prefix: str) -> tuple[int, int, float]:
    """(files, bytes, newest mtime) under ``prefix``."""
    files = size = 0
    newest = 0.0
    for f in store.list_files(prefix):
        files += 1
        size += f.size
        newest = max(newest, f.mtime or 0.0)
    return files, size, newest


def orphan_upload_items(ws: OpenWorkspace, retention: Retention, now: float) -> list[Item]:
    """``LocalUpload/<tree>`` folders that no asset, job, run, deployment or schedule names."""
    grace = retention.orphan_uploads_days * DAY
    items = []
    with ws.db.session() as s:
        referenced = referenced_uploads(s)
        recorded: dict[tuple[str, str], float] = {}
        for ds, path, created in s.execute(select(Blob.datastore, Blob.path, Blob.created_at)
                                           .where(Blob.path.like(f"{UPLOAD_FOLDER}/%"))):
            key = (ds, path.split("/")[1])
            recorded[key] = max(recorded.get(key, 0.0), created.timestamp() if created else 0.0)
    for name, store in ws.datastores().items():
        remove_batch = partial(_remove_uploads, ws, store)
        trees = {e.name for e in store.list_dir(UPLOAD_FOLDER) if e.is_dir}
        trees |= {t for d, t in recorded if d == name}
        for tree in sorted(trees):
            if tree in referenced:
                continue
            prefix = f"{UPLOAD_FOLDER}/{tree}"
            files, size, newest = _files(store, prefix)
            if now - max(newest, recorded.get((name, tree), 0.0)) <= grace:
                continue  # an upload whose asset, job or run may be created any moment
            what = f"{name}:{prefix}" + ("" if (name, tree) in recorded else " (not recorded)")
            item = Item("orphan upload", what, files, size, lambda: None, remove_batch, tree)
            item.remove = partial(remove_batch, [item])
            items.append(item)
    return items


def _remove_uploads(ws: OpenWorkspace, store: FsspecDatastore, items: list[Item]) -> None:
    """Forget the upload folders of ``items`` in one transaction that scans for references again, then delete them."""
    def forget(s: Session) -> list[str]:
        referenced = referenced_uploads(s)  # one scan for the whole batch, in the deleting transaction
        gone = [i.key for i in items if i.key not in referenced]
        for tree in gone:
            s.execute(delete(Blob).where(Blob.datastore == store.name, Blob.path.like(f"{UPLOAD_FOLDER}/{tree}/%")))
        return gone

    for tree in ws.db.run_in_transaction(forget):
        _delete(store, f"{UPLOAD_FOLDER}/{tree}")


def _delete(store: FsspecDatastore, path: str) -> None:
    local = store.local_path(path)
    if local is None:
        store.delete(path)
    else:
        shutil.rmtree(local, ignore_errors=True)


def _runs_in_use(s: Session) -> set[str]:
    used = set(s.scalars(select(Job.name)))
    used |= {r for r in s.scalars(select(ModelVersion.run_id)) if r}
    used |= {r for r in s.scalars(select(LoggedModel.source_run_id)
                                  .where(LoggedModel.lifecycle_stage != "deleted")) if r}
    return used


def _run_in_use(run_id: str, s: Session) -> bool:
    return run_id in _runs_in_use(s)


def _model_in_use(model_id: str, s: Session) -> bool:
    return s.scalar(select(ModelVersion.asset_id).where(ModelVersion.model_id == model_id).limit(1)) is not None


def deleted_run_items(ws: OpenWorkspace, retention: Retention, now: float) -> list[Item]:
    """Runs and logged models deleted in MLflow's sense (what ``mlflow gc`` removes), and artifact folders of none."""
    cutoff_ms = (now - retention.deleted_runs_days * DAY) * 1000
    store = ws.default_datastore()
    items = []
    with ws.db.session() as s:
        deleted_experiments = set(s.scalars(select(Experiment.id).where(Experiment.lifecycle_stage == "deleted")))
        in_use = _runs_in_use(s)
        runs = s.execute(select(Run.id, Run.experiment_id, Run.lifecycle_stage, Run.deleted_time, Run.start_time,
                                Run.artifact_uri)).all()
        models_in_use = {m for m in s.scalars(select(ModelVersion.model_id)) if m}
        models = s.execute(select(LoggedModel.id, LoggedModel.lifecycle_stage, LoggedModel.last_updated_time,
                                  LoggedModel.artifact_location)).all()
    known_folders = set()
    for run_id, exp, stage, deleted_ms, start_ms, uri in runs:
        folder = artifact_folder(uri)
        if folder:
            known_folders.add(folder)
        gone = stage == "deleted" or exp in deleted_experiments
        if gone and run_id not in in_use and (deleted_ms or start_ms or 0) < cutoff_ms:
            files, size, _ = _files(store, folder) if folder else (0, 0, 0.0)
            items.append(Item("deleted run", f"run {run_id} (experiment {exp})", files, size,
                              _row_remover(ws, store, delete(Run).where(Run.id == run_id), folder,
                                           partial(_run_in_use, run_id))))
    for model_id, stage, updated_ms, location in models:
        folder = artifact_folder(location)
        if folder:
            known_folders.add(folder)
        if stage == "deleted" and model_id not in models_in_use and updated_ms < cutoff_ms:
            files, size, _ = _files(store, folder) if folder else (0, 0, 0.0)
            items.append(Item("deleted logged model", model_id, files, size,
                              _row_remover(ws, store, delete(LoggedModel).where(LoggedModel.id == model_id), folder,
                                           partial(_model_in_use, model_id))))
    items += _orphan_artifact_items(store, known_folders, retention, now)
    return items


def _row_remover(ws: OpenWorkspace, store: FsspecDatastore, statement: object, folder: str | None,
                 in_use: Callable[[Session], bool]) -> Callable[[], None]:
    def remove() -> None:
        def forget(s: Session) -> bool:
            if in_use(s):
                return False
            s.execute(statement)  # type: ignore[call-overload]
            return True

        if ws.db.run_in_transaction(forget) and folder:
            _delete(store, folder)

    return remove


def _orphan_artifact_items(store: FsspecDatastore, known: set[str], retention: Retention, now: float) -> list[Item]:
    """``mlflow/<experiment>/<run>`` and ``mlflow/<experiment>/models/<id>`` folders no run or model names."""
    items = []
    for exp in (e for e in store.list_dir(RUN_ARTIFACTS_FOLDER) if e.is_dir):
        base = f"{RUN_ARTIFACTS_FOLDER}/{exp.name}"
        folders = [f"{base}/{e.name}" for e in store.list_dir(base) if e.is_dir and e.name != "models"]
        folders += [f"{base}/models/{e.name}" for e in store.list_dir(f"{base}/models") if e.is_dir]
        for folder in folders:
            if folder in known:
                continue
            files, size, newest = _files(store, folder)
            if now - newest > retention.orphan_uploads_days * DAY:
                items.append(Item("orphan artifacts", folder, files, size, partial(_delete, store, folder)))
    return items
