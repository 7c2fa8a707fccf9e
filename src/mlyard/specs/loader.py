"""Loading Azure ML YAML into typed specs: ``load_spec`` (a file) and ``load_spec_dict`` (a mapping).

The order is the Azure CLI's: read the YAML, apply ``--set`` overrides, let ``--name``/``--version``
win, validate. Every problem becomes a ``SpecIssue`` with the file, the line of the offending key
and its field path; unknown keys become warnings (with their line) and are dropped, except in the
sub-objects Azure passes through (``keep_unknown``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from mlyard.core.errors import InvalidSpecError, SpecIssue
from mlyard.specs.assets import Data, Environment, Model
from mlyard.specs.base import SPEC_ISSUE, LoadContext, SpecModel, show, spec_error, typed_union
from mlyard.specs.components import CommandComponent
from mlyard.specs.endpoints import BatchDeployment, BatchEndpoint, OnlineDeployment, OnlineEndpoint
from mlyard.specs.jobs import CommandJob
from mlyard.specs.monitors import MonitorDefinition
from mlyard.specs.pipelines import PipelineComponent, PipelineJob
from mlyard.specs.resources import Compute, Datastore
from mlyard.specs.schedules import Schedule
from mlyard.specs.source import PathKey, Positions, apply_overrides, format_path, read_yaml_file
from mlyard.specs.sweep import SweepJob

SPEC_KINDS: dict[str, Any] = {
    "data": Data,
    "environment": Environment,
    "model": Model,
    "component": typed_union({None: CommandComponent, "command": CommandComponent, "pipeline": PipelineComponent},
                             what="component"),
    "job": typed_union({None: CommandJob, "command": CommandJob, "pipeline": PipelineJob, "sweep": SweepJob},
                       what="job"),
    "online-endpoint": OnlineEndpoint,
    "online-deployment": OnlineDeployment,
    "batch-endpoint": BatchEndpoint,
    "batch-deployment": BatchDeployment,
    "schedule": Schedule,
    "monitor": MonitorDefinition,
    "compute": Compute,
    "datastore": Datastore,
}
"""Every kind of file mlyard reads, by the name the CLI uses (``mlyard validate --kind``)."""

NAMED_KINDS = frozenset(SPEC_KINDS) - {"job", "monitor"}


@dataclass
class LoadedSpec:
    """A validated spec, the warnings it raised, and where it came from."""

    kind: str
    spec: Any
    warnings: list[str] = field(default_factory=list)
    source: str = "<spec>"

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data (what the CLI sends to the server)."""
        result: dict[str, Any] = self.spec.model_dump(mode="json", exclude_none=True, by_alias=True)
        return result


@cache
def _adapter(kind: str) -> TypeAdapter[Any]:
    return TypeAdapter(SPEC_KINDS[kind])


def _check_kind(kind: str) -> None:
    if kind not in SPEC_KINDS:
        raise InvalidSpecError(issues=[SpecIssue(
            message=f"unknown kind {kind!r}; expected one of {', '.join(SPEC_KINDS)}", field="kind")])


def load_spec(
    path: str | Path,
    kind: str,
    *,
    overrides: Iterable[str] = (),
    name: str | None = None,
    version: str | None = None,
) -> LoadedSpec:
    """Load and validate the YAML file ``path`` as ``kind``.

    Args:
        overrides: ``PATH=VALUE`` strings (``--set``), applied before validation.
        name: wins over the file's ``name`` (``--name``).
        version: wins over the file's ``version`` (``--version``).

    Raises:
        InvalidSpecError: with one issue per problem, each naming file, line and field.
    """
    _check_kind(kind)
    file = Path(path).expanduser().absolute()
    data, positions = read_yaml_file(file)
    return _validate(data, kind, positions, LoadContext(base_path=file.parent, source=str(path), check_paths=True,
                                                        stack=(file.resolve(),)),
                     overrides=overrides, name=name, version=version)


def load_spec_dict(
    data: Any,
    kind: str,
    *,
    base_path: Path | None = None,
    source: str = "<spec>",
    overrides: Iterable[str] = (),
) -> LoadedSpec:
    """Validate an already-parsed spec (a request body, or options given on the command line).

    With ``base_path``, relative local paths resolve against it and must exist; without one (the
    server) local files are never read.
    """
    _check_kind(kind)
    ctx = LoadContext(base_path=base_path, source=source, check_paths=base_path is not None)
    return _validate(data, kind, Positions(source), ctx, overrides=overrides)


def _validate(
    data: Any,
    kind: str,
    positions: Positions,
    ctx: LoadContext,
    *,
    overrides: Iterable[str] = (),
    name: str | None = None,
    version: str | None = None,
) -> LoadedSpec:
    source = ctx.source
    if data is None:
        raise InvalidSpecError(issues=[SpecIssue(message=f"the file is empty; expected a mapping of {kind} fields",
                                                 file=source, line=1)])
    if not isinstance(data, dict):
        raise InvalidSpecError(issues=[SpecIssue(
            message=f"expected a mapping of {kind} fields at the top level; got {show(data)}", file=source,
            line=positions.line_of(()))])
    data = apply_overrides(dict(data), overrides)
    if name is not None:
        data["name"] = name
    if version is not None:
        data["version"] = version
    model = SPEC_KINDS[kind]
    if kind == "monitor" and "create_monitor" in data:
        model, kind_used = Schedule, "schedule"  # a whole monitor schedule is accepted too
    else:
        kind_used = kind
    try:
        spec = _adapter(kind_used).validate_python(data, context=ctx.as_pydantic())
    except ValidationError as exc:
        raise InvalidSpecError(issues=_issues(exc, data, positions)) from None
    if model is Schedule and kind == "monitor" and spec.create_monitor is None:
        raise _root_issue("a monitor needs create_monitor", positions, "create_monitor")
    if kind in NAMED_KINDS and getattr(spec, "name", None) is None:
        raise _root_issue(f"required field 'name' is missing; a registered {kind} needs a name", positions, "name")
    _strip_unknown(spec, (), positions, ctx.warnings, kind)
    return LoadedSpec(kind=kind, spec=spec, warnings=ctx.warnings, source=source)


def _root_issue(message: str, positions: Positions, field_name: str) -> InvalidSpecError:
    return InvalidSpecError(issues=[SpecIssue(message=message, field=field_name, file=positions.source,
                                              line=positions.line_of(()))])


def load_nested(path: Path, kind: str, ctx: LoadContext) -> Any:
    """Load a file another spec names (a pipeline's component); its errors point into that file."""
    return load_nested_data(path, kind, ctx, {})


def load_nested_data(path: Path, kind: str, ctx: LoadContext, overrides: dict[str, Any]) -> Any:
    """``load_nested`` with top-level keys of ``overrides`` replacing the file's (a schedule's ``create_job``)."""
    resolved = path.resolve()
    if resolved in ctx.stack:
        raise spec_error(f"'{path}' refers back to itself through {' -> '.join(p.name for p in ctx.stack)}")
    data, positions = read_yaml_file(path)
    if isinstance(data, dict) and overrides:
        data = _deep_merge(data, overrides)
    nested = LoadContext(base_path=path.parent, source=str(path), check_paths=ctx.check_paths,
                         warnings=ctx.warnings, stack=(*ctx.stack, resolved))
    return _validate(data, kind, positions, nested).spec


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, mappings merged key by key (the SDK's ``merge_dict``)."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# -- errors -------------------------------------------------------------------------------------------


def _walk(data: Any, path: PathKey, parts: Iterable[Any], keep_last: bool) -> tuple[PathKey, Any]:
    """Follow ``parts`` through ``data``; parts that are not keys (union tags) are skipped.

    With ``keep_last``, a final part that is not in the data (a missing field) is kept.
    """
    items = list(parts)
    node = data
    for i, part in enumerate(items):
        if isinstance(node, dict) and part in node:
            path, node = (*path, part), node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path, node = (*path, part), node[part]
        elif keep_last and i == len(items) - 1 and isinstance(part, str):
            path, node = (*path, part), None
    return path, node


_FRIENDLY = {
    "int_parsing": "expected an integer", "int_type": "expected an integer", "int_from_float": "expected an integer",
    "float_parsing": "expected a number", "float_type": "expected a number",
    "bool_parsing": "expected true or false", "bool_type": "expected true or false",
    "string_type": "expected a string", "dict_type": "expected a mapping", "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping", "list_type": "expected a list",
    "time_delta_parsing": "expected an ISO-8601 duration such as P7D", "time_delta_type": "expected a duration",
}


def _message(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = f"; got {show(error.get('input'))}"
    if kind in _FRIENDLY:
        return _FRIENDLY[kind] + got
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}{got}"
    bounds = {"greater_than_equal": ("at least", "ge"), "greater_than": ("greater than", "gt"),
              "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt")}
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)}{got}"
    if kind == "string_pattern_mismatch":
        return f"{show(error.get('input'))} is not allowed here: it must match {ctx.get('pattern')}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    return f"{error['msg']}{got}"


def _issues(exc: ValidationError, data: dict[str, Any], positions: Positions) -> list[SpecIssue]:
    issues: list[SpecIssue] = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if error["type"] == SPEC_ISSUE:
            ctx = error.get("ctx") or {}
            path, node = _walk(data, (), loc, keep_last=False)
            path, _ = _walk(node, path, ctx.get("subpath", []), keep_last=True)
            message = str(ctx.get("message", error["msg"]))
        elif error["type"] == "missing":
            path, _ = _walk(data, (), loc, keep_last=True)
            message = f"required field '{loc[-1]}' is missing"
        else:
            path, _ = _walk(data, (), loc, keep_last=False)
            message = _message(error)
        issue = SpecIssue(message=message, field=format_path(path), file=positions.source,
                          line=positions.line_of(path))
        if issue not in issues:
            issues.append(issue)
    return issues


# -- unknown keys ---------------------------------------------------------------------------------------


def _strip_unknown(value: Any, path: PathKey, positions: Positions, warnings: list[str], kind: str) -> None:
    """Warn about and drop unknown keys, depth first, except where Azure passes them through."""
    if isinstance(value, SpecModel):
        extra = value.__pydantic_extra__
        if extra and not type(value).keep_unknown:
            for key in list(extra):
                where = (*path, key)
                line = positions.line_of(where)
                at = f"{positions.source}:{line}" if line else positions.source
                warnings.append(f"{at}: {format_path(where)}: unknown key '{key}' ignored (not part of the "
                                f"{kind} schema; check its spelling)")
                del extra[key]
        for name, info in type(value).model_fields.items():
            _strip_unknown(getattr(value, name), (*path, info.alias or name), positions, warnings, kind)
    elif isinstance(value, BaseModel):
        return
    elif isinstance(value, dict):
        for key, item in value.items():
            _strip_unknown(item, (*path, key), positions, warnings, kind)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _strip_unknown(item, (*path, i), positions, warnings, kind)
