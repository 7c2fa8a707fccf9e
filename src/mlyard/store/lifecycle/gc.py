"""``mlyard workspace gc``: what may go, and removing it so that a kill at any moment leaves the workspace whole.

A plan lists items; each item's ``remove`` first deletes the store's rows (in one transaction that
checks again that nothing references them), and only then the files. A gc killed between the two
leaves files no row names: ``workspace check`` stays clean (it checks what the store references), and
the next gc finds those files as orphans and removes them. Every ``remove`` is idempotent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlyard.core.settings import ServerSettings
from mlyard.store.lifecycle.layout import OpenWorkspace

DAY = 86400.0
BATCH = 200  # items removed in one transaction, where their kind allows
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Retention:
    """How long things are kept (days) and the size cap of isolated environments (GB); from mlyard.yaml."""

    failed_jobs_days: float = 14
    deleted_runs_days: float = 30
    envs_unused_days: float = 30
    envs_max_gb: float = 20
    orphan_uploads_days: float = 1
    logs_days: float = 90

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> Retention:
        return cls(settings.gc_failed_jobs_days, settings.gc_deleted_runs_days, settings.gc_envs_unused_days,
                   settings.gc_envs_max_gb, settings.gc_orphan_uploads_days, settings.gc_logs_days)


@dataclass
class Item:
    """One thing gc would remove: what, how many files and bytes, and how."""

    kind: str
    what: str
    files: int
    bytes: int
    remove: Callable[[], None] = field(repr=False)
    # removes several items of one kind in one transaction (set where one check serves many items)
    remove_batch: Callable[[list[Item]], None] | None = field(default=None, repr=False, compare=False)
    key: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "what": self.what, "files": self.files, "bytes": self.bytes}


@dataclass
class GcPlan:
    items: list[Item] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(i.bytes for i in self.items)

    @property
    def files(self) -> int:
        return sum(i.files for i in self.items)

    def totals(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for i in self.items:
            t = out.setdefault(i.kind, {"items": 0, "files": 0, "bytes": 0})
            t["items"] += 1
            t["files"] += i.files
            t["bytes"] += i.bytes
        return out


def _ignore(_line: str) -> None:
    pass


def plan_gc(ws: OpenWorkspace, retention: Retention | None = None, *, now: float | None = None) -> GcPlan:
    """Everything gc would remove now, without removing anything."""
    from mlyard.store.lifecycle.gc_folders import (
        env_items,
        job_folder_items,
        partial_upload_items,
        serving_log_items,
    )
    from mlyard.store.lifecycle.gc_store import deleted_run_items, orphan_upload_items

    retention = retention or Retention.from_settings(ws.settings)
    now = time.time() if now is None else now
    plan = GcPlan()
    for collect in (job_folder_items, serving_log_items, env_items, partial_upload_items, orphan_upload_items,
                    deleted_run_items):
        plan.items.extend(collect(ws, retention, now))
    return plan


def run_gc(plan: GcPlan, progress: Progress = _ignore) -> GcPlan:
    """Remove every item of ``plan`` in turn; returns the plan of what was removed."""
    done = GcPlan()
    pending = list(plan.items)
    while pending:
        item = pending[0]
        if item.remove_batch is None:
            chunk = [pending.pop(0)]
            item.remove()
        else:
            chunk = []
            while pending and pending[0].remove_batch is item.remove_batch and len(chunk) < BATCH:
                chunk.append(pending.pop(0))
            item.remove_batch(chunk)
        for removed in chunk:
            done.items.append(removed)
            progress(f"removed {removed.kind}: {removed.what} ({removed.files} file(s), {removed.bytes} bytes)")
    return done
