"""``workspace gc``: what goes, what never goes, and a gc cut short between its rows and its files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from sqlalchemy import delete, select

from mlyard.store.lifecycle.check import check_workspace
from mlyard.store.lifecycle.gc import DAY, Retention, plan_gc, run_gc
from mlyard.store.lifecycle.layout import open_workspace
from mlyard.store.registry_schema import ModelVersion
from mlyard.store.schema import Asset, Blob
from mlyard.store.tracking_schema import Metric, Run
from tests.store.lifecycle_helpers import DS, add_asset, add_job, add_run, artifacts, make_workspace, put_upload

NOW = time.time()
LATER = NOW + 3 * DAY  # past the one-day grace of uploads


def _kinds(plan: object) -> dict[str, int]:
    return {k: v["bytes"] for k, v in plan.totals().items()}  # type: ignore[attr-defined]


def test_orphan_uploads_go_and_referenced_ones_stay(tmp_path: Path, database_url: str) -> None:
    with open_workspace(make_workspace(tmp_path, database_url)) as ws:
        kept_files = {"a.csv": b"1" * 100}
        asset_tree, _ = put_upload(ws, kept_files)
        add_asset(ws, asset_tree, "d", kept_files)
        code_tree, _ = put_upload(ws, {"train.py": b"print(1)"}, basename="src")
        add_job(ws, "j1", "Completed", spec={"code": f"azureml://datastores/{DS}/paths/LocalUpload/{code_tree}/src"})
        orphan, orphan_bytes = put_upload(ws, {"big.bin": b"0" * 5000, "more.bin": b"1" * 300}, basename="x")

        assert plan_gc(ws, now=NOW).items == []  # within the grace period, an upload may still get its asset
        plan = plan_gc(ws, now=LATER)
        assert [(i.kind, i.what, i.files, i.bytes) for i in plan.items] == \
            [("orphan upload", f"{DS}:LocalUpload/{orphan}", 2, orphan_bytes)]
        run_gc(plan)
        assert not (artifacts(ws) / "LocalUpload" / orphan).exists()
        with ws.db.session() as s:
            paths = set(s.scalars(select(Blob.path)))
        assert not any(orphan in p for p in paths) and any(asset_tree in p for p in paths)
        assert any(code_tree in p for p in paths)
        assert check_workspace(ws).ok
        assert plan_gc(ws, now=LATER).items == []  # idempotent: nothing left to do


def test_an_upload_referenced_after_the_plan_is_kept(tmp_path: Path, database_url: str) -> None:
    with open_workspace(make_workspace(tmp_path, database_url)) as ws:
        files = {"a.csv": b"abc"}
        tree, _ = put_upload(ws, files)
        plan = plan_gc(ws, now=LATER)
        assert len(plan.items) == 1
        add_asset(ws, tree, "late", files)  # registered between the plan and the removal
        run_gc(plan)
        assert (artifacts(ws) / "LocalUpload" / tree / "data" / "a.csv").exists()
        assert check_workspace(ws).ok


def test_gc_cut_short_between_rows_and_files_leaves_a_clean_workspace_and_the_next_gc_finishes(
        tmp_path: Path, database_url: str) -> None:
    with open_workspace(make_workspace(tmp_path, database_url)) as ws:
        tree, size = put_upload(ws, {"a.bin": b"a" * 1000})
        folder = add_run(ws, "r1", deleted_days_ago=60, artifact=b"m" * 700)
        # what a gc killed after its transactions and before its file removals leaves:
        with ws.db.session() as s:
            s.execute(delete(Blob).where(Blob.path.like(f"LocalUpload/{tree}/%")))
            s.execute(delete(Run).where(Run.id == "r1"))
        assert check_workspace(ws).ok
        plan = plan_gc(ws, now=LATER)
        assert sorted((i.kind, i.bytes) for i in plan.items) == [("orphan artifacts", 700), ("orphan upload", size)]
        run_gc(plan)
        assert not folder.exists() and not (artifacts(ws) / "LocalUpload" / tree).exists()
        assert check_workspace(ws).ok and plan_gc(ws, now=LATER).items == []


def test_deleted_runs_go_with_their_metrics_unless_something_uses_them(tmp_path: Path, database_url: str) -> None:
    with open_workspace(make_workspace(tmp_path, database_url)) as ws:
        gone = add_run(ws, "gone", deleted_days_ago=40, artifact=b"g" * 123)
        recent = add_run(ws, "recent", deleted_days_ago=1, artifact=b"r")
        add_run(ws, "active", artifact=b"a")
        add_run(ws, "registered", deleted_days_ago=40, artifact=b"m" * 50)
        add_run(ws, "jobrun", deleted_days_ago=40, artifact=b"j")
        add_job(ws, "jobrun", "Completed")
        with ws.db.session() as s:
            s.add(Metric(run_id="gone", key="loss", value=1.0, timestamp=1, step=0))
            s.add(Asset(kind="model", name="m", version="1", spec={}, content_hash="x"))
        with ws.db.session() as s:
            asset_id = s.scalar(select(Asset.id).where(Asset.name == "m"))
            s.add(ModelVersion(asset_id=asset_id, run_id="registered", last_updated_time=1))
        plan = plan_gc(ws, now=NOW)
        assert [(i.kind, i.what, i.bytes) for i in plan.items] == [("deleted run", "run gone (experiment 0)", 123)]
        run_gc(plan)
        with ws.db.session() as s:
            assert sorted(s.scalars(select(Run.id))) == ["active", "jobrun", "recent", "registered"]
            assert s.scalar(select(Metric.id).where(Metric.run_id == "gone")) is None
        assert not gone.parent.exists() and recent.exists()


def test_failed_job_folders_lose_all_but_their_log_and_old_logs_go(tmp_path: Path, database_url: str) -> None:
    with open_workspace(make_workspace(tmp_path, database_url)) as ws:
        for name, status, days in (("failed", "Failed", 20), ("canceled", "Canceled", 20), ("young", "Failed", 1),
                                   ("done", "Completed", 20), ("ancient", "Completed", 100)):
            add_job(ws, name, status, ended_days_ago=days)
            (ws.jobs_dir / name / "user_logs").mkdir(parents=True)
            (ws.jobs_dir / name / "user_logs" / "std_log.txt").write_text("log\n")
            (ws.jobs_dir / name / "code").mkdir()
            (ws.jobs_dir / name / "code" / "train.py").write_bytes(b"p" * 40)
        add_job(ws, "running", "Running")
        (ws.jobs_dir / "running").mkdir()
        plan = plan_gc(ws, now=NOW)
        assert sorted((i.kind, i.what.split(" (")[0], i.bytes) for i in plan.items) == [
            ("canceled job folder", "canceled", 40), ("failed job folder", "failed", 40),
            ("old log", "job ancient", 44)]
        run_gc(plan)
        assert (ws.jobs_dir / "failed" / "user_logs" / "std_log.txt").exists()
        assert not (ws.jobs_dir / "failed" / "code").exists() and not (ws.jobs_dir / "ancient").exists()
        assert (ws.jobs_dir / "young" / "code").exists() and (ws.jobs_dir / "running").exists()
        assert plan_gc(ws, now=NOW).items == []


def _env(root: Path, key: str, size: int, used_days_ago: float) -> None:
    (root / key / "bin").mkdir(parents=True)
    (root / key / "bin" / "python").write_bytes(b"e" * size)
    marker = root / key / "mlyard-env.json"
    marker.write_text(json.dumps({"notes": []}))
    os.utime(marker, (NOW - used_days_ago * DAY,) * 2)


def test_environments_unused_or_beyond_the_cap_go_least_recently_used_first(tmp_path: Path, database_url: str) -> None:
    with open_workspace(make_workspace(tmp_path, database_url)) as ws:
        for key, size, days in (("a" * 64, 1000, 40), ("b" * 64, 3000, 1), ("c" * 64, 3000, 2), ("d" * 64, 3000, 0)):
            _env(ws.envs_dir, key, size, days)
        cap = Retention(envs_max_gb=7000 / 1e9)  # room for two of the three recent ones
        plan = plan_gc(ws, cap, now=NOW)
        marker_size = len(json.dumps({"notes": []}))
        assert sorted((i.what[:1], i.bytes) for i in plan.items) == [("a", 1000 + marker_size),
                                                                     ("c", 3000 + marker_size)]
        run_gc(plan)
        assert sorted(p.name[:1] for p in ws.envs_dir.iterdir() if p.name != ".locks") == ["b", "d"]
