"""Loading Azure ML YAML into typed specs: ``load_spec`` (a file) and ``load_spec_dict`` (a mapping).

The order is the Azure CLI's: read the YAML (within ``specs.limits``), apply ``--set`` overrides, let
``--name``/``--version`` win, find the kind (``specs.kinds``: the file's word, checked against the
command's), validate. Every problem becomes a ``SpecIssue`` with the file, the line of the offending
key and its field path (``specs.issues``); unknown keys become warnings, except keys of another kind.
Files a spec names are loaded through ``LoadContext.load_nested``, which points back here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from mlyard.core.errors import InvalidSpecError, SpecIssue
from mlyard.specs.base import LoadContext, SpecModel, control_character, show, spec_error
from mlyard.specs.components import registered_name_problem
from mlyard.specs.guard import find_excess
from mlyard.specs.issues import issues_of, strip_unknown
from mlyard.specs.kinds import KINDS, NOUNS, OTHER_KIND_KEYS, Detected, a, creating_command, detect_kind
from mlyard.specs.source import (
    OverlaidPositions,
    PathKey,
    Positions,
    apply_overrides,
    format_path,
    read_yaml_file,
)

SPEC_KINDS: dict[str, Any] = {name: kind.model for name, kind in KINDS.items()}
"""Every kind of file mlyard reads, by the name the CLI uses (``mlyard validate --kind``)."""


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


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in SPEC_KINDS:
        raise InvalidSpecError(issues=[SpecIssue(
            message=f"unknown kind {kind!r}; expected one of {', '.join(SPEC_KINDS)}", field="kind")])


def load_spec(
    path: str | Path,
    kind: str | None = None,
    *,
    overrides: Iterable[str] = (),
    name: str | None = None,
    version: str | None = None,
) -> LoadedSpec:
    """Load and validate the YAML file ``path`` as ``kind``.

    Args:
        kind: what the command expects; a file that says it is another kind (its ``$schema``, ``type``
            or shape) is refused. None: the kind the file says it is.
        overrides: ``PATH=VALUE`` strings (``--set``), applied before validation.
        name: wins over the file's ``name`` (``--name``).
        version: wins over the file's ``version`` (``--version``).

    Raises:
        InvalidSpecError: with one issue per problem, each naming file, line and field.
    """
    _check_kind(kind)
    file = Path(path).expanduser().absolute()
    data, positions = read_yaml_file(file)
    ctx = LoadContext(base_path=file.parent, source=str(path), check_paths=True, stack=(file.resolve(),),
                      load_file=_load_nested)
    return _validate(data, kind, positions, ctx, overrides=overrides, name=name, version=version)


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
    ctx = LoadContext(base_path=base_path, source=source, check_paths=base_path is not None,
                      load_file=_load_nested if base_path is not None else None)
    return _validate(data, kind, Positions(source), ctx, overrides=overrides)


def _validate(
    data: Any,
    expected: str | None,
    positions: Positions,
    ctx: LoadContext,
    *,
    overrides: Iterable[str] = (),
    name: str | None = None,
    version: str | None = None,
    registered: bool = True,
) -> LoadedSpec:
    source = ctx.source
    ctx.positions = positions
    what = expected or "spec"
    if data is None:
        raise InvalidSpecError(issues=[SpecIssue(message=f"the file is empty; expected a mapping of {what} fields",
                                                 file=source, line=1)])
    if not isinstance(data, dict):
        raise InvalidSpecError(issues=[SpecIssue(
            message=f"expected a mapping of {what} fields at the top level; got {show(data)}", file=source,
            line=positions.line_of(()))])
    data = apply_overrides(dict(data), overrides)
    if name is not None:
        data["name"] = name
    if version is not None:
        data["version"] = version
    _check_values(data, positions)
    kind = _kind_of(data, expected, positions)
    kind_used = "schedule" if kind == "monitor" and "create_monitor" in data else kind  # a whole monitor schedule
    try:
        spec = _adapter(kind_used).validate_python(data, context=ctx.as_pydantic())
    except ValidationError as exc:
        raise InvalidSpecError(issues=issues_of(exc, data, positions)) from None
    if kind_used == "schedule" and kind == "monitor" and spec.create_monitor is None:
        raise _root_issue("a monitor needs create_monitor", positions, "create_monitor")
    spec_name = getattr(spec, "name", None)
    if registered and KINDS[kind].named and spec_name is None:
        raise _root_issue(f"required field 'name' is missing; a registered {kind} needs a name", positions, "name")
    if registered and kind == "component" and (problem := registered_name_problem(str(spec_name))) is not None:
        raise InvalidSpecError(issues=[SpecIssue(message=problem, field="name", file=source,
                                                 line=positions.line_of(("name",)))])
    _refuse_other_kind_keys(spec, positions)
    strip_unknown(spec, (), positions, ctx.warnings, kind)
    return LoadedSpec(kind=kind, spec=spec, warnings=ctx.warnings, source=source)


def _root_issue(message: str, positions: Positions, field_name: str) -> InvalidSpecError:
    return InvalidSpecError(issues=[SpecIssue(message=message, field=field_name, file=positions.source_of(()),
                                              line=positions.line_of(()))])


def _check_values(data: dict[str, Any], positions: Positions) -> None:
    """Limits (``specs.limits``) on data that may not have come from a YAML file; printable keys."""
    excess = find_excess(data)
    if excess is not None:
        message, path = excess
        raise InvalidSpecError(issues=[SpecIssue(message=message, field=format_path(path),
                                                 file=positions.source_of(path), line=positions.line_of(path))])
    stack: list[tuple[Any, PathKey]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                bad = control_character(key) if isinstance(key, str) else None
                if bad is not None:
                    where = (*path, key)
                    raise InvalidSpecError(issues=[SpecIssue(
                        message=f"the key {show(key)} contains the control character {bad}; keys and names hold "
                        "printable characters only", field=format_path(where), file=positions.source_of(where),
                        line=positions.line_of(where))])
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))


# -- kinds ------------------------------------------------------------------------------------------------


def _kind_of(data: dict[str, Any], expected: str | None, positions: Positions) -> str:
    """The kind to load ``data`` as: ``expected``, unless the file says it is something else."""
    detected = detect_kind(data)
    if expected is not None:
        if detected is not None and expected not in detected.kinds:
            raise _wrong_kind(detected, expected, positions, data)
        return expected
    if detected is None or detected.default is None:
        looks = (f"it looks like {a(detected.noun)}" if detected is not None
                 else "it has no $schema mlyard knows, and no type or keys that tell")
        raise InvalidSpecError(issues=[SpecIssue(
            message=f"cannot tell which kind of file this is ({looks}); add Azure's $schema line or "
            f"give --kind ({', '.join(SPEC_KINDS)})", field="$schema" if "$schema" in data else "",
            file=positions.source, line=positions.line_of(("$schema",)) or positions.line_of(()))])
    return detected.default


def _wrong_kind(detected: Detected, expected: str, positions: Positions, data: dict[str, Any]) -> InvalidSpecError:
    source = positions.source
    where = f"this file is {a(detected.noun)} ({detected.evidence}), not {a(KINDS[expected].noun)}"
    if not detected.kinds:
        advice = "mlyard does not read such files"
    elif detected.default is not None:
        advice = creating_command(detected.default, source, data)
    else:
        advice = f"mlyard reads it as {' or '.join(sorted(detected.kinds))} (mlyard validate --kind)"
    return InvalidSpecError(issues=[SpecIssue(message=f"{where}; {advice}", field=detected.key, file=source,
                                              line=positions.line_of((detected.key,)))])


def _refuse_other_kind_keys(spec: Any, positions: Positions) -> None:
    """Top-level keys that belong to another kind are errors (Azure's SDK refuses them too)."""
    extra = spec.__pydantic_extra__ if isinstance(spec, SpecModel) else None
    for key in extra or {}:
        owner = OTHER_KIND_KEYS.get(key)
        if owner is not None:
            noun = NOUNS.get(type(spec).__name__, type(spec).__name__.lower())
            raise InvalidSpecError(issues=[SpecIssue(
                message=f"'{key}' belongs to {owner}, not to {a(noun)}: fix the file's type (or $schema), or remove "
                "the key", field=key, file=positions.source_of((key,)), line=positions.line_of((key,)))])


# -- nested files -----------------------------------------------------------------------------------------


def _load_nested(path: Path, kind: str, ctx: LoadContext, overrides: dict[str, Any], at: PathKey) -> Any:
    """Load a file another spec names (a pipeline's component, a schedule's job) as an anonymous ``kind``.

    Its errors point into that file; top-level keys of ``overrides`` replace the file's (a
    schedule's ``create_job`` object form).
    """
    resolved = path.resolve()
    if resolved in ctx.stack:
        raise spec_error(f"'{path}' refers back to itself through {' -> '.join(p.name for p in ctx.stack)}")
    data, positions = read_yaml_file(path)
    if isinstance(data, dict) and overrides:
        data = _deep_merge(data, overrides)
        if ctx.positions is not None:
            positions = OverlaidPositions(positions, ctx.positions, at, overrides)
    nested = LoadContext(base_path=path.parent, source=str(path), check_paths=ctx.check_paths,
                         warnings=ctx.warnings, stack=(*ctx.stack, resolved), load_file=_load_nested)
    return _validate(data, kind, positions, nested, registered=False).spec


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, mappings merged key by key (the SDK's ``merge_dict``)."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
