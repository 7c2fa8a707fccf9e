"""Worker pools: where mini-batches run. The engine sees only :class:`WorkerPool`; :class:`LocalProcessPool` runs
``python -m mlyard.serving.batch.worker`` children on this machine (``ray_pool.RayWorkerPool`` runs them on the
nodes of a Ray cluster, each inside a Ray actor).

A worker holds at most one task at a time. Every worker announces itself (:class:`Ready` or :class:`InitFailed`);
each task ends in :class:`Done`, :class:`Failed` (``run()`` raised) or :class:`Exited` (the process died with it).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

READ_CHUNK = 1 << 16
CLOSE_WAIT_S = 5


@dataclass(frozen=True, slots=True)
class Task:
    """One attempt at scoring ``files``; a successful attempt's rows are in ``part`` (None: summary_only)."""

    id: int
    files: tuple[str, ...]
    part: str | None
    label: str = ""  # how the worker's log names it: "mini-batch 3", "mini-batch 3, file 2 alone"


@dataclass(frozen=True, slots=True)
class Ready:
    worker: int


@dataclass(frozen=True, slots=True)
class InitFailed:
    worker: int
    error: str


@dataclass(frozen=True, slots=True)
class Done:
    worker: int
    task: int
    rows: int
    failed: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Failed:
    worker: int
    task: int
    error: str


@dataclass(frozen=True, slots=True)
class Exited:
    """A ready worker's process ended; ``task`` is the one it held (None when idle)."""

    worker: int
    task: int | None
    reason: str


Event = Ready | InitFailed | Done | Failed | Exited


class WorkerPool(Protocol):
    """Runs tasks on ``size`` workers, each loading the script or model once."""

    size: int

    def start(self) -> None:
        """Start every worker; each reports :class:`Ready` or :class:`InitFailed` through :meth:`poll`."""

    def submit(self, worker: int, task: Task) -> None:
        """Give ``task`` to ``worker``, which must be ready and idle."""

    def poll(self, timeout: float) -> list[Event]:
        """Wait up to ``timeout`` seconds for events; return them (possibly none)."""

    def restart(self, worker: int) -> None:
        """Kill ``worker`` (its task is dropped without an event) and start a fresh one, which reports again."""

    def kill(self, worker: int) -> None:
        """Kill ``worker`` for good; no event follows."""

    def close(self) -> None:
        """Stop every worker."""


@dataclass
class _Slot:
    process: subprocess.Popen[bytes]
    stdin: IO[bytes]
    buffer: bytes = b""
    ready: bool = False
    init_reported: bool = False
    task: int | None = None


class LocalProcessPool:
    """Worker processes on this machine, driven over JSON lines on their stdin and stdout.

    Args:
        size: how many workers.
        command: the worker's command line (``python -m mlyard.serving.batch.worker ...``), ``--worker-id`` added.
        env: the workers' environment.
        cwd: their working directory.
        log: the file descriptor their stdout and stderr go to (the job log).
    """

    def __init__(self, size: int, command: Sequence[str], env: dict[str, str], cwd: Path, log: int) -> None:
        self.size = size
        self.command = list(command)
        self.env = env
        self.cwd = cwd
        self.log = log
        self._slots: dict[int, _Slot] = {}
        self._selector = selectors.DefaultSelector()

    def start(self) -> None:
        for worker in range(self.size):
            self._spawn(worker)

    def _spawn(self, worker: int) -> None:
        process = subprocess.Popen([*self.command, "--worker-id", str(worker)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=self.log, env=self.env, cwd=self.cwd,
                                   start_new_session=True)  # its own group: a timeout kills what run() spawned
        assert process.stdin is not None and process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        self._slots[worker] = _Slot(process, process.stdin)
        self._selector.register(process.stdout, selectors.EVENT_READ, worker)

    def submit(self, worker: int, task: Task) -> None:
        slot = self._slots[worker]
        assert slot.ready and slot.task is None, f"worker {worker} is not idle"
        slot.task = task.id
        line = json.dumps({"task": task.id, "files": list(task.files), "part": task.part, "label": task.label})
        line += "\n"
        try:
            slot.stdin.write(line.encode())
            slot.stdin.flush()
        except BrokenPipeError:
            pass  # it died; its end of file reaches poll() as Exited with this task

    def poll(self, timeout: float) -> list[Event]:
        events: list[Event] = []
        for key, _ in self._selector.select(timeout):
            worker = key.data
            slot = self._slots.get(worker)
            if slot is None:
                continue
            chunk = os.read(key.fd, READ_CHUNK)
            if not chunk:
                events.extend(self._ended(worker, slot))
                continue
            slot.buffer += chunk
            *lines, slot.buffer = slot.buffer.split(b"\n")
            events.extend(self._event(worker, slot, json.loads(line)) for line in lines if line.strip())
        return events

    def _event(self, worker: int, slot: _Slot, message: dict[str, object]) -> Event:
        return decode_event(worker, slot, message)

    def _ended(self, worker: int, slot: _Slot) -> list[Event]:
        self._forget(worker, slot)
        try:
            code = slot.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill(slot.process)
            code = slot.process.wait()
        return ended_events(worker, slot, f"the worker {describe_exit(code)}")

    def _forget(self, worker: int, slot: _Slot) -> None:
        assert slot.process.stdout is not None
        self._selector.unregister(slot.process.stdout)
        slot.process.stdout.close()
        try:
            slot.stdin.close()
        except BrokenPipeError:
            pass
        del self._slots[worker]

    def restart(self, worker: int) -> None:
        self.kill(worker)
        self._spawn(worker)

    def kill(self, worker: int) -> None:
        slot = self._slots.get(worker)
        if slot is None:
            return
        self._forget(worker, slot)
        _kill(slot.process)
        slot.process.wait()

    def close(self) -> None:
        processes = [slot.process for slot in self._slots.values()]
        for worker, slot in list(self._slots.items()):
            self._forget(worker, slot)  # the end of its stdin ends an idle worker
        for process in processes:
            try:
                process.wait(timeout=CLOSE_WAIT_S)
            except subprocess.TimeoutExpired:  # still busy: its task is abandoned
                _kill(process)
                process.wait()
        self._selector.close()

    def live(self) -> int:
        """How many workers are running (started, not yet ended)."""
        return len(self._slots)


class WorkerState(Protocol):
    """What a pool knows of one worker: whether it announced itself, and the task it holds."""

    ready: bool
    init_reported: bool
    task: int | None


def decode_event(worker: int, state: WorkerState, message: dict[str, object]) -> Event:
    """The event one line of the worker's protocol stands for; ``state`` follows it."""
    kind = message["event"]
    if kind == "ready":
        state.ready = True
        return Ready(worker)
    if kind == "init_failed":
        state.init_reported = True
        return InitFailed(worker, str(message["error"]))
    state.task = None
    task = int(str(message["task"]))
    if kind == "done":
        failed = message.get("failed") or []
        assert isinstance(failed, list)
        return Done(worker, task, int(str(message["rows"])), tuple((str(f), str(r)) for f, r in failed))
    return Failed(worker, task, str(message["error"]))


def ended_events(worker: int, state: WorkerState, reason: str) -> list[Event]:
    """What the end of a worker's process means: an init that failed, or a ready worker gone with its task."""
    if not state.ready:
        return [] if state.init_reported else [InitFailed(worker, f"{reason} before it was ready")]
    return [Exited(worker, state.task, reason)]


def _kill(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()


def describe_exit(code: int) -> str:
    """``exited with code 3`` or ``was killed by SIGKILL`` (the kernel's out-of-memory killer sends SIGKILL)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"
