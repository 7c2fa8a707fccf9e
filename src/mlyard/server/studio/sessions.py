"""The studio's sign-in state: cookie sessions, their CSRF tokens, and one-time sign-in codes.

Held in the server's memory: a restart signs everyone out (they sign in again with their token). A
session remembers the hash of the token it was opened with and is checked against the store (through
the token verifier's short cache) on every request, so revoking the token ends its sessions too.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from mlyard.auth.tokens import Principal, TokenVerifier

COOKIE = "mlyard_studio"
PRE_COOKIE = "mlyard_studio_pre"  # CSRF for the sign-in form itself, before a session exists
SESSION_SECONDS = 12 * 3600
CODE_SECONDS = 60.0
MAX_SESSIONS = 10_000


@dataclass
class StudioSession:
    principal: Principal
    token: str  # kept in memory only, to re-check revocation; never written anywhere
    csrf: str
    expires: float


@dataclass
class _Code:
    token: str
    expires: float


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


class SessionStore:
    def __init__(self, tokens: TokenVerifier) -> None:
        self._tokens = tokens
        self._sessions: dict[str, StudioSession] = {}
        self._codes: dict[str, _Code] = {}
        self._lock = threading.Lock()

    def open(self, token: str) -> tuple[str, StudioSession] | None:
        """A new session for a valid workspace token (None for an invalid or revoked one)."""
        principal = self._tokens.verify(token)
        if principal is None:
            return None
        sid = secrets.token_urlsafe(32)
        session = StudioSession(principal, token, secrets.token_urlsafe(24), time.monotonic() + SESSION_SECONDS)
        with self._lock:
            self._sweep()
            self._sessions[sid] = session
        return sid, session

    def get(self, sid: str | None) -> StudioSession | None:
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is not None and session.expires < time.monotonic():
                del self._sessions[sid]
                session = None
        if session is None:
            return None
        if self._tokens.verify(session.token) is None:  # revoked since: the session ends with it
            self.close(sid)
            return None
        return session

    def close(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)

    def issue_code(self, token: str) -> str:
        """A one-time code, good for CODE_SECONDS, that opens a session for ``token`` (``mlyard studio``)."""
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._sweep()
            self._codes[code] = _Code(token, time.monotonic() + CODE_SECONDS)
        return code

    def redeem(self, code: str) -> tuple[str, StudioSession] | None:
        with self._lock:
            entry = self._codes.pop(code, None)
        if entry is None or entry.expires < time.monotonic():
            return None
        return self.open(entry.token)

    def _sweep(self) -> None:
        now = time.monotonic()
        for sid in [k for k, v in self._sessions.items() if v.expires < now]:
            del self._sessions[sid]
        for code in [k for k, v in self._codes.items() if v.expires < now]:
            del self._codes[code]
        while len(self._sessions) >= MAX_SESSIONS:  # the oldest go first
            del self._sessions[next(iter(self._sessions))]
