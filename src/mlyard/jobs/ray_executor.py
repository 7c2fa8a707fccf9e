"""The Ray executor: a step's process runs on a Ray cluster, inside a Ray actor that holds it.

``mlyard compute create`` with ``type: ray`` names a cluster by ``address``: ``local`` (mlyard starts a Ray head
on this machine when a step first needs it, and stops it with the server), or the address of an existing cluster
(``ray://head:10001``, ``head:6379``, ``auto``), with its token in ``RAY_AUTH_TOKEN`` where the cluster wants one.

Each step becomes one actor (``StepProcess``) placed with the step's resource requests (``resources.properties``:
``num_cpus`` (default 1), ``num_gpus``, ``memory`` in bytes); the actor starts the rendered command through the
shell in its own process group on its node, and the server's waiting thread pulls the step's log from it every
quarter second into the step's log file, so ``job stream`` shows it live. Cancel and timeouts kill the process
group on the node (SIGTERM, then SIGKILL), then the actor; a node lost mid-step fails the step with that reason.

One server process is one Ray driver: all ``type: ray`` computes of a workspace must name the same cluster.
The step's working folder, inputs and outputs are the server's local paths, as for the local executor: the
cluster's nodes must see the server's filesystem (a local Ray, or nodes sharing the workspace folder).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlyard.core.errors import InvalidRequestError
from mlyard.jobs.executors import SHELL, Handle, Launch, Outcome, kill_group

POLL_S = 0.25
KILL_GRACE_S = 3.0
LOG_CHUNK = 1 << 20
_driver_lock = threading.Lock()
_driver: dict[str, Any] = {}  # address -> the address this process's Ray driver is connected to


def ray_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


class StepProcess:
    """Runs on a Ray node (as an actor): one step's shell process, its log and its end."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        fd, self.log = tempfile.mkstemp(prefix="mlyard-ray-step-", suffix=".log")
        os.close(fd)

    def start(self, command: str, cwd: str, env: dict[str, str]) -> tuple[int, str, str]:
        """Start the command; its pid, and the node it runs on (its IP address and Ray node id)."""
        import ray

        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - the user's own command, run as the user asked
                [SHELL, "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        # the IP alone does not tell nodes apart where several share a machine (or a host network)
        node_ip = str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]
        return self.proc.pid, node_ip, str(ray.get_runtime_context().get_node_id())

    def read(self, offset: int) -> bytes:
        with open(self.log, "rb") as f:
            f.seek(offset)
            return f.read(LOG_CHUNK)

    def poll(self) -> int | None:
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            kill_group(self.proc.pid)  # what the shell left behind in its group goes with it
        return code

    def stop(self) -> int | None:
        """SIGTERM to the group, SIGKILL after a grace period."""
        assert self.proc is not None
        kill_group(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        kill_group(self.proc.pid, signal.SIGKILL)
        try:
            return self.proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        try:
            os.unlink(self.log)
        except OSError:
            pass


@dataclass
class RayRemote:
    actor: Any
    log_path: Any
    offset: int = 0


def _actor_class() -> Any:
    import ray

    with _driver_lock:
        if "actor" not in _driver:
            _driver["actor"] = ray.remote(StepProcess)
        return _driver["actor"]


def connect(address: str) -> None:
    """Make this process a driver of the Ray cluster at ``address`` (``local``: start one here), once."""
    import ray

    with _driver_lock:
        current = _driver.get("address")
        if current == address and ray.is_initialized():
            return
        if current is not None and ray.is_initialized():
            raise InvalidRequestError(
                f"this mlyard server already drives the Ray cluster {current!r}; every compute of type ray in a "
                f"workspace must name the same cluster (not {address!r})", details={"field": "address"})
        if address == "local":
            _start_local()
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        _driver["address"] = address


def _start_local() -> None:
    """Start a local Ray head from a thread that lives as long as the server.

    Ray ties its head processes to their parent with PR_SET_PDEATHSIG, which the kernel fires when the
    *thread* that started them ends: started from a step's thread, the head would be killed with it.
    """
    import ray

    started = threading.Event()
    failed: list[BaseException] = []
    _driver["stop"] = stop = threading.Event()

    def hold() -> None:
        try:
            # address="local": always a new head of our own; with no address Ray joins any cluster already
            # running on this machine (another workspace's, or a `ray start` by hand)
            ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failed.append(exc)
            started.set()
            return
        started.set()
        stop.wait()

    threading.Thread(target=hold, name="ray-head", daemon=True).start()
    started.wait()
    if failed:
        raise InvalidRequestError(f"could not start a local Ray: {failed[0]}") from failed[0]


def disconnect() -> None:
    """Leave the cluster; a local Ray started here stops with it."""
    import ray

    with _driver_lock:
        if ray.is_initialized():
            ray.shutdown()
        _driver.pop("address", None)
        if (stop := _driver.pop("stop", None)) is not None:
            stop.set()


def actor_options(resources: Mapping[str, Any] | None) -> dict[str, Any]:
    """Ray placement options from a step's ``resources.properties``."""
    props = dict((resources or {}).get("properties") or {})
    options: dict[str, Any] = {"num_cpus": 1, "max_restarts": 0, "max_task_retries": 0}
    for key in ("num_cpus", "num_gpus", "memory"):
        if key in props:
            value = props[key]
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise InvalidRequestError(f"resources.properties.{key} must be a number >= 0, not {value!r}",
                                          details={"field": f"resources.properties.{key}"})
            options[key] = value
    return options


class RayExecutor:
    """Steps of one ``type: ray`` compute: at most ``max_parallel`` at once, each a Ray actor."""

    def __init__(self, name: str, address: str, max_parallel: int) -> None:
        self.name = name
        self.address = address
        self.max_parallel = max(1, max_parallel)
        self.slots = threading.BoundedSemaphore(self.max_parallel)

    def start(self, launch: Launch) -> Handle:
        """Place the step's actor and start its process; an ``InvalidRequestError`` says why it cannot run."""
        if not ray_available():
            raise InvalidRequestError(f"compute {self.name!r} is a Ray cluster, and this server has no Ray: "
                                      "pip install 'mlyard[ray]'", details={"compute": self.name})
        import ray

        options = actor_options(launch.resources)
        try:
            connect(self.address)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise InvalidRequestError(f"compute {self.name!r}: could not reach the Ray cluster at {self.address!r}: "
                                      f"{str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}",
                                      details={"compute": self.name}) from None
        have = ray.cluster_resources()  # type: ignore[no-untyped-call]
        for key, ray_key in (("num_cpus", "CPU"), ("num_gpus", "GPU"), ("memory", "memory")):
            if options.get(key, 0) > have.get(ray_key, 0):
                raise InvalidRequestError(
                    f"compute {self.name!r}: the step asks for {key}={options[key]} and the whole Ray cluster has "
                    f"{have.get(ray_key, 0):g} {ray_key}; lower resources.properties.{key} or add nodes",
                    details={"compute": self.name})
        launch.log.parent.mkdir(parents=True, exist_ok=True)
        actor = _actor_class().options(**options).remote()
        # the cluster's address, for a step that places work of its own on it (the batch engine's workers)
        env = {**dict(launch.env), "MLYARD_COMPUTE": self.name,
               "MLYARD_RAY_ADDRESS": str(ray.get_runtime_context().gcs_address)}
        pid, node_ip, node_id = ray.get(actor.start.remote(launch.command, str(launch.cwd), env))
        with launch.log.open("ab") as log:
            log.write(f"[mlyard] compute {self.name}: Ray actor on node {node_ip} (node id {node_id}), pid {pid}, "
                      f"{', '.join(f'{k}={v}' for k, v in options.items() if k.startswith(('num_', 'mem')))}\n"
                      .encode())
        return Handle(pid=pid, proc=None, remote=RayRemote(actor, launch.log))

    def wait(self, handle: Handle, timeout_s: int | None) -> Outcome:
        import ray

        remote: RayRemote = handle.remote
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while True:
                code = ray.get(remote.actor.poll.remote())
                self._pull_log(remote)
                if code is not None:
                    self._pull_log(remote, to_end=True)
                    return Outcome(code, canceled=handle.canceled.is_set())
                if handle.canceled.is_set():
                    return Outcome(None, canceled=True)
                if deadline is not None and time.monotonic() > deadline:
                    self._stop(remote)
                    return Outcome(None, timed_out=True)
                time.sleep(POLL_S)
        except ray.exceptions.RayActorError:
            reason = "the Ray node or actor running the step was lost (its node died, or it was killed)"
            reason += "; its outputs were not recorded: run the job again (completed steps are reused)"
            with open(remote.log_path, "ab") as log:
                log.write(f"\n[mlyard] {reason}\n".encode())
            return Outcome(None, canceled=handle.canceled.is_set(), lost=reason)
        finally:
            self._release(remote)

    def cancel(self, handle: Handle) -> None:
        handle.canceled.set()
        if handle.remote is not None:
            self._stop(handle.remote)

    @staticmethod
    def _stop(remote: RayRemote) -> None:
        import ray

        try:
            ray.get(remote.actor.stop.remote(), timeout=KILL_GRACE_S * 3)
        except Exception:  # noqa: BLE001 - the actor may be gone already; then so is its process
            pass

    @staticmethod
    def _pull_log(remote: RayRemote, to_end: bool = False) -> None:
        import ray

        while True:
            data = ray.get(remote.actor.read.remote(remote.offset))
            if data:
                with open(remote.log_path, "ab") as log:
                    log.write(data)
                remote.offset += len(data)
            if not to_end or len(data) < LOG_CHUNK:
                return

    @staticmethod
    def _release(remote: RayRemote) -> None:
        import ray

        try:
            ray.get(remote.actor.close.remote(), timeout=5)
        except Exception:  # noqa: BLE001 - a lost actor has nothing to clean
            pass
        ray.kill(remote.actor)
