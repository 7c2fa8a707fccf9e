"""A deployment worker: one process that loads a model once and answers ``/score`` on a unix socket.

Started by the endpoint supervisor as ``python -m mlyard.serving.worker --socket S --model-dir D ...`` (the contract
is in ``docs/serving.md``). It imports only the standard library and uvicorn before it listens, so it starts fast and
runs in an isolated environment that has uvicorn and mlyard's ``src`` on ``PYTHONPATH``; the model's own packages are
imported while it loads, in the predict thread, when ``GET /`` already answers.

Routes: ``GET /`` liveness, ``GET /ready`` readiness (503 until the model is loaded), ``POST /score``,
``GET /swagger.json`` (a scoring script's inference-schema, else 404), ``GET /stats`` (what batching did).
Predictions run in one thread, so the event loop keeps answering liveness whatever the model does. SIGTERM lets
in-flight requests finish (5 s at most); the worker dies with its parent (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import importlib.util
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from mlyard.serving import answers
from mlyard.serving.answers import Answer
from mlyard.serving.collector import (
    MDC_PATH,
    CollectorError,
    DataCollector,
    accept_azureml_event,
    serve_azureml_collector,
)

log = logging.getLogger("mlyard.serving.worker")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BATCH_MAX_SIZE = "MLYARD_BATCH_MAX_SIZE"  # requests predicted together at most (no-code only; unset or 1: off)
# how long a batch's first request may wait for others while the predict thread is idle (default 0)
BATCH_MAX_WAIT_MS = "MLYARD_BATCH_MAX_WAIT_MS"
GRACEFUL_SHUTDOWN_S = 5
_UDS_PATH_MAX = 107  # sun_path is 108 bytes on Linux, NUL included

_JSON = [(b"content-type", b"application/json")]
BATCH_HEADER = b"x-mlyard-batch-size"  # how many requests were predicted together with this one (batching only)
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


class Host(Protocol):
    """What serves a deployment's requests: a no-code MLflow model or a scoring script."""

    swagger: bytes | None

    def load(self) -> None:
        """Load the model or run ``init()``; called once, in the predict thread."""

    def score(self, body: bytes, request_id: str | None = None) -> Answer:
        """Answer one ``/score`` body (``request_id``: the caller's ``x-request-id``); never raises."""


class Scorer(Protocol):
    """How ``/score`` reaches the host: one request at a time, or batched (``batching.Batcher``)."""

    async def __call__(self, body: bytes, request_id: str | None = None) -> Answer: ...


class WorkerApp:
    """The worker's raw ASGI app.

    Args:
        host: the model host.
        executor: the single predict thread.
        on_load_failure: called (in the event loop) when loading raised, after the traceback is logged.
        make_scorer: builds the ``/score`` path once the host is loaded; defaults to one request per predict call.
        collector: the data collector, and the loopback port on which a scoring script's Collector SDK posts to it.
    """

    def __init__(self, host: Host, executor: ThreadPoolExecutor, on_load_failure: Callable[[], None],
                 make_scorer: Callable[[Host, ThreadPoolExecutor], Scorer] | None = None,
                 collector: tuple[DataCollector, int] | None = None) -> None:
        self.host = host
        self.collector = collector
        self.executor = executor
        self.on_load_failure = on_load_failure
        self.make_scorer = make_scorer or _single
        self.scorer: Scorer | None = None
        self._loading: asyncio.Future[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if self.collector is not None and scope.get("server") and scope["server"][1] == self.collector[1]:
            await self._collector_event(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == "/score":
            if method != "POST":
                await _send(send, 405, b"use POST /score", _TEXT)
                return
            body = await _read_body(receive)
            request_id = None
            for name, value in scope["headers"]:
                if name == b"x-request-id":
                    request_id = value.decode("latin-1")
            answer = await self.scorer(body, request_id) if self.scorer is not None else answers.not_ready()
            await _send(send, answer.status, answer.body,
                        [*_JSON, (BATCH_HEADER, b"%d" % answer.batch)] if answer.batch else _JSON)
        elif path == "/" and method in ("GET", "HEAD"):
            await _send(send, 200, b"Healthy", _TEXT)
        elif path == "/ready" and method in ("GET", "HEAD"):
            ready = self.scorer is not None
            await _send(send, 200 if ready else 503, b"Ready" if ready else b"Loading", _TEXT)
        elif path == "/swagger.json" and method == "GET" and self.scorer is not None and self.host.swagger:
            await _send(send, 200, self.host.swagger, _JSON)
        elif path == "/stats" and method == "GET":
            stats = getattr(self.scorer, "stats", None)
            await _send(send, 200, answers.dumps({"batching": stats.as_dict() if stats is not None else None}), _JSON)
        else:
            await _send(send, 404, b"not found: this worker serves /, /ready, /score, /swagger.json and /stats", _TEXT)

    async def _collector_event(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The loopback listener serves the Collector SDK's posts only, never /score."""
        assert self.collector is not None
        body = await _read_body(receive)
        if scope["path"] == MDC_PATH and scope["method"] == "POST":
            status = accept_azureml_event(self.collector[0], scope["headers"], body)
            await _send(send, status, b"" if status == 200 else b"ce-type names no collection", _TEXT)
        else:
            await _send(send, 404, b"this listener takes data-collector events only", _TEXT)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loading = asyncio.get_running_loop().run_in_executor(self.executor, self.host.load)
                self._loading.add_done_callback(self._loaded)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _loaded(self, loading: asyncio.Future[None]) -> None:
        if loading.cancelled():
            return
        error = loading.exception()
        if error is not None:
            log.error("loading the deployment failed", exc_info=error)
            self.on_load_failure()
            return
        self.scorer = self.make_scorer(self.host, self.executor)
        log.info("ready")


def _single(host: Host, executor: ThreadPoolExecutor) -> Scorer:
    async def score(body: bytes, request_id: str | None = None) -> Answer:
        return await asyncio.get_running_loop().run_in_executor(executor, host.score, body, request_id)

    return score


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies, so a SIGKILLed server leaves no worker behind."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _unix_socket(path: Path) -> socket.socket:
    """The worker's unix socket, bound here when uvicorn also listens elsewhere (it then takes sockets, not paths)."""
    if path.is_socket():
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    return listener


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlyard.serving.worker",
                                     description="Serve one online deployment's model on a unix socket.")
    parser.add_argument("--socket", required=True, type=Path, help="the unix socket to listen on")
    parser.add_argument("--model-dir", required=True, type=Path, help="AZUREML_MODEL_DIR: the folder holding the model")
    parser.add_argument("--model-folder", help="the model's folder under --model-dir (no-code MLflow deployments)")
    parser.add_argument("--code", type=Path, help="the scoring script's code folder")
    parser.add_argument("--scoring-script", help="the scoring script, relative to --code")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--instance-id", required=True)
    args = parser.parse_args(argv)
    if (args.code is None) != (args.scoring_script is None):
        parser.error("--code and --scoring-script go together")
    if args.code is None and not (args.model_folder or os.environ.get("MLFLOW_MODEL_FOLDER")):
        parser.error("a no-code deployment needs --model-folder (or MLFLOW_MODEL_FOLDER)")
    if len(os.fsencode(args.socket)) > _UDS_PATH_MAX:
        parser.error(f"--socket {args.socket} is longer than the {_UDS_PATH_MAX} bytes a unix socket path may have")
    return args


def build_host(args: argparse.Namespace, collector: DataCollector | None) -> Host:
    """The host for the deployment's kind; nothing is imported or loaded yet."""
    os.environ["AZUREML_MODEL_DIR"] = str(args.model_dir)
    if args.code is not None:
        from mlyard.serving.scoring import ScoringScriptHost

        return ScoringScriptHost(args.code, args.scoring_script)
    folder = args.model_folder or os.environ["MLFLOW_MODEL_FOLDER"]
    os.environ["MLFLOW_MODEL_FOLDER"] = folder
    from mlyard.serving.nocode import MlflowModelHost

    return MlflowModelHost(args.model_dir / folder, collector)


def batching_from_env(args: argparse.Namespace) -> Callable[[Host, ThreadPoolExecutor], Scorer] | None:
    """The batched ``/score`` path when ``MLYARD_BATCH_MAX_SIZE`` asks for it (no-code deployments only).

    Raises:
        SystemExit: the variables are not numbers in range (the worker exits 2 with the reason).
    """
    raw_size, raw_wait = os.environ.get(BATCH_MAX_SIZE, ""), os.environ.get(BATCH_MAX_WAIT_MS, "0")
    if not raw_size:
        return None
    try:
        size, wait_ms = int(raw_size), float(raw_wait)
    except ValueError:
        size, wait_ms = 0, -1.0
    if size < 1 or not 0 <= wait_ms <= 1000:
        sys.stderr.write(f"{BATCH_MAX_SIZE} must be a whole number of requests, at least 1, and {BATCH_MAX_WAIT_MS}"
                         f" milliseconds between 0 and 1000; got {raw_size!r} and {raw_wait!r} (set them in the "
                         "deployment's environment_variables)\n")
        raise SystemExit(2)
    if size == 1:
        return None
    if args.code is not None:
        log.warning("%s is set but batching applies to no-code MLflow deployments only; "
                    "this scoring script gets one request per run()", BATCH_MAX_SIZE)
        return None

    def make(host: Host, executor: ThreadPoolExecutor) -> Scorer:
        from mlyard.serving.batching import Batcher  # numpy and pandas: imported once the model has loaded them
        from mlyard.serving.nocode import MlflowModelHost

        assert isinstance(host, MlflowModelHost)
        return Batcher(host, executor, size, wait_ms / 1000)

    return make


def main(argv: list[str] | None = None) -> None:
    """Run the worker until SIGTERM; exit 1 when the model fails to load."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    die_with_parent()
    args = parse_args(argv)
    if args.code is not None:
        os.chdir(args.code)
    try:
        collector = DataCollector.from_env(args.instance_id)
    except CollectorError as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(2) from None
    host = build_host(args, collector)
    make_scorer = batching_from_env(args)
    sockets: list[socket.socket] | None = None
    sdk_collector: tuple[DataCollector, int] | None = None
    if collector is not None and args.code is not None:
        listener = serve_azureml_collector(collector, args.socket.parent)
        sdk_collector = (collector, listener.getsockname()[1])
        sockets = [_unix_socket(args.socket), listener]
    import uvicorn

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
    failed = False
    server: uvicorn.Server | None = None

    def fail() -> None:
        nonlocal failed
        failed = True
        if server is not None:
            server.should_exit = True

    app = WorkerApp(host, executor, fail, make_scorer, sdk_collector)
    config = uvicorn.Config(
        app, uds=str(args.socket), lifespan="on", access_log=False, log_level="info",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
    )
    server = uvicorn.Server(config)
    # uvicorn raises a SIGTERM it handled again once it has shut down; this handler makes that a no-op, so a
    # graceful stop exits 0 below instead of dying by the signal.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    log.info("worker %s of %s/%s starting on %s", args.instance_id, args.endpoint, args.deployment, args.socket)
    server.run(sockets=sockets)
    if collector is not None:
        collector.close()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # A predict call still running after the grace period must not hold the process: leave without joining it.
    os._exit(1 if failed else 0)


if __name__ == "__main__":
    main()
