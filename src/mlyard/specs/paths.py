"""Local paths in specs: resolution against the YAML file's folder, and existence checks.

Every relative local path resolves against the folder of the YAML file that contains it
(reference §1.2) and is stored as an absolute POSIX path string. Anything with a known scheme
(``azureml:``, ``https:``, ``wasbs:``...) or a ``${{...}}`` expression is left as written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ValidationInfo

from mlyard.core.errors import InvalidSpecError
from mlyard.specs.base import Text, load_context, spec_error
from mlyard.specs.bindings import has_binding
from mlyard.specs.references import classify_path, parse_datastore_uri, parse_job_output_uri, strip_file_scheme


def is_local(value: str) -> bool:
    """True for a local path (not a URI, reference or expression)."""
    return not has_binding(value) and classify_path(value) == "local"


def resolve_local_path(value: str, base_path: Path | None) -> str:
    """Absolute POSIX path for a local path; anything else unchanged.

    ``file:`` is stripped, a trailing ``/**`` means the folder itself, and with no base folder
    a relative path stays relative.
    """
    if not is_local(value):
        return value
    raw = strip_file_scheme(value.strip())
    if raw.endswith("/**"):
        raw = raw[:-3] or "/"
    if os.path.isabs(raw):
        return Path(os.path.normpath(raw)).as_posix()
    if base_path is None:
        return raw
    return Path(os.path.normpath(os.path.join(base_path, raw))).as_posix()


def check_uri(value: str) -> str:
    """A datastore or job-output URI must be well formed, without ``..`` segments or control characters."""
    kind = classify_path(value)
    try:
        if kind == "datastore":
            parse_datastore_uri(value)
        elif kind == "job_output":
            parse_job_output_uri(value)
    except InvalidSpecError as exc:
        raise spec_error(exc.issues[0].message) from None
    return value


def _resolve(value: str, info: ValidationInfo) -> str:
    return resolve_local_path(check_uri(value), load_context(info).base_path)


LocalPath = Annotated[Text, AfterValidator(_resolve)]
"""A path field: local paths become absolute against the spec file's folder; URIs are checked."""
UriPath = Annotated[Text, AfterValidator(check_uri)]
"""A path that is never local (an output's destination): URIs are checked."""


def check_exists(
    value: str | None,
    info: ValidationInfo,
    *,
    what: str,
    expect: Literal["file", "dir", "any"] = "any",
    subpath: tuple[str | int, ...] = (),
) -> None:
    """When loading from a file, a local path must exist (and be a file/folder as expected).

    Raises the spec error at ``subpath`` below the field being validated.
    """
    if value is None or not load_context(info).check_paths or not is_local(value):
        return
    p = Path(value)
    if not p.is_absolute():
        return
    if not p.exists():
        raise spec_error(f"{what} '{value}' does not exist (relative paths start from the YAML file's folder)",
                         *subpath)
    if expect == "dir" and not p.is_dir():
        raise spec_error(f"{what} '{value}' must be a folder, but it is a file", *subpath)
    if expect == "file" and not p.is_file():
        raise spec_error(f"{what} '{value}' must be a file, but it is a folder", *subpath)


def existing(value: Any, info: ValidationInfo, what: str, expect: Literal["file", "dir", "any"] = "any") -> Any:
    """``check_exists`` for use inside a field validator; returns the value."""
    if isinstance(value, str):
        check_exists(value, info, what=what, expect=expect)
    return value
