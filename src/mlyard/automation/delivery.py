"""One delivery attempt: the body and headers of a webhook POST, sending it, and what came of it.

Bodies are JSON. mlyard's flavour sends the logged event as it is (id, type, subject, actor, time,
payload); MLflow's flavour sends MLflow's envelope (``entity``, ``action``, ``timestamp``, ``data``).
Both are signed over the exact bytes sent (``signatures.py``); the delivery id is the same for every
attempt at one event, and derived from the webhook and the event, so a receiver can drop duplicates.

An attempt ends in one of three states: ``succeeded`` (any 2xx), ``gave_up`` (a refusal that retrying
cannot change: a 3xx, since redirects are not followed, or a 4xx other than 408 and 429; or the last
allowed attempt failed), or ``failed`` (a timeout, a connection error, 408, 429 or 5xx: tried again
after an exponential back-off with jitter).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from mlyard import __version__
from mlyard.automation.mlflow_events import MlflowEvent
from mlyard.automation.signatures import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    MLFLOW_DELIVERY_HEADER,
    MLFLOW_SIGNATURE_HEADER,
    MLFLOW_TIMESTAMP_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    sign_mlflow,
)

_IDS = uuid.UUID("5b0f3f0e-6d6c-7961-7264-776562686f6b")  # namespace of delivery ids
MAX_RESPONSE_TEXT = 2000  # of a receiver's answer kept for a test result
MAX_DELAY_S = 3600.0
RETRY_STATUSES = frozenset({408, 429})


def delivery_id(webhook: str, event: int, index: int = 0) -> str:
    """The id of every attempt to deliver ``event`` (its ``index``-th MLflow event) to ``webhook``."""
    return str(uuid.uuid5(_IDS, f"{webhook}/{event}/{index}"))


def mlyard_body(*, event_id: int, type: str, subject: str, actor: str, at: int, payload: dict[str, Any],
                webhook: str, test: bool = False) -> bytes:
    body: dict[str, Any] = {"id": event_id, "type": type, "subject": subject, "actor": actor, "at": at,
                            "payload": payload, "webhook": webhook}
    if test:
        body["test"] = True
    return json.dumps(body, separators=(",", ":"), default=str).encode()


def mlflow_body(event: MlflowEvent, at_ms: int) -> bytes:
    """MLflow's envelope (``mlflow/webhooks/delivery.py``), serialized as MLflow does (``json.dumps``)."""
    return json.dumps({"entity": event.entity, "action": event.action,
                       "timestamp": datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(),
                       "data": event.data}, default=str).encode()


def headers(flavor: str, secret: str | None, delivery: str, event_name: str, body: bytes,
            now: float) -> dict[str, str]:
    """The headers of one attempt; signed when the webhook has a secret."""
    timestamp = str(int(now))
    out = {"Content-Type": "application/json"}
    if flavor == "mlflow":
        out |= {MLFLOW_DELIVERY_HEADER: delivery, MLFLOW_TIMESTAMP_HEADER: timestamp}
        if secret:
            out[MLFLOW_SIGNATURE_HEADER] = sign_mlflow(secret, delivery, timestamp, body)
        return out
    out |= {EVENT_HEADER: event_name, DELIVERY_HEADER: delivery, TIMESTAMP_HEADER: timestamp}
    if secret:
        out[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return out


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to."""

    state: str  # succeeded, failed (will retry), gave_up
    status_code: int | None
    error: str | None
    duration_ms: int
    response_text: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "succeeded"


def _judge(status: int, attempt: int, max_attempts: int) -> tuple[str, str | None]:
    if 200 <= status < 300:
        return "succeeded", None
    retry = status >= 500 or status in RETRY_STATUSES
    error = f"the receiver answered HTTP {status}" + ("" if retry else "; not retried (only 408, 429 and 5xx are)")
    if 300 <= status < 400:
        error = f"the receiver answered HTTP {status} (a redirect); redirects are not followed: use the final URL"
    return ("failed" if retry and attempt < max_attempts else "gave_up"), error


class Sender:
    """Sends attempts over one pooled HTTP client (thread-safe), judging each answer."""

    def __init__(self, *, timeout_s: float, backoff_s: float, max_attempts: int) -> None:
        self.backoff_s = backoff_s
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False, trust_env=False,
                                  headers={"User-Agent": f"mlyard-webhooks/{__version__}"},
                                  limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))

    def send(self, url: str, body: bytes, sent_headers: dict[str, str], attempt: int) -> Outcome:
        start = time.perf_counter()
        try:
            response = self._http.post(url, content=body, headers=sent_headers)
        except httpx.TimeoutException:
            return self._transport_failure(f"the receiver did not answer within {self.timeout_s:g} s", attempt,
                                           start)
        except Exception as exc:  # connection refused, DNS, TLS, an address httpx cannot encode
            return self._transport_failure(f"cannot reach the receiver: {exc.__class__.__name__}: {exc}"[:500],
                                           attempt, start)
        state, error = _judge(response.status_code, attempt, self.max_attempts)
        return Outcome(state, response.status_code, error, _elapsed_ms(start), response.text[:MAX_RESPONSE_TEXT])

    def _transport_failure(self, error: str, attempt: int, start: float) -> Outcome:
        return Outcome("failed" if attempt < self.max_attempts else "gave_up", None, error, _elapsed_ms(start))

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt``: the back-off doubled each time, plus up to 50%."""
        base: float = min(self.backoff_s * 2.0 ** (attempt - 1), MAX_DELAY_S)
        return base * (1 + random.random() / 2)

    def close(self) -> None:
        self._http.close()


def _elapsed_ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)
