"""Executors: where a step's process runs.

The local executor starts the rendered command through the shell in its own process group, so a
cancel, a timeout or a server restart can end the whole tree. Each executor has a bound on how many
steps it runs at once (a named compute's ``max_instances``; the machine's cores for ``local``). The
Ray executor (``ray_executor.py``) implements the same ``Executor`` protocol for ``type: ray`` computes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

SHELL = shutil.which("bash") or "/bin/sh"
KILL_GRACE_S = 3.0


@dataclass
class Launch:
    """Everything needed to start one step's process."""

    job: str
    command: str
    cwd: Path
    env: Mapping[str, str]
    log: Path
    timeout_s: int | None = None
    resources: Mapping[str, Any] | None = None  # the step's ``resources`` (a Ray executor places by them)
    # a distributed step whose instances the executor places on nodes of their own (``command`` is the user's own)
    distribution: Mapping[str, Any] | None = None


@dataclass
class Outcome:
    exit_code: int | None
    timed_out: bool = False
    canceled: bool = False
    reason: str | None = None  # why it failed where an exit code alone does not say (a Ray node gone, say)


@dataclass
class Handle:
    """A started process; ``pid`` is also its process group (on the node that runs it)."""

    pid: int
    proc: subprocess.Popen[bytes] | None  # a local child; None where another executor holds the process
    canceled: threading.Event = field(default_factory=threading.Event)
    remote: Any = None  # what a remote executor keeps to reach the process (the Ray executor's actor)


class Executor(Protocol):
    name: str
    slots: threading.BoundedSemaphore

    def start(self, launch: Launch) -> Handle: ...

    def wait(self, handle: Handle, timeout_s: int | None) -> Outcome: ...

    def cancel(self, handle: Handle) -> None: ...


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a whole process group; False when it is already gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class LocalExecutor:
    """Runs steps as child processes of the server, at most ``max_parallel`` at once."""

    def __init__(self, name: str = "local", max_parallel: int | None = None) -> None:
        self.name = name
        self.max_parallel = max(1, max_parallel or os.cpu_count() or 1)
        self.slots = threading.BoundedSemaphore(self.max_parallel)

    def start(self, launch: Launch) -> Handle:
        launch.log.parent.mkdir(parents=True, exist_ok=True)
        with launch.log.open("ab") as log:
            proc = subprocess.Popen(  # noqa: S603 - the user's own command, run as the user asked
                [SHELL, "-c", launch.command], cwd=launch.cwd, env=dict(launch.env), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return Handle(pid=proc.pid, proc=proc)

    def wait(self, handle: Handle, timeout_s: int | None) -> Outcome:
        assert handle.proc is not None
        try:
            code = handle.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._stop(handle)
            return Outcome(handle.proc.returncode, timed_out=True)
        if handle.canceled.is_set():
            return Outcome(code, canceled=True)
        # the shell is gone; anything it left behind in the group goes with it
        kill_group(handle.pid)
        return Outcome(code)

    def cancel(self, handle: Handle) -> None:
        handle.canceled.set()
        self._stop(handle)

    @staticmethod
    def _stop(handle: Handle) -> None:
        """SIGTERM to the group, SIGKILL after a grace period."""
        assert handle.proc is not None
        kill_group(handle.pid, signal.SIGTERM)
        try:
            handle.proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        kill_group(handle.pid, signal.SIGKILL)
        try:
            handle.proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            pass


def leftover_processes(jobs: set[str]) -> dict[int, str]:
    """Processes still running a step of one of ``jobs``, found by the ``MLYARD_JOB_NAME`` in their environment.

    A step's process group leader (the shell) may be gone while its children live on, so every
    process is looked at, not only the recorded group. Linux only (``/proc``); elsewhere, empty.
    """
    found: dict[int, str] = {}
    if not jobs or not os.path.isdir("/proc"):
        return found
    wanted = {f"MLYARD_JOB_NAME={j}".encode(): j for j in jobs}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item in wanted:
                found[int(entry)] = wanted[item]
                break
    return found
