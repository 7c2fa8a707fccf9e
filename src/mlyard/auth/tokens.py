"""API tokens: issued once, stored only as a sha256, checked on every request."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.core.hashing import sha256_bytes
from mlyard.core.ids import new_token
from mlyard.store.db import Database
from mlyard.store.schema import ApiToken

CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name and role."""

    name: str
    role: str


def hash_token(token: str) -> str:
    return sha256_bytes(token.encode())


def issue_token(session: Session, name: str, role: str = "admin") -> str:
    """Create a token and return its secret; only the hash is stored."""
    secret = new_token()
    session.add(ApiToken(name=name, token_hash=hash_token(secret), role=role))
    return secret


class TokenVerifier:
    """Checks bearer tokens against the store, caching hits briefly to keep requests cheap."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified in the last CACHE_SECONDS, without touching the store."""
        digest = hash_token(token)
        with self._lock:
            hit = self._cache.get(digest)
        return hit[1] if hit and time.monotonic() - hit[0] < CACHE_SECONDS else None

    def forget(self, token_hash: str) -> None:
        """Drop a token from the cache (it was just revoked)."""
        with self._lock:
            self._cache.pop(token_hash, None)

    def verify(self, token: str) -> Principal | None:
        if (principal := self.cached(token)) is not None:
            return principal
        digest = hash_token(token)
        now = time.monotonic()
        with self._db.session() as s:
            row = s.execute(
                select(ApiToken.name, ApiToken.role).where(ApiToken.token_hash == digest, ApiToken.revoked.is_(False))
            ).first()
        if row is None:
            return None
        principal = Principal(name=row.name, role=row.role)
        with self._lock:
            self._cache[digest] = (now, principal)
        return principal
