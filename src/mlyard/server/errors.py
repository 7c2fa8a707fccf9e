"""Every failure leaves the server as a JSON error body: ``{"error": {code, message, details}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlyard.core.errors import InternalError, InvalidRequestError, MlyardError, NotFoundError

log = logging.getLogger("mlyard.server")


def error_response(err: MlyardError) -> JSONResponse:
    return JSONResponse(err.to_dict(), status_code=err.status_code)


def _field(loc: tuple[object, ...]) -> str:
    return ".".join(str(p) for p in loc)


async def _mlyard_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MlyardError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{_field(e['loc'])}: {e['msg']}" for e in exc.errors()]
    err = InvalidRequestError(
        "invalid request: " + "; ".join(problems[:10]),
        details={"errors": [{"field": _field(e["loc"]), "message": e["msg"]} for e in exc.errors()]},
    )
    return error_response(err)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        detail = f"no such route: {exc.detail}" if exc.detail != "Not Found" else "no such route"
        err: MlyardError = NotFoundError(detail)
    else:
        err = InvalidRequestError(str(exc.detail))
    body = err.to_dict()
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(InternalError("internal server error; the server log has the details"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MlyardError, _mlyard_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
