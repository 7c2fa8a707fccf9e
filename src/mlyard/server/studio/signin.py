"""Sign-in and sign-out, the root page that maps MLflow's UI links, and the one-time codes of ``mlyard studio``.

The token is only ever sent in a form's body (never in a URL), so it lands in no access log. ``mlyard
studio`` asks the API (with its bearer token) for a one-time code valid for a minute and opens
``/studio/signin#code=...``: the fragment never leaves the browser, the sign-in page posts it in a form.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from mlyard.core.errors import UnauthenticatedError
from mlyard.server.middleware import _bearer
from mlyard.server.studio.auth import PREFIX, StudioRoute, checked_form, form, sessions
from mlyard.server.studio.sessions import COOKIE, PRE_COOKIE, SESSION_SECONDS, same
from mlyard.server.studio.templating import SECURITY_HEADERS, render

router = APIRouter(route_class=StudioRoute, include_in_schema=False)
api_router = APIRouter(tags=["studio"])

ROOT_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mlyard</title>
<script src="/studio/static/root.js"></script></head>
<body><noscript><a href="/studio/">Open the mlyard studio</a></noscript></body></html>"""


def _safe_next(target: str | None) -> str:
    """Only a studio path of this server (never another site: //evil, /\\evil, https://...)."""
    if target and target.startswith(PREFIX + "/") and "//" not in target and "\\" not in target:
        return target
    return PREFIX + "/"


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


@router.get("/", response_class=HTMLResponse)
def root() -> HTMLResponse:
    """MLflow's links are ``/#/experiments/<id>/runs/<run>``: a fragment, so a script maps it to a studio page."""
    return HTMLResponse(ROOT_PAGE, headers=SECURITY_HEADERS)


@router.get(PREFIX)
def studio_root() -> RedirectResponse:
    return RedirectResponse(PREFIX + "/", status_code=307)


@router.get(PREFIX + "/signin", response_class=HTMLResponse)
def signin_page(request: Request, next: str | None = None) -> Response:
    pre = secrets.token_urlsafe(24)
    response = render(request, "signin.html", csrf=pre, next=_safe_next(next), error=None)
    _set_cookie(response, request, PRE_COOKIE, pre, 600)
    return response


@router.post(PREFIX + "/signin", response_class=HTMLResponse)
async def signin(request: Request, fields: Annotated[dict[str, str], Depends(form)]) -> Response:
    target = _safe_next(fields.get("next"))
    if not same(fields.get("csrf"), request.cookies.get(PRE_COOKIE)):
        return _refused(request, target, "the sign-in form expired: sign in again on this page")
    store = sessions(request)
    code, token = fields.get("code", "").strip(), fields.get("token", "").strip()
    opened = store.redeem(code) if code else store.open(token) if token else None
    if opened is None:
        reason = ("the sign-in link is used or expired: run 'mlyard studio' again" if code else
                  "that token is not valid (revoked or mistyped): use the token 'mlyard workspace init' printed, "
                  "as in the workspace's .mlyard/client.yaml" if token else "enter the workspace token")
        return _refused(request, target, reason)
    sid, _ = opened
    response = RedirectResponse(target, status_code=303)
    _set_cookie(response, request, COOKIE, sid, SESSION_SECONDS)
    response.delete_cookie(PRE_COOKIE, path="/")
    return response


def _refused(request: Request, target: str, reason: str) -> Response:
    pre = secrets.token_urlsafe(24)
    response = render(request, "signin.html", status=401, csrf=pre, next=target, error=reason)
    _set_cookie(response, request, PRE_COOKIE, pre, 600)
    return response


@router.post(PREFIX + "/signout")
async def signout(request: Request, fields: Annotated[dict[str, str], Depends(checked_form)]) -> Response:
    sessions(request).close(request.cookies.get(COOKIE))
    response = RedirectResponse(PREFIX + "/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


class SignInCode(BaseModel):
    code: str = Field(description="One-time code: open /studio/signin#code=<code> within a minute.")
    url: str = Field(description="The sign-in link to open in a browser (the code is in its fragment).")


@api_router.post("/api/v1/studio/codes", response_model=SignInCode, status_code=201,
                 summary="A one-time studio sign-in code for the calling token")
def issue_code(request: Request) -> SignInCode:
    token = _bearer(request.scope)
    if token is None:  # the middleware let it through, so this cannot happen; never a stack trace all the same
        raise UnauthenticatedError("send 'Authorization: Bearer <token>'")
    code = sessions(request).issue_code(token)
    return SignInCode(code=code, url=f"{PREFIX}/signin#code={code}")
