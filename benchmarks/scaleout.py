"""Object storage throughput: mlyard's Azure Blob datastore against ``adlfs`` used directly, on a real Azurite.

    .venv/bin/python benchmarks/scaleout.py --quick      # a check: 1 round, 4 files of 4 MiB
    .venv/bin/python benchmarks/scaleout.py              # 3 rounds, 8 files of 16 MiB (make bench)

One Azurite (``make azurite``) on a loopback port, one container per side and round.

* **upload (datastore)**: ``FsspecDatastore.put_file`` of each file (read once, hashed while written, Azure
  blocks staged under the blob's name and committed only at the end) against ``adlfs``'s ``put_file``
  (``upload_blob``, no hash).
* **download (datastore)**: ``open_read`` + read to the end against ``adlfs``'s ``get_file``.
* **steps on Ray / on local slots**: ``--steps`` one-second steps (``sleep 1``; 200 by default), two at a time,
  through mlyard's ``RayExecutor`` (an actor per step, its log pulled every 0.25 s) and through local slots
  (``LocalExecutor``), against ``ray.remote`` called directly on the same command (``subprocess.run``, one CPU
  each): the overhead mlyard adds per task. The executors are driven directly, without a server or a job row.
* **upload/download (server)**: the same bytes through a real ``mlyard server`` whose default datastore is the
  Azurite container (the SDK's ``datastores.upload`` of the folder, 8 files at once: sha256 first, then a
  streamed upload that the server verifies before committing, resumable for files of 16 MiB and more; the SDK's
  ``fetch_files`` back, 8 at once, each verified into place), against ``adlfs`` direct again; the upload once more
  with ``MLYARD_TRANSFERS=1`` (one file at a time).

Azurite (Node.js) runs on the same 2 cores as both sides, so these figures bound the overhead mlyard adds on top
of one storage client, not Azure's own throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.support: the Azurite and server harnesses the tests use

from harness import Comparison, markdown_table, print_table  # noqa: E402
from procs import package_version  # noqa: E402

from mlyard.store.object_stores import open_datastore  # noqa: E402
from tests.support.azurite import MISSING, Azurite, azurite_installed  # noqa: E402

Progress = Callable[[str], None]


def _files(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        p = folder / f"part-{i:03d}.bin"
        p.write_bytes(os.urandom(size))
        out.append(p)
    return out


def datastore_bench(az: Azurite, files: list[Path], rounds: int, progress: Progress) -> list[Comparison]:
    total = sum(p.stat().st_size for p in files)
    workload = f"{len(files)} files of {files[0].stat().st_size >> 20} MiB to one Azurite container"
    up = Comparison("upload (datastore)", "mlyard FsspecDatastore.put_file (hashed, block commit)",
                    "adlfs put_file", workload, bytes_per_round=total)
    down = Comparison("download (datastore)", "mlyard FsspecDatastore.open_read", "adlfs get_file", workload,
                      bytes_per_round=total)
    fs = az.filesystem()
    state: dict[str, str] = {}

    def before(_i: int) -> None:
        state["mine"] = az.create_container(f"m{uuid.uuid4().hex[:12]}")
        state["peer"] = az.create_container(f"p{uuid.uuid4().hex[:12]}")

    def up_mine() -> float:
        store = open_datastore("bench", "azure_blob", "", az.datastore_spec("bench", state["mine"]))
        start = time.perf_counter()
        for p in files:
            store.put_file(p, f"data/{p.name}")
        return time.perf_counter() - start

    def up_peer() -> float:
        start = time.perf_counter()
        for p in files:
            fs.put_file(str(p), f"{state['peer']}/data/{p.name}")
        return time.perf_counter() - start

    def down_mine() -> float:
        store = open_datastore("bench", "azure_blob", "", az.datastore_spec("bench", state["mine"]))
        start = time.perf_counter()
        for p in files:
            with store.open_read(f"data/{p.name}") as f:
                while f.read(1 << 22):
                    pass
        return time.perf_counter() - start

    def down_peer() -> float:
        target = Path(tempfile.mkdtemp(prefix="mlyard-bench-dl-"))
        try:
            start = time.perf_counter()
            for p in files:
                fs.get_file(f"{state['peer']}/data/{p.name}", str(target / p.name))
            return time.perf_counter() - start
        finally:
            shutil.rmtree(target, ignore_errors=True)

    def after(_i: int) -> None:
        for c in (state["mine"], state["peer"]):
            fs.rm(c, recursive=True)


    # upload and download alternate in the same rounds: the download reads what the upload wrote
    samples: dict[str, list[float]] = {"um": [], "up": [], "dm": [], "dp": []}
    for index in range(-1, rounds):
        before(index)
        try:
            got = (up_mine(), up_peer(), down_mine(), down_peer())
        finally:
            after(index)
        if index >= 0:
            for key, value in zip(samples, got, strict=True):
                samples[key].append(value)
        label = "warm-up" if index < 0 else f"round {index + 1}/{rounds}"
        progress(f"{label}: upload mlyard {got[0]:.2f}s / adlfs {got[1]:.2f}s; "
                 f"download mlyard {got[2]:.2f}s / adlfs {got[3]:.2f}s")
    up.subject_s, up.peer_s, down.subject_s, down.peer_s = samples["um"], samples["up"], samples["dm"], samples["dp"]
    for c in (up, down):
        _notes(c)
    return [up, down]


def server_bench(az: Azurite, base: Path, folder: Path, files: list[Path], rounds: int,
                 progress: Progress) -> list[Comparison]:
    import yaml

    from mlyard.client import MlyardClient
    from mlyard.client.uploads import fetch_files
    from tests.support.server import ServerProcess, free_port, run_cli

    total = sum(p.stat().st_size for p in files)
    workload = f"{len(files)} files of {files[0].stat().st_size >> 20} MiB through mlyard server -> Azurite"
    up = Comparison("upload (server)", "mlyard datastore upload (SDK -> server -> Azurite, verified, 8 files at once)",
                    "adlfs put_file", workload, bytes_per_round=total)
    up_one = Comparison("upload (server, 1 at a time)", "the same with MLYARD_TRANSFERS=1", "adlfs put_file",
                        workload, bytes_per_round=total)
    down = Comparison("download (server)", "SDK fetch of every file (server <- Azurite, 8 files at once)",
                      "adlfs get_file", workload, bytes_per_round=total)
    container = az.create_container(f"s{uuid.uuid4().hex[:12]}")
    server = ServerProcess(base / "ws", free_port()).init().start()
    fs = az.filesystem()
    try:
        spec = base / "blobs.yml"
        spec.write_text(yaml.safe_dump(az.datastore_spec("blobs", container)))
        run_cli("datastore", "create", "-f", str(spec), env=server.env())
        client = MlyardClient(server.url, server.token)
        one_at_a_time = MlyardClient(server.url, server.token, transfers=1)
        peer = az.create_container(f"q{uuid.uuid4().hex[:12]}")

        def up_mine(index: int, sdk: MlyardClient = client, to: str = "round") -> float:
            start = time.perf_counter()
            sdk.datastores.upload(folder, f"{to}{index}/", "blobs")
            return time.perf_counter() - start

        def up_peer(index: int, to: str = "round") -> float:
            start = time.perf_counter()
            for p in files:
                fs.put_file(str(p), f"{peer}/{to}{index}/{p.name}")
            return time.perf_counter() - start

        def down_mine(index: int) -> float:
            target = Path(tempfile.mkdtemp(prefix="mlyard-bench-dl-"))
            try:
                start = time.perf_counter()
                fetch_files(client.transport, "blobs", [(f"round{index}/{p.name}", target / p.name, None)
                                                        for p in files])
                return time.perf_counter() - start
            finally:
                shutil.rmtree(target, ignore_errors=True)

        def down_peer(index: int) -> float:
            target = Path(tempfile.mkdtemp(prefix="mlyard-bench-dl-"))
            try:
                start = time.perf_counter()
                for p in files:
                    fs.get_file(f"{peer}/round{index}/{p.name}", str(target / p.name))
                return time.perf_counter() - start
            finally:
                shutil.rmtree(target, ignore_errors=True)

        for index in range(-1, rounds):
            got = (up_mine(index + 1), up_peer(index + 1), down_mine(index + 1), down_peer(index + 1),
                   up_mine(index + 1, one_at_a_time, "single"), up_peer(index + 1, "single"))
            if index >= 0:
                up.subject_s.append(got[0])
                up.peer_s.append(got[1])
                down.subject_s.append(got[2])
                down.peer_s.append(got[3])
                up_one.subject_s.append(got[4])
                up_one.peer_s.append(got[5])
            label = "warm-up" if index < 0 else f"round {index + 1}/{rounds}"
            progress(f"server {label}: upload mlyard {got[0]:.2f}s / adlfs {got[1]:.2f}s; "
                     f"download mlyard {got[2]:.2f}s / adlfs {got[3]:.2f}s; "
                     f"upload one at a time mlyard {got[4]:.2f}s / adlfs {got[5]:.2f}s")
    finally:
        server.stop()
    for c in (up, up_one, down):
        _notes(c)
    return [up, up_one, down]


def _sleep_step() -> int:
    """What ``ray.remote`` runs directly: the same shell command a step runs."""
    import subprocess

    return subprocess.run(["bash", "-c", "sleep 1"], check=False).returncode


def ray_bench(base: Path, steps: int, rounds: int, progress: Progress) -> list[Comparison]:
    """``steps`` one-second steps, two at a time: mlyard's Ray executor and local slots against ``ray.remote``."""
    from concurrent.futures import ThreadPoolExecutor

    import ray

    from mlyard.jobs.executors import Launch, LocalExecutor
    from mlyard.jobs.ray_executor import RayExecutor, connect, disconnect

    lanes = 2
    workload = f"{steps} steps of 'sleep 1', {lanes} at a time, on a local Ray (one node, {lanes} CPUs)"
    on_ray = Comparison("steps on Ray", "mlyard RayExecutor (actor per step, log pulled)", "ray.remote direct",
                        workload)
    local = Comparison("steps on local slots", "mlyard LocalExecutor (process group per step)", "ray.remote direct",
                       workload)
    connect("local")
    remote = ray.remote(num_cpus=1)(_sleep_step)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}

    def through(executor: Any, steps: int = steps) -> float:
        def one(i: int) -> None:
            launch = Launch(f"bench-{i}", "sleep 1", base, env, base / "logs" / f"{i}.log")
            handle = executor.start(launch)
            executor.wait(handle, None)

        start = time.perf_counter()
        with ThreadPoolExecutor(lanes) as pool:
            list(pool.map(one, range(steps)))
        return time.perf_counter() - start

    def direct(steps: int = steps) -> float:
        start = time.perf_counter()
        ray.get([remote.remote() for _ in range(steps)])
        return time.perf_counter() - start

    try:
        ray_exec, local_exec = RayExecutor("bench", "local", lanes), LocalExecutor("bench", lanes)
        warm = min(steps, 10)  # the warm-up starts Ray's worker pool; it is not counted
        progress(f"ray warm-up ({warm} steps): RayExecutor {through(ray_exec, warm):.1f}s, "
                 f"local slots {through(local_exec, warm):.1f}s, ray.remote {direct(warm):.1f}s")
        for index in range(rounds):
            got = (through(ray_exec), through(local_exec), direct())
            if index >= 0:
                on_ray.subject_s.append(got[0])
                local.subject_s.append(got[1])
                on_ray.peer_s.append(got[2])
                local.peer_s.append(got[2])
            label = f"round {index + 1}/{rounds}"
            progress(f"ray {label}: RayExecutor {got[0]:.1f}s, local slots {got[1]:.1f}s, ray.remote {got[2]:.1f}s")
    finally:
        disconnect()
    import statistics

    ideal = steps / lanes
    for c in (on_ray, local):
        mine, peer = statistics.median(c.subject_s), statistics.median(c.peer_s)
        c.notes.append(f"overhead per step over 'sleep 1': mlyard {(mine - ideal) * lanes / steps * 1000:.0f} ms, "
                       f"ray.remote {(peer - ideal) * lanes / steps * 1000:.0f} ms")
    return [on_ray, local]


def _notes(c: Comparison) -> None:
    import statistics

    a, b = statistics.median(c.subject_s), statistics.median(c.peer_s)
    c.notes.append(f"mlyard {c.mb_per_s(a):,.0f} MB/s; adlfs {c.mb_per_s(b):,.0f} MB/s")


def main(argv: list[str] | None = None) -> int:
    from machine import describe, summary_line
    from rich.console import Console

    parser = argparse.ArgumentParser(description="mlyard's Azure Blob datastore against adlfs, on Azurite.")
    parser.add_argument("--quick", action="store_true", help="1 round of 4 files of 4 MiB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--mib", type=int, default=16, help="size of each file")
    parser.add_argument("--steps", type=int, default=200, help="one-second steps on Ray (0: no Ray benchmark)")
    parser.add_argument("--step-rounds", type=int, default=1, help="counted rounds of the steps (about 7 min each)")
    parser.add_argument("--results", type=Path, default=HERE / ".results")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.files, args.mib, args.steps = 1, 4, 4, 10
    try:
        import ray  # noqa: F401
    except ImportError:
        args.steps = 0  # no Ray here: pip install 'mlyard[ray]'

    console = Console(width=max(Console().width, 160))
    if not azurite_installed():
        console.print(f"scaleout: skipped: {MISSING}")
        return 0
    info = describe()
    console.print(f"[bold]scaleout[/bold]: 1 warm-up + {args.rounds} rounds · {summary_line(info)}")

    def progress(line: str) -> None:
        console.print(f"  scaleout {line}", highlight=False, markup=False)

    base = Path(tempfile.mkdtemp(prefix="mlyard-bench-scaleout-"))
    az = Azurite().start()
    try:
        files = _files(base / "files", args.files, args.mib << 20)
        results = datastore_bench(az, files, args.rounds, progress)
        results += server_bench(az, base, base / "files", files, args.rounds, progress)
        if args.steps:
            (base / "logs").mkdir()
            results += ray_bench(base, args.steps, args.step_rounds, progress)
    finally:
        az.stop()
        shutil.rmtree(base, ignore_errors=True)
    title = (f"mlyard object storage vs adlfs on Azurite · {info['date']} · commit {info['commit']} · "
             f"mlyard {package_version('mlyard')} · adlfs {package_version('adlfs')}")
    print_table(console, results, title=title)
    for c in results:
        console.print("; ".join([f"• {c.name}: mlyard = {c.subject}", f"peer = {c.peer}", c.workload, *c.notes]),
                      highlight=False, markup=False)
    args.results.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "results": [c.to_dict() for c in results]}
    (args.results / "scaleout.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.results / "scaleout.md").write_text(f"{summary_line(info)}\n\n{markdown_table(results)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
