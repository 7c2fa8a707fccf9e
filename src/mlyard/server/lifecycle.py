"""The workspace lifecycle commands' entry points (``mlyard workspace check|gc|backup|restore|migrate``),
and the server's optional background gc.

Each opens the workspace folder and its store directly; the work is in ``mlyard.store.lifecycle``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import yaml

from mlyard.core.settings import WORKSPACE_FILE, ServerSettings, read_yaml_mapping
from mlyard.store.lifecycle.backup import BackupResult, backup_workspace, restore_workspace
from mlyard.store.lifecycle.check import CheckReport, check_workspace
from mlyard.store.lifecycle.copy import CopyReport, migrate_to_postgres
from mlyard.store.lifecycle.gc import GcPlan, plan_gc, run_gc
from mlyard.store.lifecycle.layout import open_workspace
from mlyard.store.lifecycle.move_files import MoveReport, move_default_datastore
from mlyard.store.migrate import current_revision, head_revision, upgrade

Progress = Callable[[str], None]
log = logging.getLogger("mlyard.server.lifecycle")


def _ignore(_line: str) -> None:
    pass


def check(path: Path, *, verify_hashes: bool = True, progress: Progress = _ignore) -> CheckReport:
    with open_workspace(path) as ws:
        upgrade(ws.db.engine)
        return check_workspace(ws, verify_hashes=verify_hashes, progress=progress)


def gc(path: Path, *, remove: bool, progress: Progress = _ignore) -> GcPlan:
    """What gc would remove (``remove`` False), or remove it and return what was removed."""
    with open_workspace(path) as ws:
        upgrade(ws.db.engine)
        plan = plan_gc(ws)
        return run_gc(plan, progress) if remove else plan


def backup(path: Path, dest: Path, *, progress: Progress = _ignore) -> BackupResult:
    with open_workspace(path) as ws:
        upgrade(ws.db.engine)
        return backup_workspace(ws, dest, progress)


def restore(src: Path, target: Path, database_url: str | None, *, progress: Progress = _ignore) -> CheckReport:
    """Restore ``src`` into ``target``, then check the restored workspace."""
    restore_workspace(src, target, database_url, progress)
    return check(target, progress=progress)


def migrate(path: Path, database_url: str, *, progress: Progress = _ignore) -> CopyReport:
    """Copy the store to PostgreSQL, verify it, then point ``mlyard.yaml`` at it."""
    with open_workspace(path) as ws:
        upgrade(ws.db.engine)
        report = migrate_to_postgres(ws, database_url, progress)
        config_file = ws.path / WORKSPACE_FILE
    config = read_yaml_mapping(config_file)
    config["database_url"] = database_url
    tmp = config_file.with_name(f".{config_file.name}.tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    os.replace(tmp, config_file)
    return report


def move_files(path: Path, datastore: str, *, progress: Progress = _ignore) -> MoveReport:
    """Move workspaceblobstore's files into the object-storage datastore ``datastore`` and switch to it."""
    with open_workspace(path) as ws:
        upgrade(ws.db.engine)
        return move_default_datastore(ws, datastore, progress)


class BackgroundGc:
    """Runs gc every ``gc_interval_hours`` inside ``mlyard server`` (off when the setting is 0)."""

    def __init__(self, settings: ServerSettings) -> None:
        self._settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._settings.gc_interval_hours <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="mlyard-gc", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._settings.gc_interval_hours * 3600):
            try:
                with open_workspace(self._settings.workspace_path) as ws:
                    if current_revision(ws.db.engine) != head_revision():
                        continue  # the server upgrades the store at start-up; never race it
                    done = run_gc(plan_gc(ws))
                log.info("gc removed %d file(s), %d bytes", done.files, done.bytes)
            except Exception:  # a failed round is logged and tried again next time
                log.exception("gc failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)  # a round in progress finishes on its own (daemon thread)
