"""Sweeps: a sweep job of many short trials against its floor and against Optuna's own study loop.

    .venv/bin/python benchmarks/sweeps.py --quick      # a check: 1 round of 20 trials
    .venv/bin/python benchmarks/sweeps.py              # 5 rounds of 200 trials (make bench)

The workload: a sweep job of ``--trials`` trials (random sampling, seed 1, one ``uniform`` hyperparameter,
``max_concurrent_trials: 2``) of a script that sleeps 50 ms and logs its score to the trial's MLflow run over
HTTP (the standard library's urllib: no MLflow import, so the script is short). mlyard's time is the sweep's
submit to its end, read from the job row (``created_at`` to ``ended_at``), on a real server started here.

* **Floor**: the same script run ``--trials`` times straight from a pool of two threads (``subprocess.run``,
  each logging to one MLflow run of the same server): the trials' own run time divided by two.
* **Peer**: Optuna's own study loop, ``study.optimize(objective, n_trials, n_jobs=2)`` with a RandomSampler, the
  objective sleeping the same 50 ms in-process and returning the same score (no processes, no tracking).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml
from harness import Comparison, alternate, markdown_table, print_table
from procs import (
    PYTHON,
    clean_env,
    free_port,
    init_workspace,
    mlyard_server_args,
    package_version,
    spawn,
    stop,
    wait_healthy,
)

HERE = Path(__file__).resolve().parent
SLEEP_S = 0.05
SCRIPT = """\
import json, os, sys, time, urllib.request
x = float(sys.argv[1])
time.sleep(@SLEEP@)
body = {"run_id": os.environ["MLFLOW_RUN_ID"], "key": "score", "value": -(x - 0.3) ** 2,
        "timestamp": int(time.time() * 1000), "step": 0}
req = urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/runs/log-metric",
                             data=json.dumps(body).encode(), method="POST",
                             headers={"Content-Type": "application/json",
                                      "Authorization": "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]})
urllib.request.urlopen(req).read()
""".replace("@SLEEP@", str(SLEEP_S))


def _sweep_spec(code_uri: str, trials: int) -> dict[str, Any]:
    return {"type": "sweep", "trial": {"code": code_uri, "command": "python trial.py ${{search_space.x}}",
                                       "environment": "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"},
            "sampling_algorithm": {"type": "random", "seed": 1},
            "search_space": {"x": {"type": "uniform", "min_value": 0, "max_value": 1}},
            "objective": {"goal": "maximize", "primary_metric": "score"},
            "limits": {"max_total_trials": trials, "max_concurrent_trials": 2}}


class Bench:
    def __init__(self, root: Path, trials: int) -> None:
        from mlyard.client import MlyardClient

        self.trials = trials
        self.port = free_port()
        self.ws = root / "workspace"
        init_workspace(self.ws, self.port)
        self.token = yaml.safe_load((self.ws / ".mlyard" / "client.yaml").read_text())["token"]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "server.log"
        self.proc = spawn(mlyard_server_args(self.ws), self.log)
        wait_healthy(self.proc, self.port, self.log)
        self.client = MlyardClient(self.url, self.token)
        self.code = root / "code"
        self.code.mkdir()
        (self.code / "trial.py").write_text(SCRIPT)
        self.headers = {"Authorization": f"Bearer {self.token}"}
        run = httpx.post(f"{self.url}/api/2.0/mlflow/runs/create", headers=self.headers,
                         json={"experiment_id": "0", "run_name": "floor"}).json()
        self.floor_run = run["run"]["info"]["run_id"]

    def close(self) -> None:
        stop(self.proc)

    def sweep(self) -> float:
        job = self.client.jobs.create(_sweep_spec(str(self.code), self.trials), experiment_name="bench-sweeps")
        while (row := self.client.jobs.get(job["name"]))["status"] not in ("Completed", "Failed", "Canceled"):
            time.sleep(0.2)
        if row["status"] != "Completed":
            raise RuntimeError(f"sweep {job['name']} ended {row['status']}: {row['error']}")
        return (row["ended_at"] - row["created_at"]) / 1000

    def floor(self) -> float:
        import subprocess

        env = {**clean_env(), "MLFLOW_RUN_ID": self.floor_run, "MLFLOW_TRACKING_URI": self.url,
               "MLFLOW_TRACKING_TOKEN": self.token}

        def one(i: int) -> None:
            subprocess.run([PYTHON, "trial.py", str(i / self.trials)], cwd=self.code, env=env, check=True)

        start = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(one, range(self.trials)))
        return time.perf_counter() - start


def optuna_loop(trials: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0, 1)
        time.sleep(SLEEP_S)
        return float(-(x - 0.3) ** 2)

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials, n_jobs=2)
    return time.perf_counter() - start


def run(rounds: int, trials: int, progress: Any) -> list[Comparison]:
    workload = (f"{trials} trials of a {SLEEP_S * 1000:.0f} ms script (sleep, then log one metric over HTTP), "
                "max_concurrent_trials 2, random sampling")
    with tempfile.TemporaryDirectory(prefix="mlyard-bench-sweeps-") as tmp:
        bench = Bench(Path(tmp), trials)
        try:
            floor_c = Comparison("sweep vs floor", "sweep job (submit to end)",
                                 "the same script run directly, 2 at a time", workload)
            floor_c.subject_s, floor_c.peer_s = alternate(rounds, bench.sweep, bench.floor, progress=progress)
            peer_c = Comparison("sweep vs Optuna", "sweep job (submit to end)",
                                f"optuna {package_version('optuna')} study.optimize(n_jobs=2), in-process", workload)
            peer_c.subject_s, peer_c.peer_s = alternate(rounds, bench.sweep, lambda: optuna_loop(trials),
                                                        warmup=0, progress=progress)
        finally:
            bench.close()
    floor_c.notes.append("target: within 1.25x of the floor")
    return [floor_c, peer_c]


def main(argv: list[str] | None = None) -> int:
    from machine import describe, summary_line
    from rich.console import Console

    parser = argparse.ArgumentParser(description="mlyard sweep jobs against their floor and Optuna's loop.")
    parser.add_argument("--quick", action="store_true", help="1 round of 20 trials")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--results", type=Path, default=HERE / ".results")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.trials = 1, 20
    console = Console(width=max(Console().width, 160))
    info = describe()
    console.print(f"[bold]sweeps[/bold]: 1 warm-up + {args.rounds} alternating rounds · {summary_line(info)}")
    results = run(args.rounds, args.trials,
                  lambda line: console.print(f"  sweeps {line}", highlight=False, markup=False))
    print_table(console, results, title=f"mlyard sweeps vs peers · {info['date']} · commit {info['commit']}")
    for c in results:
        console.print("; ".join([f"• {c.name}: mlyard = {c.subject}", f"peer = {c.peer}", c.workload, *c.notes]),
                      highlight=False, markup=False)
    args.results.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "results": [c.to_dict() for c in results]}
    (args.results / "sweeps.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.results / "sweeps.md").write_text(f"{summary_line(info)}\n\n{markdown_table(results)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
