"""Plain ASGI middleware: bearer-token authentication with an audit trail, and request metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlyard.auth.tokens import Principal
from mlyard.core.errors import InvalidRequestError, UnauthenticatedError
from mlyard.server.bodies import decode_json
from mlyard.server.mlflow.protocol import is_mlflow_path, mlflow_error
from mlyard.server.services import Services
from mlyard.store.audit import PendingAudit, pending_audit, write_entry
from mlyard.store.refusals import Entry, RefusalLog

log = logging.getLogger("mlyard.server")

OPEN_PATHS = frozenset({"/healthz"})
# The studio's pages and JSON calls: signed in with a cookie session, checked by the studio itself
# (server/studio/auth.py), never with the API's bearer token.
STUDIO_PATHS = frozenset({"/", "/studio"})
STUDIO_PREFIX = "/studio/"
AJAX_PREFIX = "/ajax-api/2.0/mlflow/"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RAW_BODY_PREFIX = "/api/v1/datastores/"  # uploads: a file's bytes, whatever its content type says


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": payload})


async def _refuse(send: Send, path: str, err: InvalidRequestError) -> None:
    """A 400 in the shape of the route's clients (MLflow's or mlyard's)."""
    await _send_json(send, 400, mlflow_error(err)[0] if is_mlflow_path(path) else err.to_dict(), [])


def is_studio_path(path: str) -> bool:
    return path in STUDIO_PATHS or path.startswith(STUDIO_PREFIX)


def _bearer(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class AuthMiddleware:
    """Requires ``Authorization: Bearer <token>`` on every route but health and the studio's; audits mutations."""

    def __init__(self, app: ASGIApp, services: Callable[[], Services]) -> None:
        self.app = app
        self.services = services
        self.refusals = RefusalLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._flushing(receive), send)
            return
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or is_studio_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        services = self.services()
        if self.refusals.due():  # a minute of counted refusals has ended: its summaries
            await self._write(services, self.refusals.sweep())
        token = _bearer(scope)
        principal: Principal | None = None
        if token is not None:  # the store is read (in a worker thread) only on a cache miss
            principal = services.tokens.cached(token) or await anyio.to_thread.run_sync(services.tokens.verify, token)
        if principal is None:
            reason = "missing bearer token" if token is None else "invalid or revoked token"
            err = UnauthenticatedError(
                f"{reason}: send 'Authorization: Bearer <token>' with the token 'mlyard workspace init' "
                "printed (the CLI reads MLYARD_TOKEN or the workspace's .mlyard/client.yaml)"
            )
            if scope["method"] in MUTATING:  # at a bounded rate: anyone can send these (store/refusals.py)
                client = scope.get("client")
                await self._write(services, self.refusals.refuse(client[0] if client else None, scope["method"],
                                                                 scope["path"]))
            body = mlflow_error(err)[0] if is_mlflow_path(scope["path"]) else err.to_dict()
            await _send_json(send, 401, body, [(b"www-authenticate", b"Bearer")])
            return
        scope.setdefault("state", {})["principal"] = principal
        if scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        # The entry is written before the response completes, so a client that saw the response can rely
        # on finding it. On MLflow's routes, where every success is a 200, it rides in the change's own
        # transaction (store/audit.py); elsewhere, and when a request ends otherwise, it is written here.
        audit = PendingAudit(principal.name, scope["method"], scope["path"])
        reset = pending_audit.set(audit) if is_mlflow_path(scope["path"]) else None
        status = 500
        audited = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, audited
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False) and not audited:
                audited = True
                await self._settle(services, audit, status)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if reset is not None:
                pending_audit.reset(reset)
            if not audited:  # the request failed before a complete response
                await self._settle(services, audit, status)

    @staticmethod
    async def _settle(services: Services, audit: PendingAudit, status: int) -> None:
        if audit.settled(status):  # committed with the change, and it ended as expected
            return
        try:
            await anyio.to_thread.run_sync(audit.settle, services.db.run_in_transaction, status)
        except Exception:  # an audit failure must not turn a done request into an error
            log.exception("could not write the audit entry for %s %s", audit.action, audit.resource)

    @staticmethod
    async def _write(services: Services, entries: list[Entry]) -> None:
        if not entries:
            return

        def write(s: Session) -> None:
            for entry in entries:
                write_entry(s.connection(), *entry)

        try:
            await anyio.to_thread.run_sync(services.db.run_in_transaction, write)
        except Exception:
            log.exception("could not write %d audit entries of refused requests", len(entries))

    def _flushing(self, receive: Receive) -> Receive:
        """``receive`` for the lifespan: at shutdown, before the store closes, the counts still held are written."""

        async def wrapped() -> Message:
            message = await receive()
            entries = self.refusals.flush() if message["type"] == "lifespan.shutdown" else []
            if entries:  # only then: a server whose start-up failed has no services to write with
                await self._write(self.services(), entries)
            return message

        return wrapped


def _is_json(scope: Scope) -> bool:
    for key, value in scope.get("headers", []):
        if key == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))
    return False


class StrictInputMiddleware:
    """Refuses a NUL character in a request's path or query, and holds mlyard's own routes' JSON bodies to
    :func:`decode_json`'s rules before FastAPI parses them.

    PostgreSQL cannot take NUL in any text, a name looked up included. FastAPI reads bodies with the
    standard library, which takes ``NaN``, ``1e400`` (infinity), lone surrogates and any integer; each
    would fail later, deep in the store, as a server error. MLflow's routes decode their bodies
    themselves (``mlflow/protocol.py``), with the same function.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await _refuse(send, scope["path"], InvalidRequestError(
                "the request's path or query holds a NUL character (%00): no name or text may contain it"))
            return
        if scope["method"] not in MUTATING or is_mlflow_path(scope["path"]) or not _is_json(scope) \
                or scope["path"].startswith(RAW_BODY_PREFIX):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body.strip():
            try:
                decode_json(body, exact_integers=True)
            except InvalidRequestError as err:
                await _refuse(send, scope["path"], err)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class MlflowUiPrefixMiddleware:
    """MLflow's UI calls ``/ajax-api/2.0/mlflow/...``: the same routes as ``/api/2.0/mlflow/...``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(AJAX_PREFIX):
            path = "/api" + scope["path"][len("/ajax-api"):]
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)


class MetricsMiddleware:
    """Counts requests and their duration per route template, on the app's own registry."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "mlyard_http_requests_total", "HTTP requests served.", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "mlyard_http_request_duration_seconds", "Time to serve HTTP requests.", ["method", "route"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.requests.labels(scope["method"], template, str(status)).inc()
            self.latency.labels(scope["method"], template).observe(time.perf_counter() - start)
