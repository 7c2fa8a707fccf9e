"""Online scoring: an mlyard online endpoint against ``mlflow models serve``, same model, same worker count.

    .venv/bin/python benchmarks/serving.py --quick          # a check: 3 rounds, 2 s windows, 300 requests
    .venv/bin/python benchmarks/run.py --only serving       # the table with the other benchmarks

Two models, each trained here and saved with ``mlflow.sklearn.save_model``: *light*, a LogisticRegression on four
numeric columns, and *attrition*, the example's pipeline (one-hot encoding + a 200-tree random forest) trained on
``mlyard.datasets.attrition``. Each is registered in a fresh workspace with ``mlyard model create`` and deployed
twice, no-code, under one endpoint: ``off`` (no batching) and ``on`` (``MLYARD_BATCH_MAX_SIZE=32``,
``MLYARD_BATCH_MAX_WAIT_MS=0``, the default), each ``instance_count: 1`` x ``WORKER_COUNT`` processes and
``max_concurrent_requests_per_instance: 256`` (Azure's default of 1 would answer 429 to concurrent clients). The
peer is ``mlflow models serve -m <the same folder> --env-manager local -w <the same count>``.

Every request carries the same one-row input: to mlyard at the scoring URI with the endpoint key and
``azureml-model-deployment`` naming the deployment, as Azure's ``{"input_data": {columns, index, data}}``; to
MLflow as ``{"dataframe_split": {columns, data}}``. The load comes from ``serving_load.py`` in a process of its
own. Each round measures, in this order, mlyard off, mlyard on, MLflow: single-client latency (``--requests``),
then throughput for ``--duration`` seconds at 8 and at 32 clients; and the floors: ``PyFuncModel.predict`` of
the same one-row frame in this process (what both servers call per request) and a raw uvicorn ASGI app that
answers a fixed body on loopback, driven like the servers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from harness import Comparison
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
Progress = Callable[[str], None]
BATCH = {"MLYARD_BATCH_MAX_SIZE": "32", "MLYARD_BATCH_MAX_WAIT_MS": "0"}
CLIENTS = (8, 32)
SIDES = ("off", "on", "mlflow")
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

ECHO_APP = '''\
BODY = b'{"predictions": [0]}'


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})
'''


# ---------------------------------------------------------------- models


def _light_model(folder: Path) -> dict[str, Any]:
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 4)), columns=["a", "b", "c", "d"])
    labels = (frame["a"] + frame["b"] - frame["c"] > 0).astype(int)
    model = LogisticRegression().fit(frame, labels)
    mlflow.sklearn.save_model(model, str(folder), signature=infer_signature(frame, model.predict(frame)),
                              serialization_format="pickle")
    return frame.head(1).to_dict(orient="split")  # type: ignore[no-any-return]


def _attrition_model(folder: Path) -> dict[str, Any]:
    """The pipeline of examples/attrition/data-science/src/train.py with its default arguments."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from mlyard.datasets import attrition

    data = attrition.generate(rows=1470, seed=0)
    nominal = ["BusinessTravel", "Department", "EducationField", "Gender", "JobRole", "MaritalStatus", "OverTime"]
    dropped = {"Attrition", "EmployeeNumber", "EmployeeCount", "Over18", "StandardHours", *nominal}
    numeric = [c for c in data.columns if c not in dropped]
    x, y = data[numeric + nominal], (data["Attrition"] == "Yes").astype(int)
    model = Pipeline([
        ("preprocessor", ColumnTransformer([("numeric", "passthrough", numeric),
                                            ("nominal", OneHotEncoder(handle_unknown="ignore"), nominal)],
                                           remainder="drop")),
        ("classifier", RandomForestClassifier(n_estimators=200, max_depth=8, min_samples_leaf=4, max_features="sqrt",
                                              class_weight="balanced_subsample", random_state=0)),
    ]).fit(x, y)
    mlflow.sklearn.save_model(model, str(folder), signature=infer_signature(x, model.predict(x)),
                              serialization_format="pickle")
    return x.head(1).to_dict(orient="split")  # type: ignore[no-any-return]


MODELS: dict[str, tuple[Callable[[Path], dict[str, Any]], str]] = {
    "light": (_light_model, "LogisticRegression, 4 numeric columns"),
    "attrition": (_attrition_model, "attrition pipeline: one-hot encoding of 7 of 30 columns + 200-tree random forest"),
}


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(row, default=lambda v: v.item()))  # type: ignore[no-any-return]


# ---------------------------------------------------------------- servers


@dataclass
class Setup:
    base: Path
    workers: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""

    def cli(self, *args: str) -> str:
        done = subprocess.run([PYTHON, "-m", "mlyard", *args], env={**clean_env(), **self.env}, capture_output=True,
                              text=True, check=False, cwd=self.base, timeout=600)
        if done.returncode != 0:
            output = (done.stderr or done.stdout)[-2000:]
            raise RuntimeError(f"mlyard {' '.join(args)} exited {done.returncode}: {output}")
        return done.stdout

    def start_mlyard(self) -> None:
        port = free_port()
        ws = self.base / "ws"
        init_workspace(ws, port)
        token = yaml.safe_load((ws / ".mlyard" / "client.yaml").read_text())["token"]
        proc = spawn(mlyard_server_args(ws), self.base / "mlyard-server.log")
        self.procs.append(proc)
        wait_healthy(proc, port, self.base / "mlyard-server.log")
        self.url = f"http://127.0.0.1:{port}"
        self.env = {"MLYARD_URL": self.url, "MLYARD_TOKEN": token}

    def deploy(self, name: str, model_dir: Path) -> str:
        """Register ``model_dir`` as ``bench-<name>:1``, create endpoint ``bench-<name>`` with ``off`` and ``on``."""
        folder = self.base / f"yaml-{name}"
        folder.mkdir()
        (folder / "model.yml").write_text(f"name: bench-{name}\nversion: 1\ntype: mlflow_model\npath: {model_dir}\n")
        self.cli("model", "create", "-f", str(folder / "model.yml"))
        (folder / "endpoint.yml").write_text(f"name: bench-{name}\nauth_mode: key\n")
        self.cli("online-endpoint", "create", "-f", str(folder / "endpoint.yml"))
        for dep in ("off", "on"):
            variables = {"WORKER_COUNT": str(self.workers), **(BATCH if dep == "on" else {})}
            spec = {"name": dep, "endpoint_name": f"bench-{name}", "model": f"azureml:bench-{name}:1",
                    "instance_type": "Standard_DS3_v2", "instance_count": 1,
                    "environment_variables": variables,
                    "request_settings": {"max_concurrent_requests_per_instance": 256, "request_timeout_ms": 60000}}
            (folder / f"{dep}.yml").write_text(yaml.safe_dump(spec))
            self.cli("online-deployment", "create", "-f", str(folder / f"{dep}.yml"),
                     *(["--all-traffic"] if dep == "off" else []))
        return self.cli("online-endpoint", "get-credentials", "-n", f"bench-{name}", "--query", "primaryKey",
                        "-o", "tsv").strip()

    def start_mlflow(self, name: str, model_dir: Path) -> str:
        port = free_port()
        log = self.base / f"mlflow-{name}.log"
        # it runs `uvicorn` from PATH: the virtualenv's own, as when the virtualenv is activated
        path = f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        args = [PYTHON, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "--env-manager", "local",
                "-w", str(self.workers), "-h", "127.0.0.1", "-p", str(port)]
        # in its own folder: MLflow 3 creates an mlflow.db (tracing) in the working directory
        cwd = self.base / f"mlflow-{name}"
        cwd.mkdir()
        with log.open("ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                                    env={**clean_env(), **MLFLOW_ENV, "PATH": path}, start_new_session=True)
        self.procs.append(proc)
        wait_healthy(proc, port, log, timeout_s=120, path="/ping")
        return f"http://127.0.0.1:{port}"

    def start_echo(self) -> str:
        app_dir = self.base / "echo"
        app_dir.mkdir()
        (app_dir / "bench_echo_app.py").write_text(ECHO_APP)
        port = free_port()
        log = self.base / "echo.log"
        proc = spawn([PYTHON, "-m", "uvicorn", "bench_echo_app:app", "--app-dir", str(app_dir), "--host",
                      "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"], log)
        self.procs.append(proc)
        wait_healthy(proc, port, log, path="/")
        return f"http://127.0.0.1:{port}/"

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)


# ---------------------------------------------------------------- measuring


def drive(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run([PYTHON, str(HERE / "serving_load.py"), json.dumps(spec)], capture_output=True, text=True,
                          check=False, env=clean_env(), timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"load driver exited {done.returncode}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    total = len(result.get("durations_s", [])) or result.get("ok", 0) + result["errors"]
    if result["errors"] > 0.01 * max(total, 1):
        raise RuntimeError(f"{spec['url']}: {result['errors']} of {total} requests failed, first: "
                           f"{result['first_error']}")
    return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def predict_floor(model_dir: Path, row: dict[str, Any], calls: int) -> float:
    """p50 of ``PyFuncModel.predict`` of the one-row frame, in this process."""
    import mlflow.pyfunc
    import mlflow.tracing
    import pandas as pd

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.tracing.disable()  # else loading creates an mlflow.db in the working directory, as the worker notes
    model = mlflow.pyfunc.load_model(str(model_dir))
    frame = pd.DataFrame(row["data"], columns=row["columns"])
    for _ in range(20):
        model.predict(frame)
    durations = []
    for _ in range(calls):
        start = time.perf_counter()
        model.predict(frame)
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


@dataclass
class Samples:
    p50: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in SIDES})
    p99: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in SIDES})
    rps: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    predict: list[float] = field(default_factory=list)
    echo: list[float] = field(default_factory=list)


def _ms(value: float) -> str:
    return f"{value * 1000:.2f} ms"


def measure_model(name: str, setup: Setup, rounds: int, opts: argparse.Namespace, progress: Progress,
                  echo_url: str) -> list[Comparison]:
    make, label = MODELS[name]
    model_dir = setup.base / f"model-{name}"
    row = _json_safe(make(model_dir))
    key = setup.deploy(name, model_dir)
    peer_url = setup.start_mlflow(name, model_dir)
    mlyard_body = json.dumps({"input_data": {"columns": row["columns"], "index": [0], "data": row["data"]}})
    targets = {
        dep: {"url": f"{setup.url}/endpoints/bench-{name}/score", "body": mlyard_body,
              "headers": {"Authorization": f"Bearer {key}", "azureml-model-deployment": dep}}
        for dep in ("off", "on")
    }
    targets["mlflow"] = {"url": f"{peer_url}/invocations", "body": json.dumps(
        {"dataframe_split": {"columns": row["columns"], "data": row["data"]}}), "headers": {}}
    echo = {"url": echo_url, "body": mlyard_body, "headers": {}}
    _check_same_answer(targets)
    s = Samples()
    for index in range(-1, rounds):
        lat: dict[str, dict[str, Any]] = {}
        for side in SIDES:
            lat[side] = drive({**targets[side], "mode": "latency", "requests": opts.requests})
        floor_echo = drive({**echo, "mode": "latency", "requests": opts.requests})
        floor_predict = predict_floor(model_dir, row, min(opts.requests, opts.predict_calls))
        tput: dict[tuple[str, int], float] = {}
        for clients in CLIENTS:
            for side in SIDES:
                out = drive({**targets[side], "mode": "throughput", "clients": clients, "duration_s": opts.duration})
                tput[side, clients] = out["ok"] / out["seconds"]
        label_round = "warm-up" if index < 0 else f"round {index + 1}/{rounds}"
        p50 = {side: statistics.median(lat[side]["durations_s"]) for side in SIDES}
        progress(f"{name} {label_round}: p50 off {_ms(p50['off'])}, on {_ms(p50['on'])}, mlflow {_ms(p50['mlflow'])}"
                 f", predict {_ms(floor_predict)}, echo {_ms(statistics.median(floor_echo['durations_s']))}; "
                 + "; ".join(f"{c} clients req/s off {tput['off', c]:.0f}, on {tput['on', c]:.0f}, "
                             f"mlflow {tput['mlflow', c]:.0f}" for c in CLIENTS))
        if index < 0:
            continue
        for side in SIDES:
            s.p50[side].append(p50[side])
            s.p99[side].append(percentile(lat[side]["durations_s"], 0.99))
        for k, v in tput.items():
            s.rps.setdefault(k, []).append(v)
        s.predict.append(floor_predict)
        s.echo.append(statistics.median(floor_echo["durations_s"]))
    return _comparisons(name, label, setup.workers, opts, s)


def _check_same_answer(targets: dict[str, dict[str, Any]]) -> None:
    import httpx

    answers = {}
    for side, t in targets.items():
        response = httpx.post(t["url"], content=t["body"], headers={"content-type": "application/json",
                                                                   **t["headers"]}, timeout=60)
        if response.status_code != 200:
            raise RuntimeError(f"{side} answered {response.status_code}: {response.text[:500]}")
        answer = response.json()
        answers[side] = answer["predictions"] if isinstance(answer, dict) and "predictions" in answer else answer
    if len({json.dumps(a) for a in answers.values()}) != 1:
        raise RuntimeError(f"the servers disagree on the same input: {answers}")


def _comparisons(name: str, label: str, workers: int, opts: argparse.Namespace, s: Samples) -> list[Comparison]:
    mlyard = f"mlyard {package_version('mlyard')} online endpoint, 1 instance x WORKER_COUNT={workers}"
    peer = f"mlflow {package_version('mlflow')} models serve --env-manager local -w {workers}"
    med = statistics.median
    floors = (f"floors (median of rounds): PyFuncModel.predict in-process p50 {_ms(med(s.predict))}; raw uvicorn "
              f"ASGI echo on loopback p50 {_ms(med(s.echo))}")
    out = []
    for side, batching in (("off", "batching off"), ("on", f"batching on (max {BATCH['MLYARD_BATCH_MAX_SIZE']}, "
                                                           f"{BATCH['MLYARD_BATCH_MAX_WAIT_MS']} ms)")):
        added = [a - p for a, p in zip(s.p50[side], s.predict, strict=True)]
        out.append(Comparison(
            name=f"Serving {name}, {batching}: single-client p50",
            subject=f"{mlyard}, {batching}", peer=peer,
            workload=f"{label}; one-row request, one client, {opts.requests} sequential requests per round",
            subject_s=s.p50[side], peer_s=s.p50["mlflow"],
            subject_extra=f"p99 {_ms(med(s.p99[side]))}; added over predict {_ms(med(added))}",
            peer_extra=f"p99 {_ms(med(s.p99['mlflow']))}; added over predict "
                       f"{_ms(med([m - p for m, p in zip(s.p50['mlflow'], s.predict, strict=True)]))}",
            notes=[floors]))
        for clients in CLIENTS:
            mine, theirs = s.rps[side, clients], s.rps["mlflow", clients]
            out.append(Comparison(
                name=f"Serving {name}, {batching}: throughput at {clients} clients (time per request)",
                subject=f"{mlyard}, {batching}", peer=peer,
                workload=f"{label}; one-row requests, {clients} concurrent keep-alive clients for {opts.duration:g} s "
                         "per round; the figure is 1 / throughput, so the ratio is MLflow's req/s over mlyard's",
                subject_s=[1 / r for r in mine], peer_s=[1 / r for r in theirs],
                subject_extra=f"{med(mine):.0f} req/s", peer_extra=f"{med(theirs):.0f} req/s", notes=[floors]))
    return out


def run(rounds: int, progress: Progress, opts: argparse.Namespace) -> list[Comparison]:
    unknown = set(opts.models.split(",")) - set(MODELS)
    if unknown:
        raise ValueError(f"--serving-models: no model named {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(MODELS)}")
    base = Path(tempfile.mkdtemp(prefix="mlyard-bench-serving-"))
    setup = Setup(base=base, workers=opts.workers)
    try:
        setup.start_mlyard()
        echo_url = setup.start_echo()
        results: list[Comparison] = []
        for name in opts.models.split(","):
            results += measure_model(name, setup, rounds, opts, progress, echo_url)
        return results
    finally:
        setup.stop()
        shutil.rmtree(base, ignore_errors=True)


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--serving-workers", dest="workers", type=int, default=2,
                        help="serving: worker processes of each server (default 2)")
    parser.add_argument("--serving-models", dest="models", default=",".join(MODELS),
                        help=f"serving: comma-separated models to measure (default {','.join(MODELS)})")
    parser.add_argument("--serving-requests", dest="requests", type=int, default=1000,
                        help="serving: sequential requests of the single-client latency per round (default 1000)")
    parser.add_argument("--serving-duration", dest="duration", type=float, default=10.0,
                        help="serving: seconds of each throughput window (default 10)")
    parser.add_argument("--serving-predict-calls", dest="predict_calls", type=int, default=300,
                        help="serving: in-process predict calls per round for the floor's p50 (default 300)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="mlyard online endpoints against mlflow models serve.")
    parser.add_argument("--quick", action="store_true", help="3 rounds, 300 requests, 2 s windows: a check")
    parser.add_argument("--rounds", type=int, default=5)
    add_options(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.requests, args.duration, args.predict_calls = 3, 300, 2.0, 100
    sys.argv = [sys.argv[0]]
    import run as runner

    return runner.main(["--only", "serving", "--rounds", str(args.rounds), "--serving-workers", str(args.workers),
                        "--serving-models", args.models,
                        "--serving-requests", str(args.requests), "--serving-duration", str(args.duration),
                        "--serving-predict-calls", str(args.predict_calls)])


if __name__ == "__main__":
    sys.exit(main())
