"""Building blocks shared by every spec model.

* ``SpecModel``: the pydantic base. Unknown keys are kept in ``model_extra`` during validation so
  the loader can warn about them (with their line) and drop them afterwards; a null value for a
  field that has a default means "use the default" (YAML users write ``inputs:`` with nothing).
* ``spec_error``: the one error type validators raise. It carries a sub-path below the field
  being validated, so cross-field checks still point at the offending key.
* ``LoadContext``: what validators need to know about the file being loaded (its folder, whether
  local paths must exist, where warnings go), passed through pydantic's validation context.
* ``typed_union``: a union dispatched on a ``type`` key with a clear error for unknown types.
* Scalar coercions: ``Text`` (numbers and dates become strings), ``Version``, ``Tags``.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from mlyard.specs.limits import MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS
from mlyard.specs.source import PathKey, Positions

SPEC_ISSUE = "spec_issue"
CONTEXT_KEY = "mlyard"


def spec_error(message: str, *subpath: str | int) -> PydanticCustomError:
    """An error for the loader to report; ``subpath`` is relative to the value being validated."""
    return PydanticCustomError(SPEC_ISSUE, "{message}", {"message": message, "subpath": list(subpath)})


def show(value: Any) -> str:
    """A short, YAML-flavoured rendering of a value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return repr(text)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


NestedLoader = Callable[[Path, str, "LoadContext", dict[str, Any], PathKey], Any]
"""Loads a file a spec names: (path, kind, the naming file's context, top-level overrides, where the
overrides sit in the naming file) -> spec."""


@dataclass
class LoadContext:
    """What validators know about the document being loaded.

    ``load_file`` is how a validator loads a file the spec names (a pipeline's component, a
    schedule's job): the loader puts itself here, so no spec model imports the loader.
    """

    base_path: Path | None = None
    source: str = "<spec>"
    check_paths: bool = False
    warnings: list[str] = field(default_factory=list)
    stack: tuple[Path, ...] = ()
    load_file: NestedLoader | None = None
    positions: Positions | None = None
    """Lines of the document being loaded (set by the loader)."""

    def as_pydantic(self) -> dict[str, Any]:
        return {CONTEXT_KEY: self}

    def load_nested(self, path: Path, kind: str, overrides: dict[str, Any] | None = None, at: PathKey = ()) -> Any:
        """Load ``path`` as an anonymous ``kind`` (its errors point into that file).

        ``overrides`` replace top-level keys of the file; they sit at ``at`` in this document, where
        errors in them point.
        """
        if self.load_file is None:
            raise spec_error(f"'{path}' is a local file, and nothing here can read it; send its content inline")
        return self.load_file(path, kind, self, overrides or {}, at)


def load_context(info: ValidationInfo) -> LoadContext:
    """The load context of a validation, or a neutral one when a model is validated directly."""
    ctx = info.context
    if isinstance(ctx, dict) and isinstance(ctx.get(CONTEXT_KEY), LoadContext):
        found: LoadContext = ctx[CONTEXT_KEY]
        return found
    return LoadContext()


# -- scalar coercions ---------------------------------------------------------------------------


def _to_text(value: Any) -> Any:
    if isinstance(value, bool):
        return value  # rejected by the str schema: "expected a string; got true"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def control_character(value: str) -> str | None:
    """The first control character (newline, tab, NUL...) or lone surrogate in ``value``, shown escaped."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs"):
            return repr(char)[1:-1]
    return None


def _label(value: str) -> str:
    bad = control_character(value)
    if bad is not None:
        raise spec_error(f"{show(value)} contains the control character {bad}; names hold printable characters only")
    return value


def _name(value: str) -> str:
    _label(value)
    if not value.strip():
        raise spec_error("expected a non-empty name")
    if value != value.strip():
        raise spec_error(f"{show(value)} starts or ends with a space; remove it")
    return value


def _to_version(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, dict | list):
        raise spec_error(f"expected a string or number; got {show(value)}")
    value = _to_text(value)
    if isinstance(value, str) and not value.strip():
        raise spec_error("expected a non-empty version string")
    if isinstance(value, str):
        _name(value)
    return value


def _tag_text(key: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise spec_error(f"tag values must be scalars; got {show(value)}", key)
    converted = _to_text(value)
    text = converted if isinstance(converted, str) else str(converted)
    if len(text) > MAX_TAG_VALUE_CHARS:
        raise spec_error(f"a value of {len(text):,} characters; tag and property values hold at most "
                         f"{MAX_TAG_VALUE_CHARS:,}", key)
    return text


def _to_tags(value: Any) -> Any:
    if value is None:
        return {}
    if isinstance(value, dict):
        for key in value:
            if len(str(key)) > MAX_TAG_KEY_CHARS:
                raise spec_error(f"a key of {len(str(key)):,} characters; tag and property keys hold at most "
                                 f"{MAX_TAG_KEY_CHARS}", str(key))
        return {str(k): _tag_text(str(k), v) for k, v in value.items()}
    return value


Text = Annotated[str, BeforeValidator(_to_text)]
Version = Annotated[str, BeforeValidator(_to_version)]
Tags = Annotated[dict[str, str], BeforeValidator(_to_tags)]
StrMap = Annotated[dict[str, Text], BeforeValidator(lambda v: {} if v is None else v)]
Name = Annotated[Text, AfterValidator(_name)]
"""A name or identifier: printable, not empty, no surrounding spaces."""
Label = Annotated[Text, AfterValidator(_label)]
"""A display name: printable (no newline, NUL or other control character)."""


# -- the base model -------------------------------------------------------------------------------


class SpecModel(BaseModel):
    """Base of every spec object (see the module docstring)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    keep_unknown: ClassVar[bool] = False
    """True for sub-objects Azure passes through (pipeline settings, resources, distribution)."""

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        defaulted = _defaulted_keys(cls)
        if any(v is None and k in defaulted for k, v in data.items()):
            return {k: v for k, v in data.items() if not (v is None and k in defaulted)}
        return data


_DEFAULTED: dict[type, frozenset[str]] = {}


def _defaulted_keys(cls: type[BaseModel]) -> frozenset[str]:
    """Keys (names and aliases) of fields whose default is not None."""
    found = _DEFAULTED.get(cls)
    if found is None:
        keys: set[str] = set()
        for name, info in cls.model_fields.items():
            if info.is_required():
                continue
            if info.default_factory is not None or info.default is not None:
                keys.add(name)
                if info.alias:
                    keys.add(info.alias)
        found = _DEFAULTED[cls] = frozenset(keys)
    return found


class Documented(SpecModel):
    """Fields every top-level resource has: ``$schema``, description, tags, properties."""

    schema_: Text | None = Field(default=None, alias="$schema")
    description: Text | None = None
    tags: Tags = Field(default_factory=dict)
    properties: StrMap = Field(default_factory=dict)


# -- unions dispatched on a key -------------------------------------------------------------------

INVALID_TAG = "Invalid"


def typed_union(
    variants: dict[str | None, type[BaseModel]],
    *,
    key: str = "type",
    what: str = "object",
    scalar: Any = None,
    scalar_types: tuple[type, ...] = (str,),
) -> Any:
    """An annotated union choosing a model by ``value[key]``.

    Args:
        variants: key value -> model; the ``None`` entry is used when the key is absent.
        key: the discriminating key.
        what: a noun for error messages ("pipeline step", "distribution").
        scalar: optional type accepted for non-mapping values of ``scalar_types`` (a reference
            string, say), tagged ``Ref``.
    """
    tag_of_value = {k: cls.__name__ for k, cls in variants.items()}
    tag_of_class = {cls: cls.__name__ for cls in variants.values()}
    allowed = ", ".join(k for k in variants if k is not None)

    def pick(value: Any) -> str:
        if isinstance(value, BaseModel):
            return tag_of_class.get(type(value), INVALID_TAG)
        if scalar is not None and isinstance(value, scalar_types) and not isinstance(value, bool):
            return "Ref"
        if not isinstance(value, dict):
            return INVALID_TAG
        chosen = value.get(key)
        if chosen is None:
            return tag_of_value.get(None, INVALID_TAG)
        return tag_of_value.get(chosen, INVALID_TAG) if isinstance(chosen, str) else INVALID_TAG

    def invalid(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get(key) is None:
                raise spec_error(f"required field '{key}' is missing; expected one of {allowed}", key)
            raise spec_error(f"expected one of {allowed}; got {show(value[key])}", key)
        if isinstance(value, BaseModel):
            raise spec_error(f"expected a {what}; got {type(value).__name__}")
        if scalar is not None:
            raise spec_error(f"expected a reference string or a mapping ({what}); got {show(value)}")
        raise spec_error(f"expected a mapping ({what}); got {show(value)}")

    members: list[Any] = [Annotated[cls, Tag(cls.__name__)] for cls in dict.fromkeys(variants.values())]
    if scalar is not None:
        members.append(Annotated[scalar, Tag("Ref")])
    members.append(Annotated[Any, BeforeValidator(invalid), Tag(INVALID_TAG)])
    return Annotated[Union[tuple(members)], Discriminator(pick)]  # noqa: UP007


def lower(value: Any) -> Any:
    """Lower-case a string (Azure accepts ``Maximize``/``Day`` spellings)."""
    return value.lower() if isinstance(value, str) else value


LowerText = Annotated[str, BeforeValidator(lower)]

PickFn = Callable[[Any], str]
