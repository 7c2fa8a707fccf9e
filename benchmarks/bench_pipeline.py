"""The attrition pipeline through mlyard against its four scripts run bare; job submission latency.

Pipeline overhead. Each round, mlyard: a fresh workspace and server, the example's ``data.yml`` and
``train-env.yml`` registered (not timed), then ``python -m mlyard job create -f pipeline.yml --stream``
timed from spawn to exit (the four steps run: nothing to reuse in a new workspace), then the same
command again (every step reused), timed the same way. The peer, in the same round: ``prep.py``,
``train.py``, ``evaluate.py``, ``register.py`` started one after the other with the same interpreter,
the same arguments and the same folder wiring as ``tests/integration/test_attrition_scripts.py``,
logging to a new MLflow file store (``MLFLOW_TRACKING_URI=file:<tmp>/mlruns``). Both start with an
empty registry, so ``evaluate.py`` has no champion to load in either.

Submission latency. One server for every round. mlyard: the SDK (``MlyardClient.jobs.create``)
submits a command job whose command is ``date +%s.%N`` (a comment with the round number keeps it
from being reused); the time from just before the call to the timestamp the process printed as its
first act. The peer: ``bash -c 'date +%s.%N'`` started with ``subprocess.run``, measured the same way.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_tracking_load import start_mlyard
from harness import Comparison, alternate, seconds
from procs import PYTHON, clean_env, package_version, stop

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "examples" / "attrition" / "mlops" / "azureml" / "train"
SRC = ROOT / "examples" / "attrition" / "data-science" / "src"
DATA = ROOT / "examples" / "attrition" / "data" / "employee-attrition.csv"
MODEL = "attrition-model"
EXPERIMENT = "attrition-training"
SHELL = shutil.which("bash") or "/bin/sh"
CURATED = "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"  # runs with the server's interpreter
# mlflow's telemetry client starts at import and would try the internet.
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
Progress = Callable[[str], None]


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in clean_env().items() if not k.startswith("MLFLOW_")}
    return {**env, **NO_TELEMETRY, **extra}


def _check(args: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
    done = subprocess.run(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.decode()[-3000:]}")


def _timed(args: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    _check(args, env, cwd)
    return time.perf_counter() - start


# -- pipeline overhead ----------------------------------------------------------------------------


class PipelineRounds:
    """One round of each side; mlyard's reuse re-run is kept aside (``reuse_s``, warm-up dropped)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.index = -1
        self.reuse_s: list[float] = []
        self.server_s: list[float] = []  # the pipeline's own duration (created -> ended), server side

    def before(self, index: int) -> None:
        self.index = index

    def mlyard(self) -> float:
        folder = Path(tempfile.mkdtemp(prefix="mlyard-", dir=self.base))
        server, token = start_mlyard(folder / "server")
        try:
            env = _env({"MLYARD_URL": server.url, "MLYARD_TOKEN": token})
            cli = [PYTHON, "-m", "mlyard"]
            _check([*cli, "data", "create", "-f", str(TRAIN / "data.yml")], env)
            _check([*cli, "environment", "create", "-f", str(TRAIN / "train-env.yml")], env)
            submit = [*cli, "job", "create", "-f", str(TRAIN / "pipeline.yml"), "--stream"]
            first = _timed([*submit, "--name", "first"], env, cwd=folder)
            reuse = _timed([*submit, "--name", "again"], env, cwd=folder)
            self._check_reused(server.url, token)
            if self.index >= 0:
                self.reuse_s.append(reuse)
                self.server_s.append(self._duration(server.url, token, "first"))
            return first
        finally:
            stop(server.proc)
            shutil.rmtree(folder, ignore_errors=True)

    def bare(self) -> float:
        """prep -> train -> evaluate -> register, each a process, as a pipeline would wire them."""
        folder = Path(tempfile.mkdtemp(prefix="bare-", dir=self.base))
        try:
            env = _env({"MLFLOW_TRACKING_URI": f"file:{folder / 'mlruns'}", "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
                        "MLFLOW_ALLOW_FILE_STORE": "true"})  # mlflow 3.13 refuses a file store without it
            out = folder / "outputs"
            train, test, model, evaluation, info = (str(out / d) for d in
                                                    ("train", "test", "model", "evaluation", "model_info"))
            steps = [
                ("prep.py", "--raw_data", str(DATA), "--train_data", train, "--test_data", test),
                ("train.py", "--train_data", train, "--model_output", model),
                ("evaluate.py", "--model_name", MODEL, "--model_input", model, "--test_data", test,
                 "--evaluation_output", evaluation, "--runner", "CloudRunner"),
                ("register.py", "--model_name", MODEL, "--model_path", model, "--evaluation_output", evaluation,
                 "--model_info_output_path", info),
            ]
            start = time.perf_counter()
            for script, *args in steps:
                workdir = folder / "work" / script
                workdir.mkdir(parents=True)
                _check([PYTHON, str(SRC / script), *args], env, cwd=workdir)
            elapsed = time.perf_counter() - start
            if not (Path(info) / "model_info.json").is_file():
                raise RuntimeError("the bare run registered no model")
            return elapsed
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @staticmethod
    def _job(url: str, token: str, name: str) -> dict[str, Any]:
        from mlyard.client import MlyardClient

        with MlyardClient(url, token) as client:
            return client.jobs.get(name)

    def _check_reused(self, url: str, token: str) -> None:
        steps = self._job(url, token, "again")["steps"]
        if not steps or not all(s["reused_from"] for s in steps):
            raise RuntimeError(f"the re-run did not reuse every step: {[(s['step'], s['reused_from']) for s in steps]}")

    def _duration(self, url: str, token: str, name: str) -> float:
        job = self._job(url, token, name)
        return (job["ended_at"] - job["created_at"]) / 1000


def pipeline(rounds: int, progress: Progress | None = None) -> list[Comparison]:
    base = Path(tempfile.mkdtemp(prefix="mlyard-bench-pipeline-"))
    try:
        r = PipelineRounds(base)
        first_s, bare_s = alternate(rounds, r.mlyard, r.bare, before=r.before, progress=progress)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    workload = ("the attrition example (examples/attrition): 1,470 rows x 35 columns, prep (stratified 80/20 "
                "split) -> train (RandomForest, 200 trees, depth 8) -> evaluate -> register attrition-model")
    mlyard = f"mlyard {package_version('mlyard')}"
    server = statistics.median(r.server_s)
    overhead = Comparison(
        name="Attrition pipeline, 4 steps (first run)",
        subject=f"{mlyard}: python -m mlyard job create -f pipeline.yml --stream (fresh workspace, env mode inherit)",
        peer=f"the 4 scripts run bare in sequence, MLflow {package_version('mlflow')} file store "
             "(MLFLOW_TRACKING_URI=file:...)",
        workload=workload,
        subject_s=first_s,
        peer_s=bare_s,
        subject_extra=f"pipeline created -> ended on the server {seconds(server)}",
        notes=["mlyard: spawn of `mlyard job create` to its exit; workspace, server start and data/environment "
               "registration are not timed; peer: first script's spawn to last script's exit",
               "1 warm-up round of each is not counted"],
    )
    reuse = Comparison(
        name="Attrition pipeline re-run, every step reused",
        subject=f"{mlyard}: the same job create --stream again, same workspace",
        peer="the first run of the same round (row above)",
        workload=workload,
        subject_s=r.reuse_s,
        peer_s=first_s,
        notes=["ratio = the re-run's share of the first run's time; each round checks that all 4 steps were "
               "reused"],
    )
    return [overhead, reuse]


# -- submission latency ---------------------------------------------------------------------------


def _stamp(text: str) -> float:
    """The last line that is a ``date +%s.%N`` timestamp."""
    for line in reversed(text.splitlines()):
        try:
            return float(line.strip())
        except ValueError:
            continue
    raise RuntimeError(f"no timestamp in the job's log:\n{text[-2000:]}")


def latency(rounds: int, progress: Progress | None = None) -> Comparison:
    from mlyard.client import MlyardClient

    base = Path(tempfile.mkdtemp(prefix="mlyard-bench-latency-"))
    server, token = start_mlyard(base / "server")
    returned: list[float] = []
    counter = iter(range(1_000_000))
    try:
        client = MlyardClient(server.url, token)

        def submit() -> float:
            n = next(counter)
            spec = {"type": "command", "command": f"date +%s.%N  # submission {n}", "environment": CURATED}
            start = time.time()
            created = client.jobs.create(spec, name=f"latency-{n}", experiment_name="latency")
            returned.append(time.time() - start)
            job = created
            deadline = time.monotonic() + 60
            while job["status"] not in ("Completed", "Failed", "Canceled"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"job {created['name']} still {job['status']} after 60 s")
                time.sleep(0.02)
                job = client.jobs.get(created["name"])
            if job["status"] != "Completed" or job.get("reused_from"):
                raise RuntimeError(f"job {job['name']}: {job['status']}, reused from {job.get('reused_from')}")
            return _stamp(client.jobs.logs(job["name"])["text"]) - start

        def bare() -> float:
            start = time.time()
            done = subprocess.run([SHELL, "-c", "date +%s.%N"], capture_output=True, text=True, check=True,
                                  env=os.environ.copy())
            return _stamp(done.stdout) - start

        subject_s, peer_s = alternate(rounds, submit, bare, progress=progress)
        client.close()
    finally:
        stop(server.proc)
        shutil.rmtree(base, ignore_errors=True)
    counted = returned[1:]  # the warm-up submission is not counted
    return Comparison(
        name="Job submission → user process started",
        subject=f"mlyard {package_version('mlyard')}: MlyardClient.jobs.create(command job) in-process, "
                "one server, env mode inherit",
        peer=f"subprocess.run([{SHELL}, '-c', 'date +%s.%N']) from the same process",
        workload="command `date +%s.%N` (its first act); time from just before the submit call to that timestamp; "
                 "one job at a time, each waited for before the next",
        subject_s=subject_s,
        peer_s=peer_s,
        subject_extra=f"the submit call returned after {seconds(statistics.median(counted))} (median)",
        notes=["the CLI (`mlyard job create -f`) adds its own process start and imports on top",
               "1 warm-up round of each is not counted"],
    )
