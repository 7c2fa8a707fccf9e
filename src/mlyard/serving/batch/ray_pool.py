"""Batch workers on a Ray cluster: the :class:`WorkerPool` the engine uses when it runs as a step on a ``type: ray``
compute (the Ray executor gives the step the cluster's address in ``MLYARD_RAY_ADDRESS``).

Each worker is a Ray actor (:class:`WorkerHost`) that starts ``python -m mlyard.serving.batch.worker`` on its node
and relays the JSON lines of its protocol and its log; the engine, its retries and thresholds are unchanged. The
workers are spread over ``instance_count`` nodes of the cluster (nodes that have CPUs, taken in turn), and hold no
Ray CPU themselves: the step running the engine holds its own. A node lost with a worker is that worker's end, as a
process that died: its mini-batch is retried by the engine's rules, and the worker started again moves, with its
instance, to a node still there.

The command, its working folder and the model are the engine's paths: the nodes must see them (as for every step
on a Ray compute, ``docs/scaleout.md``).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlyard.serving.batch.pool import Event, Task, decode_event, describe_exit, ended_events

READ_WAIT_S = 0.2  # a worker host waits this long for lines before it answers (and a task is sent after)
READ_CHUNK = 1 << 16
CLOSE_WAIT_S = 5


class WorkerHost:
    """Runs on a Ray node (as an actor): one batch worker process, its protocol lines and its log."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        fd, self.log = tempfile.mkstemp(prefix="mlyard-batch-worker-", suffix=".log")
        os.close(fd)
        self.buffer = b""
        self.log_offset = 0

    def start(self, command: list[str], env: dict[str, str], cwd: str) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - mlyard's own worker command
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, cwd=cwd,
                start_new_session=True)  # its own group: a kill takes what run() spawned with it
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)

    def send(self, line: bytes) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # it died; its end of file reaches read() with this task

    def read(self, wait_s: float) -> tuple[list[str], bytes, int | None]:
        """Protocol lines that arrived within ``wait_s``, the log written since, and the exit code once ended."""
        assert self.proc is not None and self.proc.stdout is not None
        code = None
        ready, _, _ = select.select([self.proc.stdout], [], [], wait_s)
        if ready:
            while True:
                try:
                    chunk = os.read(self.proc.stdout.fileno(), READ_CHUNK)
                except BlockingIOError:
                    break
                if not chunk:
                    try:
                        code = self.proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        code = self._kill()
                    break
                self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [line.decode() for line in lines if line.strip()], self._log_since(), code

    def end(self, wait_s: float) -> bytes:
        """End of input ends an idle worker; a busy one is killed after ``wait_s``. The log's last lines."""
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            self._kill()
        return self._log_since(last=True)

    def kill(self) -> bytes:
        """SIGKILL to the worker's group; the log's last lines."""
        self._kill()
        return self._log_since(last=True)

    def _kill(self) -> int:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self.proc.kill()
        return self.proc.wait()

    def _log_since(self, last: bool = False) -> bytes:
        with open(self.log, "rb") as f:
            f.seek(self.log_offset)
            data = f.read()
        self.log_offset += len(data)
        if last:
            os.unlink(self.log)
        return data


@dataclass
class _Slot:
    actor: Any
    node: str
    pending: Any  # the read in flight
    ready: bool = False
    init_reported: bool = False
    task: int | None = None


class RayWorkerPool:
    """Batch workers as Ray actors spread over ``instances`` nodes of the cluster at ``address``.

    Args:
        size: how many workers (``instance_count`` x ``max_concurrency_per_instance``, at most one per mini-batch).
        command: the worker's command line, ``--worker-id`` added.
        env: the workers' environment.
        cwd: their working directory.
        log: the file descriptor their logs are written to (the job log).
        address: the Ray cluster's address.
        instances: over how many nodes to spread the workers.
    """

    def __init__(self, size: int, command: Sequence[str], env: dict[str, str], cwd: Path, log: int, address: str,
                 instances: int) -> None:
        self.size = size
        self.command = list(command)
        self.env = env
        self.cwd = cwd
        self.log = log
        self.address = address
        self.instances = max(1, instances)
        self._slots: dict[int, _Slot] = {}
        self._nodes: list[str] = []
        self._lost: set[str] = set()
        self._host: Any = None

    def connect(self) -> None:
        """Join the cluster and choose the nodes; RuntimeError or ConnectionError where it cannot be used."""
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        nodes = _cpu_nodes()
        if not nodes:
            raise RuntimeError(f"the Ray cluster at {self.address} has no node with CPUs to run batch workers on")
        self._nodes = [nodes[i % len(nodes)] for i in range(self.instances)]
        if self.instances > len(nodes):
            self._say(f"instance_count {self.instances} is more than the Ray cluster's {len(nodes)} node(s) with "
                      "CPUs: some nodes hold the workers of several instances")
        self._host = ray.remote(WorkerHost)

    def start(self) -> None:
        if self._host is None:
            self.connect()
        for worker in range(self.size):
            self._spawn(worker)

    def _spawn(self, worker: int) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node = self._nodes[worker % len(self._nodes)]
        actor = self._host.options(num_cpus=0, max_restarts=0, max_task_retries=0,
                                   scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote()
        actor.start.remote([*self.command, "--worker-id", str(worker)], self.env, str(self.cwd))
        # an actor runs its calls in order: the read after the start
        self._slots[worker] = _Slot(actor, node, actor.read.remote(READ_WAIT_S))
        self._say(f"batch worker {worker} on Ray node {node}")

    def submit(self, worker: int, task: Task) -> None:
        slot = self._slots[worker]
        assert slot.ready and slot.task is None, f"worker {worker} is not idle"
        slot.task = task.id
        line = json.dumps({"task": task.id, "files": list(task.files), "part": task.part, "label": task.label})
        slot.actor.send.remote((line + "\n").encode())

    def poll(self, timeout: float) -> list[Event]:
        import ray

        pending = {slot.pending: worker for worker, slot in self._slots.items()}
        if not pending:
            time.sleep(timeout)
            return []
        done, rest = ray.wait(list(pending), num_returns=1, timeout=timeout)
        if done and rest:
            done += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        events: list[Event] = []
        for ref in done:
            worker = pending[ref]
            slot = self._slots[worker]
            try:
                lines, log, code = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the node or the actor is gone, and the worker with it
                self._forget(worker)
                self._lost.add(slot.node)  # before Ray marks a lost node dead, it still looks alive
                events.extend(ended_events(worker, slot, "the worker was lost with its Ray node or actor "
                                                         f"({exc.__class__.__name__})"))
                continue
            self._write(log)
            events.extend(decode_event(worker, slot, json.loads(line)) for line in lines)
            if code is not None:
                self._forget(worker)
                self._write(self._last_log(slot))
                events.extend(ended_events(worker, slot, f"the worker {describe_exit(code)}"))
                continue
            slot.pending = slot.actor.read.remote(READ_WAIT_S)
        return events

    def restart(self, worker: int) -> None:
        self.kill(worker)
        instance = worker % len(self._nodes)
        alive = [n for n in _cpu_nodes() if n not in self._lost]
        if self._nodes[instance] not in alive and alive:  # its node is lost: the instance moves to one still there
            self._nodes[instance] = alive[instance % len(alive)]
        self._spawn(worker)

    def kill(self, worker: int) -> None:
        slot = self._forget(worker)
        if slot is None:
            return
        self._write(self._last_log(slot))

    @staticmethod
    def _last_log(slot: _Slot) -> bytes:
        """Kill the worker's process group, then its actor; what it logged since the last read."""
        import ray

        try:
            data: bytes = ray.get(slot.actor.kill.remote(), timeout=30)
        except ray.exceptions.RayError:
            data = b""  # gone already, with its process
        ray.kill(slot.actor)
        return data

    def close(self) -> None:
        import ray

        slots = [self._slots.pop(w) for w in list(self._slots)]
        ends = [slot.actor.end.remote(CLOSE_WAIT_S) for slot in slots]
        for ref in ends:
            try:
                self._write(ray.get(ref, timeout=CLOSE_WAIT_S + 30))
            except ray.exceptions.RayError:
                pass
        for slot in slots:
            ray.kill(slot.actor)
        ray.shutdown()

    def live(self) -> int:
        """How many workers are running (started, not yet ended)."""
        return len(self._slots)

    def _forget(self, worker: int) -> _Slot | None:
        return self._slots.pop(worker, None)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.log, view):]

    def _say(self, line: str) -> None:
        self._write(f"[mlyard] {line}\n".encode())


def _cpu_nodes() -> list[str]:
    """The ids of the cluster's live nodes that have CPUs (a head started with none runs no worker), sorted."""
    import ray

    return sorted(str(n["NodeID"]) for n in ray.nodes() if n.get("Alive")  # type: ignore[no-untyped-call]
                  and n.get("Resources", {}).get("CPU", 0) > 0)
