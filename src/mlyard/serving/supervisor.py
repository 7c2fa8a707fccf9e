"""Worker processes of online deployments: start, wait until ready, restart after a crash, stop.

Each deployment runs ``instance_count x WORKER_COUNT`` processes of ``python -m mlyard.serving.worker``
(the worker contract in ``docs/serving.md``), children of the server, each in its own session so a
stop takes its whole group. Every process is started from one long-lived thread: the worker asks the
kernel to kill it when its parent *thread* ends (``PR_SET_PDEATHSIG``), and a request thread of the
server's pool would end while its workers still serve.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mlyard.core.errors import InvalidRequestError
from mlyard.jobs.environments import mlyard_only_path
from mlyard.jobs.executors import kill_group

log = logging.getLogger("mlyard.serving")

STOP_GRACE_S = 6.0  # the worker finishes in-flight requests within 5 s of SIGTERM
TICK_S = 0.1
MAX_BACKOFF_S = 10.0
SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux
LOG_TAIL_LINES = 30


class DeploymentFailedError(InvalidRequestError):
    """A deployment's workers did not become ready; the message carries the reason and the log's tail."""


@dataclass(frozen=True)
class WorkerPlan:
    """How to run one deployment's workers: what the service resolved from its spec."""

    endpoint: str
    deployment: str
    model_dir: str
    model_folder: str | None
    code_dir: str | None
    scoring_script: str | None
    env: dict[str, str]
    instance_count: int
    worker_count: int
    request_timeout_ms: int
    max_concurrent_per_instance: int
    liveness_period_s: float = 10.0  # the YAML's liveness_probe (Azure's defaults)
    liveness_timeout_s: float = 2.0
    liveness_failures: int = 30
    python: str | None = None  # an isolated environment's interpreter; None: the supervisor's (the server's)

    @property
    def processes(self) -> int:
        return self.instance_count * self.worker_count

    @property
    def max_in_flight(self) -> int:
        return self.instance_count * self.max_concurrent_per_instance


@dataclass(eq=False)
class Worker:
    """One worker process; ``state`` is starting, ready, unresponsive (alive but failing its liveness probe, out
    of the router's choice), down (waiting to restart) or stopped."""

    instance_id: str
    socket: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    state: str = "starting"
    failures: int = 0
    restarts: int = 0
    restart_at: float = 0.0
    probe_at: float = 0.0
    misses: int = 0  # liveness probes failed in a row


@dataclass(eq=False)
class Pool:
    """One generation of a deployment's workers. A rolling update starts a new pool beside the live one."""

    plan: WorkerPlan
    generation: int
    folder: Path
    workers: list[Worker]
    socket_dir: Path | None = None  # a temporary folder of its own, removed with the pool
    in_flight: int = 0
    stopping: bool = False
    ready: list[Worker] = field(default_factory=list)

    def refresh_ready(self) -> None:
        self.ready = [w for w in self.workers if w.state == "ready"]


def _short_socket_root(folder: Path) -> Path:
    """A workspace deep in the filesystem gets its sockets in a short temporary folder instead."""
    if len(str(folder)) + 24 <= SOCKET_PATH_MAX:
        return folder
    return Path(tempfile.mkdtemp(prefix="mlyard-sock-"))


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a log file ('' when there is none)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            return "".join(deque(f.read().decode(errors="replace").splitlines(keepends=True), maxlen=lines))
    except FileNotFoundError:
        return ""


class Supervisor:
    """Holds every live pool, keyed by (endpoint, deployment), and keeps their workers running."""

    def __init__(self, state_dir: Path, *, python: str = sys.executable, ready_timeout_s: float = 300.0,
                 on_restart: Callable[[str, str], None] | None = None) -> None:
        self.root = state_dir / "serving"
        self.python = python
        self.ready_timeout_s = ready_timeout_s
        self.pools: dict[tuple[str, str], Pool] = {}
        self.on_restart = on_restart
        self._pending: list[Pool] = []  # pools being started, watched but not yet live
        self._lock = threading.Lock()
        self._generation = int(time.time())
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlyard-serving-spawn")
        self._stop = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="mlyard-serving-monitor", daemon=True)
        self._monitor.start()

    @property
    def closing(self) -> bool:
        """The server is stopping: no new worker starts."""
        return self._stop.is_set()

    # -- start and stop ------------------------------------------------------------------------

    def start(self, plan: WorkerPlan) -> Pool:
        """Start a new pool for ``plan`` and wait until every worker answers ``/ready``.

        Raises:
            DeploymentFailedError: a worker exited or did not get ready in time; every process of the
                pool is stopped before this is raised.
        """
        with self._lock:
            self._generation += 1
            generation = self._generation
        folder = self.root / plan.endpoint / plan.deployment
        folder.mkdir(parents=True, exist_ok=True)
        sockets = _short_socket_root(folder)
        workers = [Worker(instance_id=f"g{generation}-{i}", socket=str(sockets / f"g{generation}-{i}.sock"),
                          log_path=folder / f"g{generation}-{i}.log") for i in range(plan.processes)]
        pool = Pool(plan=plan, generation=generation, folder=folder, workers=workers,
                    socket_dir=sockets if sockets != folder else None)
        try:
            for worker in workers:
                self._spawn(pool, worker)
            self._await_ready(pool)
        except BaseException:
            self.stop_pool(pool)
            raise
        return pool

    def install(self, pool: Pool) -> Pool | None:
        """Make ``pool`` the live one of its deployment; returns the pool it replaces (still running)."""
        key = (pool.plan.endpoint, pool.plan.deployment)
        with self._lock:
            old = self.pools.get(key)
            self.pools[key] = pool
        return old

    def remove(self, endpoint: str, deployment: str) -> None:
        """Stop a deployment's live workers (after draining their in-flight requests)."""
        with self._lock:
            pool = self.pools.pop((endpoint, deployment), None)
        if pool is not None:
            self.drain_and_stop(pool)

    def drain_and_stop(self, pool: Pool, timeout_s: float = 5.0) -> None:
        """Wait for the requests a replaced pool still serves, then stop it."""
        pool.stopping = True
        deadline = time.monotonic() + timeout_s
        while pool.in_flight > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.stop_pool(pool)

    def stop_pool(self, pool: Pool) -> None:
        pool.stopping = True
        for worker in pool.workers:
            worker.state = "stopped"
        pool.refresh_ready()
        for worker in pool.workers:
            if worker.proc is not None and worker.proc.poll() is None:
                kill_group(worker.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in pool.workers:
            if worker.proc is None:
                continue
            try:
                worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            kill_group(worker.proc.pid, signal.SIGKILL)
            try:
                worker.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                log.warning("worker %s (pid %d) did not exit", worker.instance_id, worker.proc.pid)
            Path(worker.socket).unlink(missing_ok=True)
        if pool.socket_dir is not None:
            shutil.rmtree(pool.socket_dir, ignore_errors=True)

    def close(self) -> None:
        """Stop every worker (server shutdown)."""
        self._stop.set()
        with self._lock:
            pools = [*self.pools.values(), *self._pending]
            self.pools.clear()
        for pool in pools:
            self.stop_pool(pool)
        self._monitor.join(timeout=2)
        self._spawner.shutdown(wait=True)

    def purge(self, endpoint: str, deployment: str | None = None) -> None:
        """Remove the log folders of a deleted deployment (or endpoint)."""
        target = self.root / endpoint / deployment if deployment else self.root / endpoint
        shutil.rmtree(target, ignore_errors=True)

    # -- logs ------------------------------------------------------------------------------------

    def workers(self, endpoint: str, deployment: str) -> list[dict[str, object]]:
        """The live workers of a deployment: instance id, pid, state and restarts (empty when none run)."""
        pool = self.pools.get((endpoint, deployment))
        if pool is None:
            return []
        return [{"instance_id": w.instance_id, "pid": w.proc.pid if w.proc is not None else None, "state": w.state,
                 "restarts": w.restarts} for w in pool.workers]

    def logs(self, endpoint: str, deployment: str, lines: int) -> str:
        """The last ``lines`` lines of each live worker's log, each under a header naming the worker."""
        pool = self.pools.get((endpoint, deployment))
        if pool is None:
            return ""
        parts = []
        for worker in pool.workers:
            parts.append(f"=== worker {worker.instance_id} ({worker.state}) ===\n{tail(worker.log_path, lines)}")
        return "\n".join(parts)

    # -- internals -------------------------------------------------------------------------------

    def _command(self, pool: Pool, worker: Worker) -> list[str]:
        plan = pool.plan
        cmd = [plan.python or self.python, "-m", "mlyard.serving.worker", "--socket", worker.socket,
               "--model-dir", plan.model_dir]
        if plan.model_folder:
            cmd += ["--model-folder", plan.model_folder]
        if plan.code_dir and plan.scoring_script:
            cmd += ["--code", plan.code_dir, "--scoring-script", plan.scoring_script]
        return [*cmd, "--endpoint", plan.endpoint, "--deployment", plan.deployment, "--instance-id",
                worker.instance_id]

    def _environment(self, pool: Pool) -> dict[str, str]:
        plan = pool.plan
        env = {**os.environ, **plan.env, "AZUREML_MODEL_DIR": plan.model_dir}
        if plan.model_folder and not plan.code_dir:
            env["MLFLOW_MODEL_FOLDER"] = plan.model_folder
        mlyard = mlyard_only_path(self.root.parent)  # the worker imports mlyard, even in an isolated environment
        env["PYTHONPATH"] = os.pathsep.join(p for p in (mlyard, env.get("PYTHONPATH", "")) if p)
        return env

    def _spawn(self, pool: Pool, worker: Worker) -> None:
        Path(worker.socket).unlink(missing_ok=True)
        command = self._command(pool, worker)
        env = self._environment(pool)
        cwd = pool.plan.code_dir or str(pool.folder)

        def launch() -> subprocess.Popen[bytes]:
            with worker.log_path.open("ab") as out:
                return subprocess.Popen(  # noqa: S603 - mlyard's own worker module
                    command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True)

        worker.proc = self._spawner.submit(launch).result()
        worker.state = "starting"

    def _await_ready(self, pool: Pool) -> None:
        with self._lock:
            self._pending.append(pool)
        try:
            deadline = time.monotonic() + self.ready_timeout_s
            while True:
                if self._stop.is_set() or pool.stopping:
                    raise self._failure(pool, pool.workers[0], "the server is stopping")
                pending = [w for w in pool.workers if w.state != "ready"]
                if not pending:
                    return
                for worker in pending:
                    assert worker.proc is not None
                    code = worker.proc.poll()
                    if code is not None:
                        raise self._failure(pool, worker, f"worker {worker.instance_id} exited with code {code} "
                                                          "before it was ready")
                    if _probe(worker.socket):
                        worker.state = "ready"
                        pool.refresh_ready()
                if time.monotonic() > deadline:
                    raise self._failure(pool, pending[0], f"workers not ready after {self.ready_timeout_s:.0f} s")
                time.sleep(TICK_S)
        finally:
            with self._lock:
                self._pending.remove(pool)

    @staticmethod
    def _failure(pool: Pool, worker: Worker, reason: str) -> DeploymentFailedError:
        last = tail(worker.log_path, LOG_TAIL_LINES).rstrip()
        plan = pool.plan
        return DeploymentFailedError(
            f"deployment {plan.deployment!r} of endpoint {plan.endpoint!r} failed: {reason}; nothing was created. "
            f"Last lines of its log ({worker.log_path}):\n{last or '(empty)'}",
            details={"endpoint": plan.endpoint, "deployment": plan.deployment, "log": str(worker.log_path)})

    def _watch(self) -> None:
        """Restart crashed workers of live pools, with backoff; mark restarted ones ready when they are."""
        while not self._stop.wait(TICK_S):
            with self._lock:
                pools = list(self.pools.values())
            for pool in pools:
                try:
                    self._tend(pool)
                except Exception:  # the monitor must outlive any one worker's trouble
                    log.exception("supervising %s/%s", pool.plan.endpoint, pool.plan.deployment)

    @staticmethod
    def _check_liveness(pool: Pool, worker: Worker, now: float) -> bool:
        """Probe ``GET /``: a worker that misses leaves the router's choice; after ``liveness_failures`` misses
        in a row it is killed (and restarted like any worker that exits). Returns whether its state changed."""
        plan = pool.plan
        worker.probe_at = now + plan.liveness_period_s
        if _probe(worker.socket, "/", plan.liveness_timeout_s):
            worker.misses = 0
            if worker.state == "unresponsive":
                worker.state = "ready"
                return True
            return False
        worker.misses += 1
        changed = worker.state == "ready"
        worker.state = "unresponsive"
        if worker.misses >= plan.liveness_failures and worker.proc is not None:
            log.warning("worker %s of %s/%s failed %d liveness probes in a row; killing it", worker.instance_id,
                        plan.endpoint, plan.deployment, worker.misses)
            kill_group(worker.proc.pid)
        return changed

    def _tend(self, pool: Pool) -> None:
        if pool.stopping:
            return
        changed = False
        now = time.monotonic()
        for worker in pool.workers:
            if worker.state in ("ready", "starting", "unresponsive") and worker.proc is not None \
                    and worker.proc.poll() is not None:
                worker.failures += 1
                delay = min(MAX_BACKOFF_S, 0.25 * 2 ** (worker.failures - 1))
                log.warning("worker %s of %s/%s exited with code %s; restarting in %.2f s", worker.instance_id,
                            pool.plan.endpoint, pool.plan.deployment, worker.proc.returncode, delay)
                kill_group(worker.proc.pid)
                worker.state, worker.restart_at = "down", now + delay
                changed = True
            elif worker.state == "down" and now >= worker.restart_at and not pool.stopping:
                worker.restarts += 1
                if self.on_restart is not None:
                    self.on_restart(pool.plan.endpoint, pool.plan.deployment)
                self._spawn(pool, worker)
            elif worker.state == "starting" and _probe(worker.socket):
                worker.state = "ready"
                worker.failures, worker.misses = 0, 0
                worker.probe_at = now + pool.plan.liveness_period_s
                changed = True
            elif worker.state in ("ready", "unresponsive") and now >= worker.probe_at:
                changed |= self._check_liveness(pool, worker, now)
        if changed:
            pool.refresh_ready()


def _probe(socket: str, path: str = "/ready", timeout: float = 1.0) -> bool:
    """Whether the worker on ``socket`` answers ``GET path`` with 200."""
    if not os.path.exists(socket):
        return False
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=socket), timeout=timeout) as client:
            return client.get(f"http://worker{path}").status_code == 200
    except httpx.HTTPError:
        return False
