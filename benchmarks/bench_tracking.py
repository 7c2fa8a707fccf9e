"""MLflow tracking: mlyard's server against the stock ``mlflow server``, through the real client and over raw HTTP.

Both servers start fresh in the same run (see bench_tracking_load). The benchmark process itself is the
driver: one ``MlflowClient(tracking_uri=...)`` per server, calls made one after another (the seeding,
not timed, uses threads). Every workload alternates mlyard, mlflow, mlyard, mlflow ... after a warm-up
round of each; a separate process samples each server's process-tree RSS every 50 ms throughout.
log_metric, search_runs and the history are timed twice, in two views: through the client, and as the
raw HTTP requests that client sends (bench_tracking_http), which leaves out the client's own work.

1. log_metric: ``calls`` sequential ``log_metric(run, "loss", v, step=i)`` per server per round, one run.
2. log_batch: one call with 1000 metrics (distinct steps) to a new run (created untimed) per round.
3. search_runs: ``SEARCH_FILTER`` over ``runs`` seeded runs in one experiment, max_results=1000.
4. metric history: ``get_metric_history`` of one metric with ``points`` points.
5. memory: the servers' RSS idle after start and the peak over the whole run (seeding included).
"""

from __future__ import annotations

import itertools
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_tracking_load as load
from bench_tracking_http import RawHttp
from harness import Comparison, alternate, seconds
from procs import package_version, stop
from rss import RssSampler

Progress = Callable[[str], None]
SEED_THREADS = 2  # per server; more does not help on two cores
IDLE_SETTLE_S = 3.0


def _labels() -> tuple[str, str]:
    return (f"mlyard {package_version('mlyard')} server (SQLite, bearer token)",
            f"mlflow server {package_version('mlflow')} (SQLite, --serve-artifacts, 1 uvicorn worker)")


CLIENT = "through the mlflow client"
HTTP = "over raw HTTP (server side)"


class Workloads:
    """The timed calls, each in two views: through ``MlflowClient``, and as raw HTTP requests (``http``)."""

    def __init__(self, clients: dict[str, Any], http: RawHttp, rounds: int, progress: Progress) -> None:
        self.clients, self.http, self.rounds, self.progress = clients, http, rounds, progress
        self.subject, self.peer = _labels()
        self.experiments = {name: c.create_experiment("bench-tracking") for name, c in clients.items()}
        self.search_experiments: dict[str, str] = {}
        self.expected_matches = 0
        self.history_runs: dict[str, str] = {}

    def _compare(self, key: str, name: str, workload: str, subject: Callable[[], float], peer: Callable[[], float],
                 before: Callable[[int], None] | None = None, raw: bool = False) -> Comparison:
        a, b = alternate(self.rounds, subject, peer, before=before, progress=lambda msg: self.progress(f"{key} {msg}"))
        driver = ("driver: the benchmark process, one keep-alive httpx.Client per server sending the mlflow client's "
                  "JSON bodies" if raw else "driver: the benchmark process, real mlflow client")
        return Comparison(name=name, subject=self.subject, peer=self.peer, workload=workload, subject_s=a, peer_s=b,
                          notes=[driver, "1 warm-up round not counted"])

    def _new_run(self, name: str) -> str:
        return str(self.clients[name].create_run(self.experiments[name]).info.run_id)

    def _client_log_metric(self, name: str, run_id: str, step: int) -> float:
        start = time.perf_counter()
        self.clients[name].log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
        return time.perf_counter() - start

    def log_metric(self, calls: int, raw: bool = False) -> Comparison:
        runs = {name: self._new_run(name) for name in self.clients}
        steps = {name: itertools.count() for name in self.clients}
        latencies: dict[str, list[float]] = {name: [] for name in self.clients}
        counted = [False]
        call = self.http.log_metric if raw else self._client_log_metric

        def timed(name: str) -> Callable[[], float]:
            def one_round() -> float:
                lat = [call(name, runs[name], next(steps[name])) for _ in range(calls)]
                if counted[0]:
                    latencies[name].extend(lat)
                return statistics.median(lat)
            return one_round

        def before(index: int) -> None:
            counted[0] = index >= 0

        workload = (f"POST /api/2.0/mlflow/runs/log-metric with the body client.log_metric sends, {calls} calls per "
                    "server per round, one run" if raw else
                    f"client.log_metric(run_id, 'loss', v, step=i), {calls} calls per server per round, one run")
        c = self._compare("log_metric" + (" raw" if raw else ""),
                          f"log_metric latency p50 {HTTP if raw else CLIENT}, {calls} sequential calls per round",
                          workload, timed("mlyard"), timed("mlflow"), before, raw)
        for name, lat in latencies.items():
            p99 = statistics.quantiles(lat, n=100, method="inclusive")[98]
            text = f"all {len(lat)} calls: p50 {seconds(statistics.median(lat))}, p99 {seconds(p99)}"
            setattr(c, "subject_extra" if name == "mlyard" else "peer_extra", text)
            c.notes.append(f"{name} {text}")
        return c

    def log_batch(self) -> Comparison:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric("loss", 1.0 / (i + 1), now, i) for i in range(1000)]
        runs: dict[str, str] = {}

        def before(index: int) -> None:
            runs.update({name: self._new_run(name) for name in self.clients})

        def timed(name: str) -> Callable[[], float]:
            def one_call() -> float:
                start = time.perf_counter()
                self.clients[name].log_batch(runs[name], metrics=metrics)
                return time.perf_counter() - start
            return one_call

        return self._compare("log_batch", f"log_batch of 1000 metrics, one call, {CLIENT}",
                             "client.log_batch(run_id, metrics=[1000 Metric, steps 0..999]), a new run every round",
                             timed("mlyard"), timed("mlflow"), before)

    def seed_search(self, runs: int) -> None:
        self.search_experiments = {name: c.create_experiment("bench-search") for name, c in self.clients.items()}
        load.on_both({name: (lambda n=name: load.seed_runs(self.clients[n], self.search_experiments[n], runs,
                                                           SEED_THREADS))
                      for name in self.clients}, lambda line: self.progress(f"search_runs {line}"))
        self.expected_matches = load.expected_matches(runs)

    def search_runs(self, runs: int, raw: bool = False) -> Comparison:
        experiments, expected = self.search_experiments, self.expected_matches

        def client_call(name: str) -> float:
            start = time.perf_counter()
            found = self.clients[name].search_runs([experiments[name]], load.SEARCH_FILTER, max_results=1000)
            elapsed = time.perf_counter() - start
            if len(found) != expected or found.token is not None:
                raise RuntimeError(f"{name} search_runs found {len(found)} runs (next page "
                                   f"{found.token is not None}), expected {expected}")
            return elapsed

        def timed(name: str) -> Callable[[], float]:
            if raw:
                return lambda: self.http.search_runs(name, experiments[name], load.SEARCH_FILTER, expected)
            return lambda: client_call(name)

        call = f'client.search_runs([exp], "{load.SEARCH_FILTER}", max_results=1000)'
        if raw:
            call = f"POST /api/2.0/mlflow/runs/search with the body of {call}"
        return self._compare("search_runs" + (" raw" if raw else ""),
                             f"search_runs over {runs} runs, {expected} match, {HTTP if raw else CLIENT}",
                             f"{call} over {runs} runs (2 metrics, 2 params, 1 tag each)", timed("mlyard"),
                             timed("mlflow"), raw=raw)

    def seed_history(self, points: int) -> None:
        self.history_runs = {name: self._new_run(name) for name in self.clients}
        load.on_both({name: (lambda n=name: load.seed_history(self.clients[n], self.history_runs[n], points))
                      for name in self.clients}, lambda line: self.progress(f"history {line}"))

    def metric_history(self, points: int, raw: bool = False) -> Comparison:
        runs = self.history_runs

        def client_call(name: str) -> float:
            start = time.perf_counter()
            history = self.clients[name].get_metric_history(runs[name], "m")
            elapsed = time.perf_counter() - start
            if len(history) != points:
                raise RuntimeError(f"{name} returned {len(history)} points of metric history, expected {points}")
            return elapsed

        def timed(name: str) -> Callable[[], float]:
            if raw:
                return lambda: self.http.metric_history(name, runs[name], points)
            return lambda: client_call(name)

        workload = (f"GET /api/2.0/mlflow/metrics/get-history page by page (25,000 points a page) with the query "
                    f"client.get_metric_history sends, {points} points logged by log_batch of 1000" if raw else
                    f"client.get_metric_history(run_id, 'm') of {points} points logged by log_batch of 1000 "
                    "(the client pages by 25,000)")
        return self._compare("history" + (" raw" if raw else ""),
                             f"get_metric_history of {points} points, {HTTP if raw else CLIENT}", workload,
                             timed("mlyard"), timed("mlflow"), raw=raw)


def _memory(name: str, values: dict[str, int], workload: str, notes: list[str]) -> Comparison:
    subject, peer = _labels()
    return Comparison(name=name, subject=subject, peer=peer, workload=workload, subject_s=[values["mlyard"]],
                      peer_s=[values["mlflow"]], unit="B", notes=notes)


def run(rounds: int, progress: Progress, calls: int = 1000, runs: int = 10_000,
        points: int = 100_000) -> list[Comparison]:
    from mlflow import MlflowClient

    base = Path(tempfile.mkdtemp(prefix="mlyard-bench-tracking-"))
    saved = {key: os.environ.get(key) for key in [*load.MLFLOW_ENV, "MLFLOW_TRACKING_TOKEN"]}
    servers: list[load.Server] = []
    sampler, http = None, None
    try:
        mlyard, token = load.start_mlyard(base / "mlyard")
        servers.append(mlyard)
        servers.append(load.start_mlflow(base / "mlflow"))
        # The stock server has no auth and ignores the header: both servers get the same requests.
        os.environ.update({**load.MLFLOW_ENV, "MLFLOW_TRACKING_TOKEN": token})
        sampler = RssSampler({s.name: s.proc.pid for s in servers})
        time.sleep(IDLE_SETTLE_S)
        idle = sampler.phase()["last"]
        http = RawHttp({s.name: s.url for s in servers}, token)
        work = Workloads({s.name: MlflowClient(tracking_uri=s.url) for s in servers}, http, rounds, progress)
        results, peaks = [], []

        def searches() -> list[Comparison]:
            work.seed_search(runs)
            return [work.search_runs(runs), work.search_runs(runs, raw=True)]

        def histories() -> list[Comparison]:
            work.seed_history(points)
            return [work.metric_history(points), work.metric_history(points, raw=True)]

        phases: tuple[tuple[str, Callable[[], list[Comparison]]], ...] = (
            ("log_metric", lambda: [work.log_metric(calls), work.log_metric(calls, raw=True)]),
            ("log_batch", lambda: [work.log_batch()]), ("search_runs", searches), ("history", histories))
        for phase, step in phases:
            results.extend(step())
            peak = sampler.phase()["peak"]
            peaks.append(peak)
            progress(f"peak RSS during {phase} (seeding included): "
                     + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in peak.items()))
    finally:
        if http is not None:
            http.close()
        if sampler is not None:
            sampler.close()
        for server in servers:
            stop(server.proc)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(base, ignore_errors=True)
    whole = {name: max(p[name] for p in peaks) for name in idle}
    tree = "sum over the server's process tree (psutil; mlflow server = its CLI process + its uvicorn process)"
    results.append(_memory("Server RSS, idle after start", idle, f"{IDLE_SETTLE_S:.0f} s after healthy, before "
                           "any request", [tree]))
    results.append(_memory("Server RSS, peak over all workloads", whole, "highest 50 ms sample from first workload to "
                           f"last, seeding of {runs} runs and {points} points included", [tree]))
    return results
