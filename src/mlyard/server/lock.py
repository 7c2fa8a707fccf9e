"""One server per workspace: an exclusive lock on ``<workspace>/.mlyard/server.lock``.

The server takes the lock (``flock``) before it opens the store or starts the job runner, and holds
it for its whole life; the kernel releases it when the process ends, however it ends, so a server
killed with ``kill -9`` never leaves a stale lock behind. While it holds the lock the file says what
is running where (pid, URL, start time). A pid alone proves nothing (pids are reused): the lock file
is trusted only while its lock is held, which is what :func:`running_server` checks.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlyard.core.errors import ConflictError
from mlyard.core.settings import STATE_DIR

LOCK_FILE = "server.lock"
# A probe (server status/stop) holds the lock for microseconds; a starting server waits that long.
_ACQUIRE_RETRY_S = 2.0


@dataclass(frozen=True)
class ServerInfo:
    """What the lock holder wrote: which process serves the workspace, and where."""

    pid: int | None
    url: str
    started: str
    workspace: str

    def describe(self) -> str:
        pid = f"pid {self.pid}" if self.pid is not None else "pid unknown"
        return f"{pid} at {self.url or 'an unknown address'} (started {self.started or 'at an unknown time'})"


def lock_path(workspace: Path) -> Path:
    return workspace / STATE_DIR / LOCK_FILE


def _try_lock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_info(path: Path, workspace: Path) -> ServerInfo:
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    pid = data.get("pid")
    return ServerInfo(pid if isinstance(pid, int) else None, str(data.get("url") or ""),
                      str(data.get("started") or ""), str(data.get("workspace") or workspace))


def already_running(info: ServerInfo) -> ConflictError:
    return ConflictError(
        f"a mlyard server is already running for {info.workspace}: {info.describe()}; "
        "stop it with 'mlyard server stop', or use it as it is",
        details={"pid": info.pid, "url": info.url},
    )


class WorkspaceLock:
    """The exclusive lock a server holds on its workspace (released on close or when the process ends)."""

    def __init__(self, workspace: Path, fd: int, info: ServerInfo) -> None:
        self.workspace = workspace
        self.info = info
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, workspace: Path, url: str) -> WorkspaceLock:
        """Take the lock and record this process in it.

        Raises:
            ConflictError: another live server holds the workspace (the message says which and where).
        """
        workspace = workspace.resolve()
        path = lock_path(workspace)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by job processes (PEP 446)
        deadline = time.monotonic() + _ACQUIRE_RETRY_S
        while not _try_lock(fd, fcntl.LOCK_EX):
            if time.monotonic() >= deadline:
                os.close(fd)
                raise already_running(_read_info(path, workspace))
            time.sleep(0.05)
        info = ServerInfo(os.getpid(), url, datetime.now(UTC).isoformat(timespec="seconds"), str(workspace))
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(asdict(info)) + "\n").encode(), 0)
        return cls(workspace, fd, info)

    def release(self) -> None:
        """Say nothing runs here any more, and let go of the lock."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)


def running_server(workspace: Path) -> ServerInfo | None:
    """The server holding ``workspace``'s lock, or None when no live process holds it."""
    workspace = workspace.resolve()
    path = lock_path(workspace)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if _try_lock(fd, fcntl.LOCK_SH):
            return None  # nobody holds it: whatever the file says is history
        return _read_info(path, workspace)
    finally:
        os.close(fd)  # closing drops a probe's shared lock at once
