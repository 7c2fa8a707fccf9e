"""Where an asset kind keeps its content, and how two specs differ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlyard.core.errors import InvalidSpecError, SpecIssue
from mlyard.specs.references import classify_path


@dataclass(frozen=True)
class AssetFields:
    asset_type: str | None
    path: str | None
    content_uri: str | None  # the datastore URI whose files make up the asset, if any
    content_field: str | None


def _get(spec: dict[str, Any], dotted: str) -> Any:
    value: Any = spec
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


_CONTENT_FIELD = {"data": "path", "model": "path", "environment": "build.path", "component": "code"}
_DEFAULT_TYPE = {"data": "uri_folder", "model": "custom_model", "environment": None, "component": "command"}


def spec_fields(kind: str, spec: dict[str, Any]) -> AssetFields:
    """The type, path and content location of a validated spec of ``kind``."""
    field = _CONTENT_FIELD[kind]
    path = _get(spec, field)
    path = str(path) if path is not None else None
    asset_type = spec.get("type") or _DEFAULT_TYPE[kind]
    if kind == "environment":
        asset_type = "build" if path else ("image" if spec.get("image") else None)
    content = path if path and classify_path(path) == "datastore" else None
    return AssetFields(asset_type, path, content, field)


def _local_paths(kind: str, spec: dict[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    field = _CONTENT_FIELD[kind]
    value = _get(spec, field)
    if isinstance(value, str) and classify_path(value) == "local":
        found.append((field, value))
    env = spec.get("environment")
    if kind == "component" and isinstance(env, dict):
        build = _get(env, "build.path")
        if isinstance(build, str) and classify_path(build) == "local":
            found.append(("environment.build.path", build))
    return found


def check_no_local_paths(kind: str, spec: dict[str, Any]) -> None:
    """The server never reads a client's local paths: content must be uploaded first."""
    issues = [
        SpecIssue(
            message=f"{value!r} is a local path; upload its content to a datastore first and give the "
            "azureml://datastores/... URI (the mlyard CLI and SDK do this for you)",
            field=field,
        )
        for field, value in _local_paths(kind, spec)
    ]
    if issues:
        raise InvalidSpecError(issues=issues)


def local_content_paths(kind: str, spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(dotted field, local path) pairs a client must upload before creating the asset."""
    return _local_paths(kind, spec)


def describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if not keys:
        return "the files differ"
    return ", ".join(keys[:5]) + (" differ" if len(keys) > 1 else " differs")
