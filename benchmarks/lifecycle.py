"""Workspace lifecycle: backup and gc throughput (files/s, MB/s) against ``sqlite3 .backup`` + ``cp -a`` and ``rm -rf``.

    .venv/bin/python benchmarks/lifecycle.py --quick      # a check: 1 round, 300 files
    .venv/bin/python benchmarks/lifecycle.py              # 5 rounds, 3,000 files, ~250 MB (make bench)

One workspace, made in this process as the server makes it: ``--files`` files in upload folders of 10 files
each (nine of 16 KB and one of ~0.8 MB per folder), every one recorded in the store with its sha256, and a
store holding 200,000 metric points of 20 runs.

* **Backup**: ``backup_workspace`` (SQLite's online backup API, then every datastore file read once, hashed as
  it is copied, checked against the sha256 its record holds, and the manifest) against the same workspace
  copied by ``sqlite3 mlyard.db ".backup ..."`` (the sqlite3 command line; Python's ``Connection.backup`` when it
  is missing) plus ``cp -a artifacts`` : the same bytes, with no hashing and no check.
* **gc**: every upload folder is an orphan (nothing references it); ``plan_gc`` + ``run_gc`` (the reference scan,
  then per folder: a transaction that checks again that nothing names it and deletes its rows, then the files)
  against ``rm -rf`` of the same folders plus one ``DELETE FROM blobs`` (sqlite3). Each round starts from a fresh
  ``cp -a`` of the workspace for each side, not timed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from harness import Comparison, alternate, markdown_table, print_table
from procs import package_version
from sqlalchemy import insert

from mlyard.core.hashing import tree_hash
from mlyard.server.workspace import init_workspace
from mlyard.store.lifecycle.backup import backup_workspace
from mlyard.store.lifecycle.gc import Retention, plan_gc, run_gc
from mlyard.store.lifecycle.layout import open_workspace
from mlyard.store.schema import Blob
from mlyard.store.tracking_schema import Metric, Run

HERE = Path(__file__).resolve().parent
DS = "workspaceblobstore"
Progress = Callable[[str], None]
SQLITE3 = shutil.which("sqlite3")


def build(ws_root: Path, files: int, progress: Progress) -> tuple[Path, int, int]:
    """A workspace with ``files`` recorded upload files and 200,000 metric points; returns (path, files, bytes)."""
    ws = init_workspace(ws_root, port=5997).workspace
    total = 0
    with open_workspace(ws) as opened, opened.db.session() as s:
        for _folder in range(files // 10):
            entries = []
            for i in range(10):
                data = os.urandom(800_000 if i == 0 else 16_000)
                entries.append((f"data/part-{i}.bin", data))
            tree = tree_hash((p, hashlib.sha256(d).hexdigest(), len(d)) for p, d in entries)
            for rel, data in entries:
                path = ws / "artifacts" / DS / "LocalUpload" / tree / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                total += len(data)
                s.add(Blob(datastore=DS, path=f"LocalUpload/{tree}/{rel}", sha256=hashlib.sha256(data).hexdigest(),
                           size=len(data)))
        for r in range(20):
            run_id = uuid.uuid4().hex
            s.add(Run(id=run_id, experiment_id=0, name=f"r{r}", status="FINISHED", start_time=0,
                      artifact_uri=f"mlflow-artifacts:/mlflow/0/{run_id}/artifacts"))
            s.flush()
            s.execute(insert(Metric), [{"run_id": run_id, "key": "loss", "value": 1.0 / (i + 1), "timestamp": i,
                                        "step": i} for i in range(10_000)])
    store_mb = (ws / "mlyard.db").stat().st_size / 1e6
    progress(f"workspace: {files // 10 * 10} files, {total / 1e6:.0f} MB, store {store_mb:.0f} MB")
    return ws, files // 10 * 10, total


def _copy_workspace(template: Path, dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run(["cp", "-a", str(template), str(dest)], check=True)
    con = sqlite3.connect(dest / "mlyard.db")
    con.execute("UPDATE datastores SET root = ?", (str(dest / "artifacts" / DS),))
    con.commit()
    con.close()


def _sqlite_backup_cli(db: Path, out: Path) -> None:
    if SQLITE3:
        subprocess.run([SQLITE3, str(db), f".backup '{out}'"], check=True)
    else:
        src, dst = sqlite3.connect(db), sqlite3.connect(out)
        src.backup(dst)
        dst.close()
        src.close()


def backup_bench(base: Path, template: Path, rounds: int, files: int, data_bytes: int,
                 progress: Progress) -> Comparison:
    db_bytes = (template / "mlyard.db").stat().st_size
    c = Comparison("backup", "mlyard workspace backup (online, hashed, verified)",
                   f"{'sqlite3 .backup' if SQLITE3 else 'sqlite3.Connection.backup'} + cp -a",
                   f"{files} files, {data_bytes / 1e6:.0f} MB of uploads + a {db_bytes / 1e6:.0f} MB store",
                   bytes_per_round=data_bytes + db_bytes)
    targets = (base / "b-mlyard", base / "b-peer")

    def before(_i: int) -> None:
        for t in targets:
            shutil.rmtree(t, ignore_errors=True)

    def subject() -> float:
        with open_workspace(template) as ws:
            start = time.perf_counter()
            backup_workspace(ws, targets[0])
            return time.perf_counter() - start

    def peer() -> float:
        start = time.perf_counter()
        targets[1].mkdir()
        _sqlite_backup_cli(template / "mlyard.db", targets[1] / "mlyard.db")
        subprocess.run(["cp", "-a", str(template / "artifacts"), str(targets[1] / "artifacts")], check=True)
        return time.perf_counter() - start

    c.subject_s, c.peer_s = alternate(rounds, subject, peer, before=before, after=before, progress=progress)
    _throughput_notes(c, files)
    return c


def gc_bench(base: Path, template: Path, rounds: int, files: int, data_bytes: int, progress: Progress) -> Comparison:
    c = Comparison("gc", "mlyard workspace gc --yes (orphan uploads)", "rm -rf + DELETE FROM blobs",
                   f"{files} files in {files // 10} unreferenced upload folders, {data_bytes / 1e6:.0f} MB",
                   bytes_per_round=data_bytes)
    sides = (base / "g-mlyard", base / "g-peer")
    now_later = time.time() + 3 * 86400  # past the uploads' grace period

    def before(_i: int) -> None:
        for side in sides:
            _copy_workspace(template, side)

    def subject() -> float:
        with open_workspace(sides[0]) as ws:
            start = time.perf_counter()
            done = run_gc(plan_gc(ws, Retention(), now=now_later))
            elapsed = time.perf_counter() - start
        assert done.files == files, done.files
        return elapsed

    def peer() -> float:
        start = time.perf_counter()
        subprocess.run(["rm", "-rf", str(sides[1] / "artifacts" / DS / "LocalUpload")], check=True)
        con = sqlite3.connect(sides[1] / "mlyard.db")
        con.execute("DELETE FROM blobs WHERE path LIKE 'LocalUpload/%'")
        con.commit()
        con.close()
        return time.perf_counter() - start

    def after(_i: int) -> None:
        for side in sides:
            shutil.rmtree(side, ignore_errors=True)

    c.subject_s, c.peer_s = alternate(rounds, subject, peer, before=before, after=after, progress=progress)
    _throughput_notes(c, files)
    return c


def _throughput_notes(c: Comparison, files: int) -> None:
    import statistics

    a, b = statistics.median(c.subject_s), statistics.median(c.peer_s)
    c.notes.append(f"mlyard {files / a:,.0f} files/s, {c.mb_per_s(a):,.0f} MB/s; "
                   f"peer {files / b:,.0f} files/s, {c.mb_per_s(b):,.0f} MB/s")


def main(argv: list[str] | None = None) -> int:
    from machine import describe, summary_line
    from rich.console import Console

    parser = argparse.ArgumentParser(description="mlyard's workspace backup and gc against cp -a, sqlite3 .backup "
                                                 "and rm -rf.")
    parser.add_argument("--quick", action="store_true", help="1 round of 300 files")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=3000, help="upload files (default 3000)")
    parser.add_argument("--results", type=Path, default=HERE / ".results")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.files = 1, 300
    console = Console(width=max(Console().width, 160))
    info = describe()
    console.print(f"[bold]lifecycle[/bold]: 1 warm-up + {args.rounds} alternating rounds · {summary_line(info)}")

    def progress(line: str) -> None:
        console.print(f"  lifecycle {line}", highlight=False, markup=False)

    base = Path(tempfile.mkdtemp(prefix="mlyard-bench-lifecycle-"))
    try:
        template, files, data_bytes = build(base / "template", args.files, progress)
        results = [backup_bench(base, template, args.rounds, files, data_bytes, progress),
                   gc_bench(base, template, args.rounds, files, data_bytes, progress)]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    title = (f"mlyard workspace lifecycle vs cp -a / sqlite3 .backup / rm -rf · {info['date']} · "
             f"commit {info['commit']} · mlyard {package_version('mlyard')}")
    print_table(console, results, title=title)
    for c in results:
        console.print("; ".join([f"• {c.name}: mlyard = {c.subject}", f"peer = {c.peer}", c.workload, *c.notes]),
                      highlight=False, markup=False)
    args.results.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "sqlite3_cli": SQLITE3, "results": [c.to_dict() for c in results]}
    (args.results / "lifecycle.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.results / "lifecycle.md").write_text(f"{summary_line(info)}\n\n{markdown_table(results)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
