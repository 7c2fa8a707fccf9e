"""The scoring router: ``POST /endpoints/<endpoint>/score`` on the server's own port.

A raw ASGI app in front of FastAPI (no per-request framework cost): it authenticates the caller by
the endpoint's auth mode, picks a deployment (the ``azureml-model-deployment`` header, else a
weighted random choice by traffic), and forwards the body to one of that deployment's ready workers
over its unix socket, on a kept-alive connection (``upstream.py``). Every answer names the deployment that served it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from mlyard.auth.tokens import TokenVerifier
from mlyard.serving import keys as keyring
from mlyard.serving.endpoints import EndpointService, LiveEndpoint
from mlyard.serving.metrics import ServingMetrics
from mlyard.serving.supervisor import Pool, Worker
from mlyard.serving.upstream import UpstreamError, WorkerConnections

log = logging.getLogger("mlyard.serving")

PREFIX = "/endpoints/"
DEPLOYMENT_HEADER = b"azureml-model-deployment"
MAX_BODY = 100 * 1024 * 1024
MAX_MIRRORS = 64  # mirrored copies in flight per server; past it copies are dropped, never queued
Headers = list[tuple[bytes, bytes]]


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class ScoringRouter:
    """Wraps the server app; requests under ``/endpoints/`` never reach FastAPI or its middleware."""

    def __init__(self, app: ASGIApp, service: Callable[[], EndpointService], tokens: Callable[[], TokenVerifier],
                 metrics: ServingMetrics) -> None:
        self.app = app
        self.service = service
        self.tokens = tokens
        self.metrics = metrics
        self._clients: dict[str, WorkerConnections] = {}
        self._mirrors: set[asyncio.Task[None]] = set()  # held so they are not collected mid-flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        parts = scope["path"][len(PREFIX):].split("/")
        if len(parts) != 2 or parts[1] != "score":
            await self._answer(send, 404, _error("not_found", f"no such scoring path {scope['path']!r}; the scoring "
                                                 "URI is /endpoints/<endpoint>/score"))
            return
        if scope["method"] not in ("POST", "GET"):
            await self._answer(send, 405, _error("method_not_allowed", "send the request with POST"))
            return
        await self._score(parts[0], scope, receive, send)

    async def _score(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.service()
        endpoint = service.live.get(name)
        if endpoint is None:
            await self._answer(send, 404, _error("not_found", f"online endpoint {name!r} not found"))
            return
        if not await self._authorized(endpoint, scope):
            await self._answer(send, 401, _error("unauthenticated", _auth_hint(endpoint)),
                               [(b"www-authenticate", b"Bearer")])
            return
        target = _header(scope, DEPLOYMENT_HEADER)
        mirror: str | None = None
        if target is not None:
            deployment = target.decode("latin-1").strip()
            if deployment not in endpoint.deployments:
                await self._answer(send, 404, _error(
                    "not_found", f"endpoint {name!r} has no deployment {deployment!r}"), _named(deployment))
                return
        else:
            chosen = _pick(endpoint.traffic)
            if chosen is None:
                await self._answer(send, 503, _error(
                    "no_traffic", f"endpoint {name!r} has no deployment with traffic; set it with 'mlyard "
                    f"online-endpoint update -n {name} --traffic \"<deployment>=100\"' or name one in the "
                    "azureml-model-deployment header"))
                return
            deployment = chosen
            mirror = _mirror_pick(endpoint.mirror_traffic)
        try:
            body = await _read_body(receive)
        except _TooLarge:
            await self._answer(send, 413, _error("too_large", f"the request body is over {MAX_BODY >> 20} MiB"))
            return
        if body is None:
            return
        if mirror is not None:
            self._send_mirror(service, name, mirror, body)
        start = time.perf_counter()
        in_flight = self.metrics.in_flight.labels(name, deployment)
        in_flight.inc()
        try:
            status, payload, headers = await self._forward(service, name, deployment, body)
        finally:
            in_flight.dec()
        self.metrics.latency.labels(name, deployment).observe(time.perf_counter() - start)
        self.metrics.requests.labels(name, deployment, str(status)).inc()
        await self._answer(send, status, payload, headers + _named(deployment))

    def _send_mirror(self, service: EndpointService, endpoint: str, deployment: str, body: bytes) -> None:
        """A copy for the mirror deployment: its answer is dropped; never more than MAX_MIRRORS at once."""
        if len(self._mirrors) >= MAX_MIRRORS:
            self.metrics.mirrored.labels(endpoint, deployment, "dropped").inc()
            return

        async def copy() -> None:
            try:
                status, _, _ = await self._forward(service, endpoint, deployment, body)
                self.metrics.mirrored.labels(endpoint, deployment, str(status)).inc()
            except Exception:  # a mirror must never fail the caller, nor log a storm
                self.metrics.mirrored.labels(endpoint, deployment, "error").inc()

        task = asyncio.get_running_loop().create_task(copy())
        self._mirrors.add(task)
        task.add_done_callback(self._mirrors.discard)

    async def _forward(self, service: EndpointService, endpoint: str, deployment: str,
                       body: bytes) -> tuple[int, bytes, Headers]:
        pool = service.supervisor.pools.get((endpoint, deployment))
        if pool is None or not pool.ready:
            return 503, _error("unavailable", f"deployment {deployment!r} of endpoint {endpoint!r} has no ready "
                                              "worker right now (starting or restarting); try again shortly"), []
        plan = pool.plan
        if pool.in_flight >= plan.max_in_flight * plan.worker_count:
            return 429, _error("too_many_requests", f"deployment {deployment!r} is serving its maximum of "
                               f"{plan.max_concurrent_per_instance} concurrent requests per instance "
                               "(request_settings.max_concurrent_requests_per_instance); retry later"), []
        pool.in_flight += 1
        try:
            return await asyncio.wait_for(self._send_to_worker(pool, body), plan.request_timeout_ms / 1000)
        except TimeoutError:
            return 408, _error("request_timeout", f"deployment {deployment!r} did not answer within "
                               f"{plan.request_timeout_ms} ms (request_settings.request_timeout_ms)"), []
        finally:
            pool.in_flight -= 1

    async def _send_to_worker(self, pool: Pool, body: bytes) -> tuple[int, bytes, Headers]:
        tried: set[int] = set()
        while True:
            candidates = [w for w in pool.ready if id(w) not in tried]
            if not candidates:
                return 503, _error("unavailable", f"no worker of deployment {pool.plan.deployment!r} could be "
                                                  "reached; it is restarting, try again shortly"), []
            worker = random.choice(candidates)  # noqa: S311 - load spreading, not security
            tried.add(id(worker))
            if worker.socket not in self._clients:  # a new worker: forget those that are gone
                self._prune()
            try:
                answer = await self._connections(worker).score(body)
            except UpstreamError as exc:
                log.warning("worker %s unreachable (%s); trying another", worker.instance_id, exc)
                self._drop(worker)
                continue
            if answer.batch:
                self.metrics.batch_size.labels(pool.plan.endpoint, pool.plan.deployment).observe(answer.batch)
            return answer.status, answer.body, [(b"content-type", answer.content_type)]

    def _connections(self, worker: Worker) -> WorkerConnections:
        connections = self._clients.get(worker.socket)
        if connections is None:
            connections = self._clients[worker.socket] = WorkerConnections(worker.socket)
        return connections

    def _prune(self) -> None:
        for socket in [s for s in self._clients if not os.path.exists(s)]:
            self._clients.pop(socket).close()

    def _drop(self, worker: Worker) -> None:
        connections = self._clients.pop(worker.socket, None)
        if connections is not None:
            connections.close()

    async def _authorized(self, endpoint: LiveEndpoint, scope: Scope) -> bool:
        credential = _bearer(scope)
        if credential is None:
            return False
        if endpoint.auth_mode == "key":
            return keyring.matches_key(credential, endpoint.keys)
        if endpoint.auth_mode == "aml_token":
            return keyring.valid_token(endpoint.name, credential, endpoint.keys["primary"])
        tokens = self.tokens()
        principal = tokens.cached(credential) or await asyncio.to_thread(tokens.verify, credential)
        return principal is not None

    @staticmethod
    async def _answer(send: Send, status: int, body: bytes, headers: Headers | None = None) -> None:
        head = dict(headers or [])
        head.setdefault(b"content-type", b"application/json")
        await send({"type": "http.response.start", "status": status,
                    "headers": [*head.items(), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _auth_hint(endpoint: LiveEndpoint) -> str:
    what = {"key": "one of its keys", "aml_token": "a token"}.get(endpoint.auth_mode)
    if what is None:
        return (f"endpoint {endpoint.name!r} needs 'Authorization: Bearer <workspace token>' (auth_mode aad_token)")
    return (f"endpoint {endpoint.name!r} needs 'Authorization: Bearer <credential>' with {what} "
            f"(auth_mode {endpoint.auth_mode}): 'mlyard online-endpoint get-credentials -n {endpoint.name}' "
            "prints it")


def _named(deployment: str) -> Headers:
    return [(DEPLOYMENT_HEADER, deployment.encode("latin-1", errors="replace"))]


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, credential = value.decode("latin-1").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" and credential.strip() else None


def _mirror_pick(mirror: dict[str, int]) -> str | None:
    """The mirror deployment, for its share of requests."""
    for name, pct in mirror.items():
        if pct > 0 and random.random() * 100 < pct:  # noqa: S311 - sampling, not security
            return name
    return None


def _pick(traffic: dict[str, int]) -> str | None:
    """A deployment drawn by traffic weight; None when no deployment has any."""
    live = [(name, pct) for name, pct in traffic.items() if pct > 0]
    if not live:
        return None
    draw = random.uniform(0, sum(p for _, p in live))  # noqa: S311 - traffic split, not security
    for name, pct in live:
        draw -= pct
        if draw < 0:
            return name
    return live[-1][0]


class _TooLarge(Exception):
    """The body passed MAX_BODY; the rest was read and dropped, never held."""


async def _read_body(receive: Callable[[], Awaitable[Any]]) -> bytes | None:
    """The whole body; None when the client went away. Raises _TooLarge past MAX_BODY (once it has all arrived)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # the client went away
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY:
            chunks.append(chunk)
        else:
            chunks.clear()
        if not message.get("more_body", False):
            if size > MAX_BODY:
                raise _TooLarge
            return b"".join(chunks)
