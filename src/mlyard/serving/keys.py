"""Endpoint credentials: keys (``auth_mode: key``) and expiring tokens (``auth_mode: aml_token``).

Tokens are signed, not stored: ``<expiry>.<hmac>`` with the endpoint's primary key, so regenerating
the primary key revokes every token issued with it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

TOKEN_TTL_S = 24 * 3600


def new_key() -> str:
    return secrets.token_urlsafe(32)


def issue_token(endpoint: str, primary_key: str, now: float | None = None) -> tuple[str, int]:
    """A token for ``endpoint`` and its expiry (seconds since the epoch)."""
    expiry = int(now if now is not None else time.time()) + TOKEN_TTL_S
    return f"{expiry}.{_sign(endpoint, primary_key, expiry)}", expiry


def _sign(endpoint: str, primary_key: str, expiry: int) -> str:
    return hmac.new(primary_key.encode(), f"{endpoint}.{expiry}".encode(), hashlib.sha256).hexdigest()


def matches_key(credential: str, keys: dict[str, str]) -> bool:
    """Whether ``credential`` is the primary or the secondary key, compared in constant time."""
    found = False
    for key in (keys.get("primary", ""), keys.get("secondary", "")):
        found |= hmac.compare_digest(credential.encode(), key.encode())
    return found


def valid_token(endpoint: str, credential: str, primary_key: str, now: float | None = None) -> bool:
    expiry_text, _, signature = credential.partition(".")
    if not expiry_text.isdigit() or int(expiry_text) < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(signature.encode(), _sign(endpoint, primary_key, int(expiry_text)).encode())
