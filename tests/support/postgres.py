"""A throw-away PostgreSQL server for tests: ``initdb`` in a temp dir, ``postgres`` on a free loopback port."""

from __future__ import annotations

import atexit
import ctypes
import functools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

MIN_MAJOR = 15
SUPERUSER = "mlyard"
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PR_SET_PDEATHSIG = 1


def _major(bindir: Path) -> int:
    """The major version of ``bindir/postgres`` (0 when it is missing or unreadable)."""
    if not ((bindir / "postgres").is_file() and (bindir / "initdb").is_file()):
        return 0
    try:
        out = subprocess.run([bindir / "postgres", "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    match = re.search(r"(\d+)", out)
    return int(match.group(1)) if match else 0


@functools.cache
def find_postgres_bin() -> Path | None:
    """The newest bin dir holding ``initdb`` and ``postgres`` >= 15: Debian's, ``pg_config``'s or PATH's."""
    dirs = set(Path("/usr/lib/postgresql").glob("*/bin"))
    if pg_config := shutil.which("pg_config"):
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10).stdout
            dirs.add(Path(out.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    if on_path := shutil.which("postgres"):
        dirs.add(Path(on_path).resolve().parent)
    best = max(((_major(d), str(d)) for d in dirs), default=(0, ""))
    return Path(best[1]) if best[0] >= MIN_MAJOR else None


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, after it dropped privileges: get SIGINT (fast shutdown) if the test process dies."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


class PostgresServer:
    """One PostgreSQL server owned by the test session; ``stop()`` removes every trace of it."""

    find_postgres_bin = staticmethod(find_postgres_bin)

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_postgres_bin()
        self.port = 0
        self.base: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    @property
    def data_dir(self) -> Path:
        assert self.base is not None, "server not started"
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        assert self.base is not None, "server not started"
        return self.base / "server.log"

    def _as_user(self) -> dict[str, Any]:
        """Popen arguments that drop root to an unprivileged user (PostgreSQL refuses to run as root)."""
        if os.geteuid() != 0:
            return {}
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pw = pwd.getpwnam("nobody")
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C", "HOME": str(self.base)}

    def start(self, timeout: float = 30) -> PostgresServer:
        """initdb into a fresh temp dir and start the server; raises with the log tail if it does not come up."""
        if self.bindir is None:
            raise RuntimeError("PostgreSQL >= 15 binaries not found; run scripts/install-postgres.sh")
        began = time.monotonic()
        self.base = Path(tempfile.mkdtemp(prefix="mlyard-pg-"))
        atexit.register(self.stop)
        try:
            as_user = self._as_user()
            if as_user:
                os.chown(self.base, as_user["user"], as_user["group"])
            init = subprocess.run(
                [self.bindir / "initdb", "-D", self.data_dir, "--auth=trust", "-U", SUPERUSER, "-E", "UTF8",
                 "--no-locale", "--no-sync", "--no-instructions"],
                capture_output=True, text=True, env=self._env(), timeout=120, **as_user)
            if init.returncode != 0:
                raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
            for _attempt in range(5):
                if self._launch(free_port(), as_user, began + timeout):
                    self.startup_seconds = time.monotonic() - began
                    return self
            raise RuntimeError(f"postgres found no free port after 5 tries:\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise

    def _launch(self, port: int, as_user: dict[str, Any], deadline: float) -> bool:
        """Start postgres on ``port``; False when the port was taken meanwhile (the caller retries)."""
        assert self.bindir is not None and self.base is not None
        self.port = port
        with self.log_path.open("ab") as log:
            log_start = log.tell()
            self.proc = subprocess.Popen(
                [self.bindir / "postgres", "-D", self.data_dir, "-p", str(port), "-k", self.base, "-F",
                 "-c", "listen_addresses=127.0.0.1", "-c", "shared_buffers=16MB", "-c", "max_connections=200"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self._env(),
                start_new_session=True, preexec_fn=_die_with_parent, **as_user)
        import psycopg

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                if b"already in use" in self.log_path.read_bytes()[log_start:]:
                    return False
                raise RuntimeError(f"postgres exited at start-up:\n{self.log_tail()}")
            try:  # via our own unix socket: a foreign listener on the TCP port cannot answer there
                psycopg.connect(self.conninfo(host=str(self.base)), connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        raise RuntimeError(f"postgres did not accept connections in time:\n{self.log_tail()}")

    def stop(self) -> None:
        """Fast shutdown (SIGINT), escalating to SIGQUIT/SIGKILL; then remove the data dir. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            for sig, wait in ((signal.SIGINT, 30.0), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 30.0)):
                if proc.poll() is not None:
                    break
                proc.send_signal(sig)
                try:
                    proc.wait(wait)
                except subprocess.TimeoutExpired:
                    continue
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None
        atexit.unregister(self.stop)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except (OSError, AssertionError):
            return "(no server log)"

    def conninfo(self, dbname: str = "postgres", host: str = "127.0.0.1") -> str:
        """A libpq connection string (TCP by default; pass the socket dir as ``host`` for the unix socket)."""
        return f"host={host} port={self.port} user={SUPERUSER} dbname={dbname}"

    def url(self, dbname: str) -> str:
        """The SQLAlchemy URL of database ``dbname``."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def _admin(self, statement: str, name: str) -> None:
        """Run ``statement`` (with ``{}`` for the quoted database name) in the maintenance database."""
        import psycopg
        from psycopg import sql

        if not _DB_NAME.match(name):
            raise ValueError(f"invalid database name {name!r}")
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL(statement).format(sql.Identifier(name)))

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        self._admin("CREATE DATABASE {}", name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connection a test left open."""
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)
