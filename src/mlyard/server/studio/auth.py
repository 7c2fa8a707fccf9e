"""Who may see the studio: the cookie session, checked on every page and JSON call, and CSRF on every post.

Pages without a session redirect to the sign-in page; the studio's JSON calls (``/studio/api/...``)
answer 401. A form post must carry the session's CSRF token (a hidden field, or the ``X-CSRF-Token``
header that htmx sends), on top of the cookie's SameSite=Strict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute

from mlyard.core.errors import (
    InternalError,
    InvalidRequestError,
    MlyardError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from mlyard.server.services import Services
from mlyard.server.studio.sessions import COOKIE, SessionStore, StudioSession, same
from mlyard.server.studio.templating import render

log = logging.getLogger("mlyard.server")
PREFIX = "/studio"
API_PREFIX = "/studio/api/"
MAX_FORM_BYTES = 64 * 1024


class SignInRequired(Exception):
    """No valid session: a page redirects to sign-in, a JSON call answers 401."""


def sessions(request: Request) -> SessionStore:
    store: SessionStore | None = getattr(request.app.state, "studio_sessions", None)
    if store is None:
        services: Services = request.app.state.services
        store = request.app.state.studio_sessions = SessionStore(services.tokens)
    return store


async def current_session(request: Request) -> StudioSession:
    session = sessions(request).get(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired()
    request.state.studio_session = session
    return session


Signed = Annotated[StudioSession, Depends(current_session)]


async def form(request: Request) -> dict[str, str]:
    """An url-encoded form's fields (the first value of each)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise InvalidRequestError(f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError("the form could not be read: send it from the studio's page") from None
    return {k: v[0] for k, v in fields.items()}


async def checked_form(request: Request, session: Signed) -> dict[str, str]:
    """The form of a post from a signed-in page, its CSRF token checked."""
    fields = await form(request)
    if not same(fields.get("csrf") or request.headers.get("x-csrf-token"), session.csrf):
        raise PermissionDeniedError("the form's CSRF token is missing or stale: reload the page and try again")
    return fields


def _sign_in_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{PREFIX}/signin?next={quote(target, safe='')}"


class StudioRoute(APIRoute):
    """Pages answer HTML errors; the studio's JSON calls answer JSON errors; both never a stack trace."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()
        is_api = self.path.startswith(API_PREFIX)

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except SignInRequired:
                err = UnauthenticatedError("no studio session: sign in at /studio/signin")
                if is_api or request.headers.get("hx-request"):
                    return JSONResponse(err.to_dict(), status_code=401)
                return RedirectResponse(_sign_in_url(request), status_code=303)
            except RequestValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                return _error(request, is_api, InvalidRequestError(f"invalid request: {problems}"))
            except MlyardError as exc:
                return _error(request, is_api, exc)
            except Exception:  # a bug of ours: logged with its trace, the reader sees a plain page
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return _error(request, is_api, InternalError("internal server error; the server log has the details"))

        return handler


def _error(request: Request, is_api: bool, err: MlyardError) -> Response:
    if is_api:
        return JSONResponse(err.to_dict(), status_code=err.status_code)
    session = getattr(request.state, "studio_session", None)
    return render(request, "error.html", status=err.status_code, session=session, error=err)
