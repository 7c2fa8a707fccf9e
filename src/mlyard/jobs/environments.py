"""Job environments: the interpreter a job's command runs with.

Two modes:

- ``inherit`` (default): the server's own interpreter. Nothing is installed; ``python`` in the
  command is the server's ``sys.executable``.
- ``isolated``: a virtual environment built with uv from the environment's pip requirements and
  cached by content (requirements and Python version), so equal environments are built once.

What is read from an environment definition (pip requirements, the pinned Python) is in
``jobs/conda.py``. MLflow is held to the ``ml`` extra's range by a uv constraint (``jobs/extras.py``).

Cache layout under the root (e.g. ``<workspace>/.mlyard/envs``)::

    <key>/                       a finished venv; <key>/mlyard-env.json was written before the rename
    <key>/.mlyard-last-used      touched each time the venv is reused ('mlyard workspace gc' reads it)
    .tmp-<key>-<random>/         a build in progress, or one a crash left (removed by the next build)
    .locks/<key>.lock            held (flock) while a key is checked or built

A build happens in a temporary folder and is renamed into place after its marker is written, so a
folder at ``<key>`` without the marker is never trusted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mlyard import __version__
from mlyard.core.errors import InvalidRequestError, InvalidSpecError
from mlyard.core.hashing import sha256_json
from mlyard.jobs.conda import definition_notes, environment_identity, environment_label, pip_requirements, python_entry
from mlyard.jobs.extras import MLFLOW_DISTRIBUTIONS, MLFLOW_RANGE, mlflow_note, mlflow_policy

EnvMode = Literal["inherit", "isolated"]
ENV_MODES: tuple[EnvMode, ...] = ("inherit", "isolated")

MARKER = "mlyard-env.json"
LAST_USED = ".mlyard-last-used"  # touched at each reuse (its mtime); the marker says when it was built
REQUIREMENTS_FILE = "mlyard-requirements.txt"
CONSTRAINTS_FILE = "mlyard-constraints.txt"
TAIL_LINES = 40

Log = Callable[[str], None]

_INSTALLED = re.compile(r"^\s*\+\s*([A-Za-z0-9._-]+)==(\S+)")  # uv's " + mlflow==3.13.0"
# pip's own settings, read by uv under other names; a uv setting the user made wins.
_PIP_TO_UV = (
    ("PIP_INDEX_URL", "UV_INDEX_URL", ("UV_INDEX_URL", "UV_DEFAULT_INDEX")),
    ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL", ("UV_EXTRA_INDEX_URL", "UV_INDEX")),
    ("PIP_FIND_LINKS", "UV_FIND_LINKS", ("UV_FIND_LINKS",)),
)


def _ignore(line: str) -> None:
    pass


@dataclass(frozen=True)
class PreparedEnvironment:
    """The interpreter a job runs with.

    Attributes:
        mode: ``inherit`` or ``isolated``.
        python: absolute path of the interpreter.
        bin_dir: folder to put first on ``PATH`` so ``python``, ``pip`` and console scripts resolve
            to this environment.
        identity: sha256 of the environment definition (see ``environment_identity``).
        notes: lines for the job's log (what was skipped or not matched, and why).
    """

    mode: EnvMode
    python: str
    bin_dir: str
    identity: str
    notes: tuple[str, ...]


class EnvironmentBuildError(InvalidSpecError):
    """uv could not build an isolated environment; the message ends with uv's own output.

    Attributes:
        output: the last lines uv printed.
    """

    def __init__(self, message: str, *, output: Sequence[str] = (), details: dict[str, Any] | None = None) -> None:
        self.output = tuple(output)
        super().__init__(message, details=details)


def _server_version() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"


def _is_server_version(requested: str) -> bool:
    """Whether a pin (``3``, ``3.11``, ``3.11.7``) matches the running interpreter."""
    parts = [int(p) for p in requested.split(".")]
    return list(sys.version_info[: len(parts)]) == parts


def _uv_bin() -> str:
    try:
        import uv
    except ImportError as exc:  # a dependency of mlyard, but a broken install should say so
        raise EnvironmentBuildError("env mode isolated needs uv, which is not installed: "
                                    "pip install 'uv>=0.5'") from exc
    return uv.find_uv_bin()


def _uv_environ() -> dict[str, str]:
    environ = dict(os.environ)
    environ.update(UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1", NO_COLOR="1")
    for pip_name, uv_name, uv_names in _PIP_TO_UV:
        if environ.get(pip_name) and not any(environ.get(n) for n in uv_names):
            value = environ[pip_name]
            environ[uv_name] = ",".join(value.split()) if uv_name == "UV_FIND_LINKS" else value
    if environ.get("PIP_NO_INDEX", "").lower() in ("1", "true", "yes", "on") and "UV_NO_INDEX" not in environ:
        environ["UV_NO_INDEX"] = "1"
    return environ


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextmanager
def _key_lock(root: Path, key: str, log: Log) -> Iterator[None]:
    """Hold a key against other threads (a lock) and other processes (flock on a lock file)."""
    with _THREAD_LOCKS_GUARD:
        lock = _THREAD_LOCKS.setdefault(f"{root.resolve()}/{key}", threading.Lock())
    if not lock.acquire(blocking=False):
        log(f"environment {key[:12]} is being built by another job: waiting")
        lock.acquire()
    try:
        locks = root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{key}.lock", "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"environment {key[:12]} is being built by another process: waiting")
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        lock.release()


def _built_notes(path: Path) -> list[str]:
    """The notes a build recorded in its marker (what mlyard changed about what was asked)."""
    try:
        notes = json.loads((path / MARKER).read_text()).get("notes") or []
    except (OSError, ValueError, AttributeError):
        return []
    return [str(n) for n in notes]


def _is_complete(path: Path) -> bool:
    # The interpreter check catches a venv whose base Python was removed since it was built.
    return (path / MARKER).is_file() and (path / "bin" / "python").exists()


class EnvironmentCache:
    """Prepares job environments; isolated ones are cached under ``root`` by content.

    Safe to share between threads, and between processes that use the same root.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        # requested version -> (interpreter, version); uv's search takes up to a second. Only what was
        # found is kept: a Python installed while the server runs is found by the next job.
        self._pythons: dict[str, tuple[str, str]] = {}

    def prepare(self, env: Mapping[str, Any] | None, mode: EnvMode, log: Log = _ignore) -> PreparedEnvironment:
        """The interpreter to run a job with, building (or reusing) an isolated venv if asked.

        Args:
            env: the job's environment definition, or None for none.
            mode: ``inherit`` (the server's interpreter, no I/O) or ``isolated`` (a cached uv venv).
            log: called with each progress line, uv's output included, as it comes.

        Raises:
            EnvironmentBuildError: the pinned Python is not on the machine, or uv could not create the
                venv or install the requirements.
            InvalidSpecError: the environment definition has the wrong shape.
            InvalidRequestError: an unknown mode.
        """
        if mode not in ENV_MODES:
            raise InvalidRequestError(f"unknown env mode {mode!r}: use one of {', '.join(ENV_MODES)}")
        requirements, skipped = pip_requirements(env)
        notes = definition_notes(env, skipped)
        identity = environment_identity(env)
        if mode == "inherit":
            python = os.path.abspath(sys.executable)
            line = f"env mode inherit: running with the server's interpreter {python}"
            if requirements:
                line += (f"; the environment's {len(requirements)} pip requirement(s) were not installed "
                         "(use env mode isolated to install them)")
            return PreparedEnvironment("inherit", python, os.path.dirname(python), identity, (line, *notes))

        interpreter, version, python_note = self._interpreter(env, log)
        policy = mlflow_policy(requirements)
        key = sha256_json({"requirements": sorted(requirements), "python": version,
                           "constraints": list(policy.constraints)})
        path = self._ensure(key, requirements, policy.constraints, interpreter, version, log)
        head = (f"env mode isolated: environment {key[:12]} ({len(requirements)} pip requirement(s), "
                f"{version}) at {path}")
        bin_dir = path / "bin"
        return PreparedEnvironment("isolated", str(bin_dir / "python"), str(bin_dir), identity,
                                   (head, *([python_note] if python_note else []), *policy.notes, *_built_notes(path),
                                    *notes))

    def _interpreter(self, env: Mapping[str, Any] | None, log: Log) -> tuple[str, str, str | None]:
        """(interpreter path, "implementation version", note) for the Python the conda file pins.

        A patch pin (``python=3.11.4``) the machine lacks runs with another 3.11, with a note; a pin
        of a version the machine lacks altogether fails: mlyard never downloads a Python.
        """
        requested, entry = python_entry(env)
        if requested is None:
            return sys.executable, _server_version(), None
        found = self._find_python(requested, log)
        if found is not None:
            return (*found, None)
        minor = ".".join(requested.split(".")[:2])
        if minor != requested and (found := self._find_python(minor, log)) is not None:
            return (*found, f"conda asks for python {requested}; this machine has no {requested}: using "
                            f"{found[1]}, a release of the same {minor}")
        raise EnvironmentBuildError(
            f"Python {requested} is pinned by the conda file of {environment_label(env)} (dependencies: {entry}) "
            f"but is not installed on this machine (uv looked on PATH and among the Pythons it manages; mlyard "
            f"never downloads one). To fix: install it (uv python install {requested}), remove the pin from the "
            "conda file, or run the job with env mode inherit.",
            details={"python": requested, "conda_entry": entry},
        )

    def _find_python(self, requested: str, log: Log) -> tuple[str, str] | None:
        """(interpreter, "implementation version") of an installed Python ``requested``, or None."""
        if _is_server_version(requested):
            return sys.executable, _server_version()
        if requested in self._pythons:
            return self._pythons[requested]
        self.root.mkdir(parents=True, exist_ok=True)
        found = subprocess.run([_uv_bin(), "python", "find", requested], capture_output=True,
                               text=True, env=_uv_environ(), cwd=self.root)
        if found.returncode == 0 and found.stdout.strip():
            interpreter = found.stdout.strip()
            probe = subprocess.run([interpreter, "-c", "import platform; print(platform.python_implementation(),"
                                    " platform.python_version())"], capture_output=True, text=True)
            if probe.returncode == 0:
                self._pythons[requested] = interpreter, probe.stdout.strip()
                return self._pythons[requested]
        log(f"uv found no Python {requested}: {(found.stderr.strip().splitlines() or [''])[0]}")
        return None

    def _ensure(self, key: str, requirements: list[str], constraints: Sequence[str], interpreter: str,
                version: str, log: Log) -> Path:
        final = self.root / key
        self.root.mkdir(parents=True, exist_ok=True)
        with _key_lock(self.root, key, log):
            if _is_complete(final):
                log(f"environment {key[:12]} cached")
                with contextlib.suppress(OSError):  # its last use, for 'mlyard workspace gc'
                    (final / LAST_USED).touch()
                return final
            # Under the key's lock, anything left for this key is from a build that died.
            for leftover in [*self.root.glob(f".tmp-{key}-*"), *([final] if final.exists() else [])]:
                shutil.rmtree(leftover, ignore_errors=True)
            tmp = self.root / f".tmp-{key}-{secrets.token_hex(6)}"
            try:
                self._build(tmp, key, requirements, constraints, interpreter, version, log)
                try:
                    os.replace(tmp, final)
                except OSError:
                    if not _is_complete(final):
                        raise
                    log(f"environment {key[:12]} was built by another process meanwhile: using it")
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return final

    def _build(self, tmp: Path, key: str, requirements: list[str], constraints: Sequence[str], interpreter: str,
               version: str, log: Log) -> None:
        started = time.monotonic()
        log(f"environment {key[:12]}: building with uv ({version}, {len(requirements)} pip requirement(s))")
        uv = _uv_bin()
        # --relocatable: the venv is renamed into place after it is built; --seed: `pip` in a job's
        # command must be this venv's pip, not the next one on PATH.
        self._uv([uv, "venv", "--relocatable", "--seed", "--python", interpreter, str(tmp)], key, version,
                 requirements, log)
        held: dict[str, str] = {}
        if requirements:
            req_file = tmp / REQUIREMENTS_FILE
            req_file.write_text("".join(f"{line}\n" for line in requirements))
            args = [uv, "pip", "install", "--python", str(tmp / "bin" / "python"), "-r", str(req_file)]
            if constraints:
                (tmp / CONSTRAINTS_FILE).write_text("".join(f"{line}\n" for line in constraints))
                args += ["--constraint", str(tmp / CONSTRAINTS_FILE)]

            def watch(line: str) -> None:
                if (m := _INSTALLED.match(line)) and m.group(1).lower() in MLFLOW_DISTRIBUTIONS:
                    held[m.group(1).lower()] = m.group(2)
                log(line)

            self._uv(args, key, version, requirements, watch if constraints else log)
        notes = [mlflow_note(held)] if held else []
        marker = {"key": key, "python": version, "interpreter": interpreter, "requirements": requirements,
                  "constraints": list(constraints), "notes": notes, "mlyard": __version__, "built_at": time.time()}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        log(f"environment {key[:12]} ready in {time.monotonic() - started:.1f}s")

    def _uv(self, args: list[str], key: str, version: str, requirements: list[str], log: Log) -> None:
        """Run uv, streaming its output to ``log``; raise EnvironmentBuildError if it fails."""
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                              env=_uv_environ(), cwd=self.root) as proc:
            try:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    line = raw.rstrip("\n")
                    tail.append(line)
                    log(line)
            except BaseException:
                proc.kill()  # ``log`` raised, or we were interrupted: do not leave uv running
                raise
            code = proc.wait()
        if code == 0:
            return
        step = "uv venv" if args[1] == "venv" else "uv pip install"
        if args[1] == "venv":
            fix = (f"uv could not create a virtual environment with {args[args.index('--python') + 1]}; "
                   "check that this Python works, or run the job with env mode inherit")
        else:
            fix = ("fix the environment's pip requirements (the '- pip:' list in its conda file, or "
                   "'requirements'), check that the package index is reachable (UV_INDEX_URL / PIP_INDEX_URL), "
                   "or run the job with env mode inherit")
            if "--constraint" in args:
                fix += (f"; mlyard holds mlflow to {MLFLOW_RANGE} (its ml extra's range): if a package needs "
                        "another MLflow, pin mlflow in the pip list, which lifts the hold")
        raise EnvironmentBuildError(
            f"could not build isolated environment {key[:12]} ({version}, {len(requirements)} pip "
            f"requirement(s)): '{step}' failed with exit code {code}:\n" + "\n".join(tail) + f"\nTo fix: {fix}.",
            output=list(tail),
            details={"environment_key": key, "step": step, "exit_code": code, "requirements": requirements},
        )


def mlyard_only_path(root: Path) -> str:
    """A folder under ``root`` holding only ``mlyard`` (a link to this package), to put on the ``PYTHONPATH`` of a
    process in an isolated environment: the folder above the package may be the server's site-packages, whose
    other packages must stay out of that environment."""
    folder = root / "pythonpath"
    link = folder / "mlyard"
    package = Path(__file__).resolve().parents[1]  # src/mlyard
    if not link.is_symlink() or link.resolve() != package:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".mlyard-{secrets.token_hex(6)}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(package, target_is_directory=True)
        os.replace(tmp, link)
    return str(folder)
