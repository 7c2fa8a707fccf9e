"""gc of the workspace's own folders: job folders and logs, online deployments' logs, isolated environments.

None of these is referenced by a store row, so removing them needs no transaction; an environment is
first renamed to the ``.tmp-<key>-...`` name its builder treats as a dead build's leftover, under the
key's lock, so a job never sees a half-removed environment.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path

from sqlalchemy import select

from mlyard.store.jobs_schema import TERMINAL, Job
from mlyard.store.lifecycle.gc import DAY, Item, Retention
from mlyard.store.lifecycle.layout import OpenWorkspace
from mlyard.store.resumable import UPLOADS_FOLDER

LOGS = "user_logs"
# The layout of jobs/environments.py (the store may not import the jobs package): a finished
# environment is <key>/ holding the marker (written when built) and LAST_USED (touched at each reuse); builds
# and removals hold .locks/<key>.lock.
ENV_MARKER = "mlyard-env.json"
LAST_USED = ".mlyard-last-used"


def _last_used(env: Path) -> float:
    return max(_mtime(env / ENV_MARKER), _mtime(env / LAST_USED))


def folder_size(path: Path, *, skip: str | None = None) -> tuple[int, int]:
    """(files, bytes) under ``path``, not following links; ``skip`` names a top-level child left out."""
    files = size = 0
    for root, dirs, names in os.walk(path):
        if skip is not None and Path(root) == path and skip in dirs:
            dirs.remove(skip)
        for n in names:
            try:
                size += os.lstat(os.path.join(root, n)).st_size
                files += 1
            except OSError:
                pass
    return files, size


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def job_folder_items(ws: OpenWorkspace, retention: Retention, now: float) -> list[Item]:
    """Failed and canceled jobs' folders (their log kept), old jobs' logs, and folders of jobs the store lost."""
    if not ws.jobs_dir.is_dir():
        return []
    with ws.db.session() as s:
        rows = {n: (st, end) for n, st, end in s.execute(select(Job.name, Job.status, Job.ended_at))}
    items = []
    for folder in sorted(p for p in ws.jobs_dir.iterdir() if p.is_dir()):
        status, ended_ms = rows.get(folder.name, (None, None))
        if folder.name not in rows:
            if now - _mtime(folder) > retention.failed_jobs_days * DAY:
                items.append(_item("job folder", f"{folder.name} (no such job in the store)", folder, None))
            continue
        if status not in TERMINAL or ended_ms is None:
            continue
        age = now - ended_ms / 1000
        if age > retention.logs_days * DAY:
            items.append(_item("old log", f"job {folder.name} ({status}, ended {age / DAY:.0f} days ago)", folder,
                               None))
        elif status in ("Failed", "Canceled") and age > retention.failed_jobs_days * DAY:
            item = _item(f"{status.lower()} job folder", f"{folder.name} (its log kept)", folder, LOGS)
            if item.files:
                items.append(item)
    return items


def _item(kind: str, what: str, folder: Path, keep: str | None) -> Item:
    files, size = folder_size(folder, skip=keep)

    def remove() -> None:
        if keep is None:
            _remove_tree(folder)
            return
        for child in list(folder.iterdir()) if folder.is_dir() else []:
            if child.name != keep:
                _remove_tree(child) if child.is_dir() and not child.is_symlink() else child.unlink(missing_ok=True)

    return Item(kind, what, files, size, remove)


def serving_log_items(ws: OpenWorkspace, retention: Retention, now: float) -> list[Item]:
    """Online deployment workers' logs nobody wrote to within the log retention."""
    if not ws.serving_dir.is_dir():
        return []
    items = []
    for log in sorted(ws.serving_dir.rglob("*.log")):
        if log.is_file() and now - _mtime(log) > retention.logs_days * DAY:
            items.append(Item("old log", str(log.relative_to(ws.settings.state_dir)), 1, log.stat().st_size,
                              partial(log.unlink, missing_ok=True)))
    return items


def partial_upload_items(ws: OpenWorkspace, retention: Retention, now: float) -> list[Item]:
    """Parts of large uploads (``store/resumable.py``) nobody went on with within the upload grace period."""
    folder = ws.settings.state_dir / UPLOADS_FOLDER
    if not folder.is_dir():
        return []
    items = []
    for meta in sorted(folder.glob("*.json")):
        part = meta.with_suffix(".part")
        newest = max(_mtime(meta), _mtime(part) if part.exists() else 0.0)
        if now - newest <= retention.orphan_uploads_days * DAY:
            continue  # an upload that may be resumed any moment
        size = part.stat().st_size if part.exists() else 0
        try:
            what = json.loads(meta.read_text())
            name = f"{what['datastore']}:{what['path']} ({size} of {what['size']} bytes)"
        except (ValueError, KeyError, TypeError):
            name = meta.stem
        items.append(Item("partial upload", name, 1 if part.exists() else 0, size,
                          partial(_remove_partial, part, meta)))
    for left in sorted(folder.glob(".*.json.tmp")):  # a description a crash interrupted
        if now - _mtime(left) > retention.orphan_uploads_days * DAY:
            items.append(Item("partial upload", left.name, 1, left.stat().st_size,
                              partial(left.unlink, missing_ok=True)))
    return items


def _remove_partial(part: Path, meta: Path) -> None:
    part.unlink(missing_ok=True)  # the part first: a part without its description is never resumed
    meta.unlink(missing_ok=True)


def env_items(ws: OpenWorkspace, retention: Retention, now: float) -> list[Item]:
    """Isolated environments unused within the retention, then the least recently used beyond the size cap."""
    root = ws.envs_dir
    if not root.is_dir():
        return []
    items: list[Item] = []
    for left in sorted(root.glob(".tmp-*")):  # builds and removals a crash interrupted
        if now - _mtime(left) > DAY:
            files, size = folder_size(left)
            items.append(Item("environment leftover", left.name, files, size, partial(_remove_tree, left)))
    envs = []
    for env in (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        used = _last_used(env)
        envs.append((used, env, *folder_size(env)))
    kept = 0
    for used, env, files, size in sorted(envs, key=lambda e: e[0], reverse=True):  # most recently used first
        idle_days = (now - used) / DAY
        if idle_days > retention.envs_unused_days:
            why = f"unused for {idle_days:.0f} days"
        elif kept + size > retention.envs_max_gb * 1e9:
            why = f"beyond the {retention.envs_max_gb:g} GB cap, last used {idle_days:.1f} days ago"
        else:
            kept += size
            continue
        items.append(Item("environment", f"{env.name[:12]} ({why})", files, size,
                          _env_remover(root, env.name, used)))
    return items


def _env_remover(root: Path, key: str, seen_used: float) -> Callable[[], None]:
    def remove() -> None:
        env = root / key
        if not env.exists():
            return
        locks = root / ".locks"
        locks.mkdir(exist_ok=True)
        with open(locks / f"{key}.lock", "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # a job is building or checking it right now: it is in use
            try:
                if _last_used(env) > seen_used:
                    return  # used since the plan was made
                gone = root / f".tmp-{key}-gc{secrets.token_hex(4)}"
                os.replace(env, gone)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        _remove_tree(gone)

    return remove
