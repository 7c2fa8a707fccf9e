"""The Ray executor: a step's process runs on a Ray cluster, inside a Ray actor that holds it.

``mlyard compute create`` with ``type: ray`` names a cluster by ``address``: ``local`` (mlyard starts a Ray head
on this machine when a step first needs it, and stops it with the server), or the address of an existing cluster
(``ray://head:10001``, ``head:6379``, ``auto``), with its token in ``RAY_AUTH_TOKEN`` where the cluster wants one.

Each step becomes one actor (``StepProcess``) placed with the step's resource requests (``resources.properties``:
``num_cpus`` (default 1), ``num_gpus``, ``memory`` in bytes); the actor starts the rendered command through the
shell in its own process group on its node, and the server's waiting thread pulls the step's log from it every
quarter second into the step's log file, so ``job stream`` shows it live. Cancel and timeouts kill the process
group on the node (SIGTERM, then SIGKILL), then the actor; a node lost mid-step fails the step with that reason.
A distributed step of several instances (``ray_instances.py``) is one actor per instance, each on a node of its
own; the first instance to fail, or to be lost with its node, stops the others and fails the step.

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
from mlyard.jobs import ray_instances
from mlyard.jobs.distribution import free_ports
from mlyard.jobs.executors import SHELL, Handle, Launch, Outcome, kill_group

POLL_S = 0.25
KILL_GRACE_S = 3.0
LOG_CHUNK = 1 << 20
PLACE_TRIES = 3
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
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - the user's own command, run as the user asked
                [SHELL, "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        # the IP alone does not tell nodes apart where several share a machine (or a host network)
        return self.proc.pid, *self.node()

    def node(self) -> tuple[str, str]:
        """This actor's node: its IP address (as its peers reach it) and its Ray node id."""
        import ray

        return str(ray.util.get_node_ip_address()), str(ray.get_runtime_context().get_node_id())  # type: ignore[no-untyped-call]

    def free_ports(self, count: int) -> list[int]:
        return free_ports(count, self.node()[0])

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
class Instance:
    """One actor of a step and how far its log has been copied; ``label`` names it among several."""

    actor: Any
    label: str = ""
    offset: int = 0


@dataclass
class RayRemote:
    instances: list[Instance]
    log_path: Any
    group: Any = None  # the placement group of a distributed step's instances


class InstanceLostError(Exception):
    """An instance's actor is gone (its node died, or it was killed): ends the step's wait."""

    def __init__(self, instance: Instance) -> None:
        super().__init__(instance.label)
        self.instance = instance


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
        # the cluster's address, for a step that places work of its own on it (the batch engine's workers)
        env = {**dict(launch.env), "MLYARD_COMPUTE": self.name,
               "MLYARD_RAY_ADDRESS": str(ray.get_runtime_context().gcs_address)}
        for attempt in range(1, PLACE_TRIES + 1):
            try:
                return self._place(launch, options, env)
            except ray.exceptions.RayActorError as exc:
                # a node that died a moment ago can still be chosen until Ray notices; the step never ran there
                why = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
                if attempt == PLACE_TRIES:
                    raise InvalidRequestError(f"compute {self.name!r}: the Ray node chosen for the step was lost "
                                              f"before it started, {PLACE_TRIES} times ({why})",
                                              details={"compute": self.name}) from None
                with launch.log.open("ab") as log:
                    log.write(f"[mlyard] compute {self.name}: the Ray node chosen for the step was lost before it "
                              f"started ({why}); placing it again\n".encode())
        raise AssertionError("unreachable")

    def _place(self, launch: Launch, options: dict[str, Any], env: dict[str, str]) -> Handle:
        import ray

        asked = ', '.join(f'{k}={v}' for k, v in options.items() if k.startswith(('num_', 'mem')))
        if launch.distribution is not None and ray_instances.spreads(launch.distribution, launch.resources):
            placed = ray_instances.place(self.name, launch, options, env, _actor_class())
            n = len(placed.actors)
            remote = RayRemote([], launch.log, placed.group)
            with launch.log.open("ab") as log:
                for i, (actor, (pid, node_ip, node_id)) in enumerate(zip(placed.actors, placed.starts, strict=True)):
                    remote.instances.append(Instance(actor, f"instance {i} of {n} (Ray node {node_id})"))
                    log.write(f"[mlyard] compute {self.name}: Ray actor on node {node_ip} (node id {node_id}), pid "
                              f"{pid}, {asked}; instance {i} of {n}\n".encode())
            return Handle(pid=placed.starts[0][0], proc=None, remote=remote)
        actor = _actor_class().options(**options).remote()
        try:
            pid, node_ip, node_id = ray.get(actor.start.remote(launch.command, str(launch.cwd), env))
        except ray.exceptions.RayActorError:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001, S110 - gone with its node already
                pass
            raise
        with launch.log.open("ab") as log:
            log.write(f"[mlyard] compute {self.name}: Ray actor on node {node_ip} (node id {node_id}), pid {pid}, "
                      f"{asked}\n".encode())
        return Handle(pid=pid, proc=None, remote=RayRemote([Instance(actor)], launch.log))

    def wait(self, handle: Handle, timeout_s: int | None) -> Outcome:
        remote: RayRemote = handle.remote
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while True:
                codes = [self._call(i, "poll") for i in remote.instances]
                self._pull_logs(remote)
                failed = next(((i, c) for i, c in zip(remote.instances, codes, strict=True) if c not in (None, 0)),
                              None)
                if failed is not None and len(remote.instances) > 1 and not handle.canceled.is_set():
                    self._stop(remote)
                    self._pull_logs(remote, to_end=True)
                    reason = f"{failed[0].label} exited with code {failed[1]}; the other instances were stopped"
                    self._note(remote, reason)
                    return Outcome(failed[1], canceled=handle.canceled.is_set(), reason=reason)
                if all(c is not None for c in codes):
                    self._pull_logs(remote, to_end=True)
                    return Outcome(failed[1] if failed else 0, canceled=handle.canceled.is_set())
                if handle.canceled.is_set():
                    return Outcome(None, canceled=True)
                if deadline is not None and time.monotonic() > deadline:
                    self._stop(remote)
                    return Outcome(None, timed_out=True)
                time.sleep(POLL_S)
        except InstanceLostError as lost:
            if len(remote.instances) > 1:
                self._stop(remote)
                try:
                    self._pull_logs(remote, to_end=True, skip=lost.instance)
                except InstanceLostError:  # another node went too: what it logged is gone with it
                    pass
                what = f"the Ray node or actor running {lost.instance.label} was lost"
                after = "; the other instances were stopped"
            else:
                what, after = "the Ray node or actor running the step was lost", ""
            reason = f"{what} (its node died, or it was killed){after}"
            reason += "; its outputs were not recorded: run the job again (completed steps are reused)"
            self._note(remote, reason)
            return Outcome(None, canceled=handle.canceled.is_set(), reason=reason)
        finally:
            self._release(remote)

    def cancel(self, handle: Handle) -> None:
        handle.canceled.set()
        if handle.remote is not None:
            self._stop(handle.remote)

    @staticmethod
    def _call(instance: Instance, method: str, *args: Any) -> Any:
        import ray

        try:
            return ray.get(getattr(instance.actor, method).remote(*args))
        except ray.exceptions.RayActorError:
            raise InstanceLostError(instance) from None

    @staticmethod
    def _note(remote: RayRemote, line: str) -> None:
        with open(remote.log_path, "ab") as log:
            log.write(f"\n[mlyard] {line}\n".encode())

    @staticmethod
    def _stop(remote: RayRemote) -> None:
        """Stop every instance's processes at once (each waits out its own grace period)."""
        import ray

        refs = []
        for instance in remote.instances:
            try:
                refs.append(instance.actor.stop.remote())
            except Exception:  # noqa: BLE001, S112 - the actor may be gone already; then so is its process
                continue
        for ref in refs:
            try:
                ray.get(ref, timeout=KILL_GRACE_S * 3)
            except Exception:  # noqa: BLE001, S112 - as above
                continue

    @classmethod
    def _pull_logs(cls, remote: RayRemote, to_end: bool = False, skip: Instance | None = None) -> None:
        """Copy what each instance logged since the last pull into the step's log.

        Several instances' logs are copied whole lines at a time (all of it at the end), so that their lines do
        not cut into each other; a single instance's log is copied as it comes.
        """
        whole_lines = len(remote.instances) > 1
        for instance in remote.instances:
            if instance is skip:
                continue
            while True:
                data = cls._call(instance, "read", instance.offset)
                full = len(data) == LOG_CHUNK
                if whole_lines and not to_end:
                    data = data[:data.rfind(b"\n") + 1]
                if data:
                    with open(remote.log_path, "ab") as log:
                        log.write(data)
                    instance.offset += len(data)
                if not to_end or not full:
                    break

    @staticmethod
    def _release(remote: RayRemote) -> None:
        import ray

        for instance in remote.instances:
            try:
                ray.get(instance.actor.close.remote(), timeout=5)
            except Exception:  # noqa: BLE001, S110 - a lost actor has nothing to clean
                pass
            ray.kill(instance.actor)
        if remote.group is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(remote.group)
