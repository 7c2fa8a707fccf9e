"""Every failure leaves the server as a JSON error body.

mlyard's routes answer ``{"error": {code, message, details}}``; MLflow's routes answer MLflow's
``{"error_code", "message"}``, which its client turns back into the same exception.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlyard.core.errors import InternalError, InvalidRequestError, MlyardError, NotFoundError
from mlyard.server.mlflow.protocol import is_mlflow_path, mlflow_error

log = logging.getLogger("mlyard.server")


def error_response(request: Request, err: MlyardError, status: int | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The error body for ``err`` in the shape the route's clients expect."""
    if is_mlflow_path(request.url.path):
        body, mlflow_status = mlflow_error(err)
        return JSONResponse(body, status_code=status or mlflow_status, headers=headers)
    return JSONResponse(err.to_dict(), status_code=status or err.status_code, headers=headers)


def _field(loc: tuple[object, ...]) -> str:
    return ".".join(str(p) for p in loc)


async def _mlyard_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MlyardError)
    return error_response(request, exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{_field(e['loc'])}: {e['msg']}" for e in exc.errors()]
    err = InvalidRequestError(
        "invalid request: " + "; ".join(problems[:10]),
        details={"errors": [{"field": _field(e["loc"]), "message": e["msg"]} for e in exc.errors()]},
    )
    return error_response(request, err)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        detail = f"no such route: {exc.detail}" if exc.detail != "Not Found" else "no such route"
        err: MlyardError = NotFoundError(detail)
    else:
        err = InvalidRequestError(str(exc.detail))
    return error_response(request, err, exc.status_code, getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(request, InternalError("internal server error; the server log has the details"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MlyardError, _mlyard_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
