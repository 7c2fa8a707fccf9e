"""The one error tree of mlyard.

Every error a user can meet is an ``MlyardError``. Each subclass has a stable ``code`` that the
server puts in its JSON error body and the client turns back into the same class, so code that
calls the SDK against a remote server catches exactly what it would catch in-process.

    MlyardError                      code              HTTP
    ├── InvalidSpecError             invalid_spec      422   a YAML/JSON spec failed validation
    ├── InvalidRequestError          invalid_request   400   a malformed argument or request
    ├── NotFoundError                not_found         404
    ├── AlreadyExistsError           already_exists    409
    ├── ConflictError                conflict          409   e.g. same version, different content
    ├── UnauthenticatedError         unauthenticated   401
    ├── PermissionDeniedError        permission_denied 403
    ├── StorageError                 storage_error     500   a datastore read/write failed
    ├── ServerUnavailableError       server_unavailable 503  (client side) the server cannot be reached
    └── InternalError                internal          500   a bug: logged with its traceback

Unknown exceptions never map to a 4xx: the server logs them and answers ``internal``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


class MlyardError(Exception):
    """Root of every mlyard error.

    Args:
        message: what went wrong, where, and what to do about it.
        details: machine-readable context (resource name, field path, ...).
    """

    code: ClassVar[str] = "error"
    status_code: ClassVar[int] = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body the server sends for this error."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidRequestError(MlyardError):
    code = "invalid_request"
    status_code = 400


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec file: where it is and what was expected."""

    message: str
    field: str = ""
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def location(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def __str__(self) -> str:
        field_part = f" {self.field}:" if self.field else ""
        return f"{self.location()}:{field_part} {self.message}"


class InvalidSpecError(MlyardError):
    """A spec (YAML file or JSON body) does not validate. Carries one issue per problem."""

    code = "invalid_spec"
    status_code = 422

    def __init__(
        self,
        message: str | None = None,
        *,
        issues: list[SpecIssue] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.issues: list[SpecIssue] = list(issues or [])
        if message is None:
            message = "\n".join(str(i) for i in self.issues) or "invalid spec"
        merged = dict(details or {})
        if self.issues and "issues" not in merged:
            merged["issues"] = [i.__dict__ for i in self.issues]
        super().__init__(message, details=merged)

    @property
    def file(self) -> str | None:
        return self.issues[0].file if self.issues else None

    @property
    def line(self) -> int | None:
        return self.issues[0].line if self.issues else None

    @property
    def field(self) -> str | None:
        return self.issues[0].field if self.issues else None


class NotFoundError(MlyardError):
    code = "not_found"
    status_code = 404


class AlreadyExistsError(MlyardError):
    code = "already_exists"
    status_code = 409


class ConflictError(MlyardError):
    code = "conflict"
    status_code = 409


class UnauthenticatedError(MlyardError):
    code = "unauthenticated"
    status_code = 401


class PermissionDeniedError(MlyardError):
    code = "permission_denied"
    status_code = 403


class StorageError(MlyardError):
    code = "storage_error"
    status_code = 500


class ServerUnavailableError(MlyardError):
    code = "server_unavailable"
    status_code = 503


class InternalError(MlyardError):
    code = "internal"
    status_code = 500


@dataclass
class _Registry:
    by_code: dict[str, type[MlyardError]] = field(default_factory=dict)


_REGISTRY = _Registry()
for _cls in (
    MlyardError,
    InvalidRequestError,
    InvalidSpecError,
    NotFoundError,
    AlreadyExistsError,
    ConflictError,
    UnauthenticatedError,
    PermissionDeniedError,
    StorageError,
    ServerUnavailableError,
    InternalError,
):
    _REGISTRY.by_code[_cls.code] = _cls


def error_class_for(code: str) -> type[MlyardError]:
    """The error class for a wire code; unknown codes become the root class."""
    return _REGISTRY.by_code.get(code, MlyardError)


def error_from_dict(body: dict[str, Any], status_code: int | None = None) -> MlyardError:
    """Rebuild the typed error from a server's JSON error body."""
    err = body.get("error", body) if isinstance(body, dict) else {}
    code = str(err.get("code", "error")) if isinstance(err, dict) else "error"
    message = str(err.get("message", f"server answered HTTP {status_code}")) if isinstance(err, dict) else str(body)
    details = err.get("details") if isinstance(err, dict) else None
    cls = error_class_for(code)
    if cls is InvalidSpecError:
        issues = [
            SpecIssue(**{k: v for k, v in i.items() if k in SpecIssue.__dataclass_fields__})
            for i in (details or {}).get("issues", [])
            if isinstance(i, dict)
        ]
        return InvalidSpecError(message, issues=issues, details=details)
    return cls(message, details=details if isinstance(details, dict) else None)
