"""Running jobs in tests: user scripts written into a folder, submitted as the CLI submits them, awaited.

``JobYard`` wraps one real server: ``submit`` loads a YAML file with the CLI's loader and sends it with
the SDK (uploading local code and data), ``wait`` polls until the job ends, ``cli`` runs ``mlyard``
itself against the server. ``PROBE`` is a user script that reports what its process sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mlyard.client import MlyardClient
from mlyard.specs import load_spec
from tests.support.server import ServerProcess, run_cli

TERMINAL = ("Completed", "Failed", "Canceled")
CURATED = "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"  # runs with the server's interpreter

PROBE = '''\
"""Reports what the process sees as one line, 'PROBE {json}'; key=value arguments say what else to do.

in_<n>=PATH     describe an input (a file's text, or a folder's files and their text)
dir_<n>=PATH    write made-by.txt into an output folder
file_<n>=PATH   write an output file
model_<n>=PATH  write a minimal MLflow model folder
stamp_<n>=PATH  write {"start": t0, "end": t1} into an output folder, sleeping a second between
exit=N          print a line to stderr and exit with N
"""
import json
import os
import sys
import time
from pathlib import Path


def describe(text):
    path = Path(text)
    if path.is_file():
        return {"file": path.read_text()}
    if path.is_dir():
        return {"dir": {f.relative_to(path).as_posix(): f.read_text() for f in sorted(path.rglob("*"))
                        if f.is_file()}}
    return {"missing": True}


report = {"argv": sys.argv[1:], "cwd": os.getcwd(), "cwd_files": sorted(os.listdir(".")), "inputs": {},
          "env": {k: v for k, v in os.environ.items() if k.startswith(("AZURE_ML_", "MLFLOW_", "MY_"))}}
exit_code = 0
for arg in sys.argv[1:]:
    key, sep, value = arg.partition("=")
    if not sep:
        continue
    kind, _, name = key.partition("_")
    if kind == "in":
        report["inputs"][name] = {"path": value, **describe(value)}
    elif kind == "dir":
        Path(value, "made-by.txt").write_text(name)
    elif kind == "file":
        Path(value).write_text(f"file {name}")
    elif kind == "model":
        Path(value, "MLmodel").write_text("flavors:\\n  python_function: {}\\n")
        Path(value, "weights.txt").write_text(name)
    elif kind == "stamp":
        start = time.time()
        time.sleep(1)
        Path(value, "stamp.json").write_text(json.dumps({"start": start, "end": time.time()}))
    elif kind == "exit":
        exit_code = int(value)
Path("outputs").mkdir(exist_ok=True)
Path("outputs", "note.txt").write_text("written to ./outputs")
print("PROBE " + json.dumps(report), flush=True)
if exit_code:
    print("boom: the probe was told to fail", file=sys.stderr, flush=True)
    sys.exit(exit_code)
'''

SLEEPER = '''\
"""Records its pid and a child's pid (one that ignores SIGTERM), then sleeps; quick when done_flag exists."""
import os
import subprocess
import sys
import time
from pathlib import Path

pids, done_flag = Path(sys.argv[1]), Path(sys.argv[2])
if done_flag.exists():
    print("ran before: finishing at once", flush=True)
    sys.exit(0)
done_flag.write_text("started")
child = subprocess.Popen(["bash", "-c", "trap '' TERM; sleep 300"])
pids.write_text(f"{os.getpid()} {child.pid}")
print(f"sleeping; pid {os.getpid()}, child {child.pid}", flush=True)
time.sleep(60)
'''

GATE = '''\
"""Waits for a file, touches one, sleeps, then exits; a failing exit prints a line to stderr first."""
import argparse
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--wait")
parser.add_argument("--touch")
parser.add_argument("--sleep", type=float, default=0)
parser.add_argument("--fail", type=int, default=0)
args = parser.parse_args()
deadline = time.monotonic() + 60
while args.wait and not Path(args.wait).exists() and time.monotonic() < deadline:
    time.sleep(0.05)
if args.touch:
    Path(args.touch).write_text("touched")
time.sleep(args.sleep)
if args.fail:
    print("boom: the data is bad", file=sys.stderr, flush=True)
    sys.exit(args.fail)
print("gate passed", flush=True)
'''

LOG_METRIC = '''\
import mlflow

mlflow.log_metric("answer", 42)  # no start_run: the job's run, from MLFLOW_RUN_ID
'''


def write(path: Path, text: str, **values: object) -> Path:
    """Write ``text`` (dedented) to ``path``, creating folders.

    ``@ENV@`` becomes a curated environment reference, and ``@key@`` each value given.
    """
    text = textwrap.dedent(text)
    for key, value in {"ENV": CURATED, **values}.items():
        text = text.replace(f"@{key}@", str(value))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its parent counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.1)


def wait_gone(pids: Iterable[int], what: str) -> None:
    """Wait until none of ``pids`` is alive."""
    pending = list(pids)
    wait_until(lambda: not any(alive(p) for p in pending), f"processes {pending} of {what} are gone")


def read_pids(path: Path) -> list[int]:
    wait_until(lambda: path.exists() and len(path.read_text().split()) == 2, f"{path} holds two pids", 60)
    return [int(p) for p in path.read_text().split()]


def probes(log: str) -> list[dict[str, Any]]:
    """The reports PROBE printed into a log."""
    return [json.loads(line.split("PROBE ", 1)[1]) for line in log.splitlines() if line.startswith("PROBE ")]


@dataclass
class JobYard:
    """A real server, its SDK client and a folder for the test's files."""

    server: ServerProcess
    root: Path

    def __post_init__(self) -> None:
        self.client = MlyardClient(self.server.url, self.server.token)

    def submit(self, path: Path, overrides: Iterable[str] = (), **options: Any) -> dict[str, Any]:
        """What ``mlyard job create -f`` does: load the YAML with ``--set`` overrides, upload, submit."""
        spec = load_spec(path, "job", overrides=overrides).to_dict()
        options.setdefault("experiment_name", "jobs-tests")
        return self.client.jobs.create(spec, **options)

    def wait(self, name: str, timeout: float = 120) -> dict[str, Any]:
        """The job once it has ended."""
        deadline = time.monotonic() + timeout
        while (job := self.client.jobs.get(name))["status"] not in TERMINAL:
            if time.monotonic() > deadline:
                raise AssertionError(f"job {name} still {job['status']} after {timeout} s:\n{self.log(name)}")
            time.sleep(0.1)
        return job

    def run(self, path: Path, overrides: Iterable[str] = (), **options: Any) -> dict[str, Any]:
        return self.wait(self.submit(path, overrides, **options)["name"])

    def completed(self, path: Path, overrides: Iterable[str] = (), **options: Any) -> dict[str, Any]:
        """Run a job that must complete; a failure shows its error and log."""
        job = self.run(path, overrides, **options)
        if job["status"] != "Completed":
            logs = "\n".join(f"--- {s['name']}\n{self.log(s['name'])}" for s in job.get("steps") or [job])
            raise AssertionError(f"job {job['name']} is {job['status']}: {job['error']}\n{logs}")
        return job

    def log(self, name: str) -> str:
        return str(self.client.jobs.logs(name)["text"])

    def step_log(self, name: str) -> str:
        """A step's log as the runner wrote it into the workspace."""
        return (self.server.workspace / ".mlyard" / "jobs" / name / "user_logs" / "std_log.txt").read_text()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=self.root, env=self.server.env(), check=check)

    def datastore_root(self) -> Path:
        stores = httpx.get(f"{self.server.url}/api/v1/datastores", headers=self.server.headers()).json()
        return Path(next(s for s in stores if s["name"] == "workspaceblobstore")["root"])

    def stored(self, uri: str) -> Path:
        """The local file or folder behind an ``azureml://datastores/workspaceblobstore/paths/...`` URI."""
        prefix = "azureml://datastores/workspaceblobstore/paths/"
        assert uri.startswith(prefix), uri
        return self.datastore_root() / uri[len(prefix):]


def steps_of(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A pipeline's steps by their key."""
    return {s["step"]: s for s in job.get("steps") or []}
