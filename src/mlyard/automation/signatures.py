"""Signing webhook deliveries, and checking them on the receiving side.

Standard library only: a receiver imports :func:`verify_signature` without the server's dependencies.

mlyard's deliveries carry ``X-Mlyard-Timestamp`` (unix seconds) and ``X-Mlyard-Signature:
v1=<hex>``, the HMAC-SHA256 of ``"<timestamp>.<body>"`` under the webhook's secret. Signing the
timestamp with the body lets a receiver refuse a captured delivery replayed later: it checks the
signature, then that the timestamp is recent (five minutes by default).

MLflow's deliveries (webhooks made through MLflow's API) are signed as MLflow signs them:
``X-MLflow-Signature: v1,<base64>``, the HMAC-SHA256 of ``"<delivery id>.<timestamp>.<body>"``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

EVENT_HEADER = "X-Mlyard-Event"
DELIVERY_HEADER = "X-Mlyard-Delivery"
TIMESTAMP_HEADER = "X-Mlyard-Timestamp"
SIGNATURE_HEADER = "X-Mlyard-Signature"

MLFLOW_DELIVERY_HEADER = "X-MLflow-Delivery-Id"
MLFLOW_TIMESTAMP_HEADER = "X-MLflow-Timestamp"
MLFLOW_SIGNATURE_HEADER = "X-MLflow-Signature"

DEFAULT_TOLERANCE_S = 300


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def sign(secret: str, timestamp: int | str, body: str | bytes) -> str:
    """The ``X-Mlyard-Signature`` value of ``body`` sent at ``timestamp``: ``v1=<hex HMAC-SHA256>``."""
    digest = hmac.new(_bytes(secret), f"{timestamp}.".encode() + _bytes(body), hashlib.sha256).hexdigest()
    return f"v1={digest}"


def _recent(timestamp: int | str, tolerance_s: float, now: float | None) -> bool:
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    return abs((time.time() if now is None else now) - sent) <= tolerance_s


def verify_signature(secret: str, body: str | bytes, timestamp: int | str | None, signature: str | None, *,
                     tolerance_s: float = DEFAULT_TOLERANCE_S, now: float | None = None) -> bool:
    """Whether an mlyard delivery is authentic and recent.

    Args:
        secret: the webhook's secret.
        body: the request body exactly as received (bytes, before any JSON parsing).
        timestamp: the ``X-Mlyard-Timestamp`` header.
        signature: the ``X-Mlyard-Signature`` header (``v1=<hex>``; several, comma-separated, during a
            secret rotation: any may match).
        tolerance_s: how old (or how far ahead) a timestamp may be; older deliveries are refused as replays.
        now: the receiver's clock in unix seconds (default: ``time.time()``).
    """
    if not signature or timestamp is None or not _recent(timestamp, tolerance_s, now):
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in signature.split(","))


def sign_mlflow(secret: str, delivery_id: str, timestamp: int | str, body: str | bytes) -> str:
    """The ``X-MLflow-Signature`` value, as MLflow computes it: ``v1,<base64 HMAC-SHA256>``."""
    content = f"{delivery_id}.{timestamp}.".encode() + _bytes(body)
    digest = hmac.new(_bytes(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_mlflow_signature(secret: str, body: str | bytes, delivery_id: str | None, timestamp: int | str | None,
                            signature: str | None, *, tolerance_s: float = DEFAULT_TOLERANCE_S,
                            now: float | None = None) -> bool:
    """Whether a delivery to a webhook made through MLflow's API is authentic and recent (MLflow's scheme)."""
    if not signature or not delivery_id or timestamp is None or not _recent(timestamp, tolerance_s, now):
        return False
    return hmac.compare_digest(sign_mlflow(secret, delivery_id, timestamp, body), signature.strip())


__all__ = ["sign", "sign_mlflow", "verify_mlflow_signature", "verify_signature"]
