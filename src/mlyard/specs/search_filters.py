"""MLflow's search filters and order_by clauses, parsed into a small typed AST (no SQL here).

Each search endpoint of MLflow has its own dialect: runs, experiments, registered models,
model versions and logged models accept different entities, keys, comparators and values, and
MLflow 3's server (``mlflow/utils/search_utils.py``, ``search_logged_model_utils.py`` and the
SQLAlchemy stores' checks) is the reference for each. A parse function returns what a store needs:
canonical entity names (``metric``, ``param``, ``tag``, ``attribute``, ``dataset``), canonical
attribute keys (``created`` becomes ``start_time``), upper-case comparators and typed values.
Anything MLflow refuses raises :class:`FilterError`, naming the clause and what is allowed.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from mlyard.specs.search_lexer import FilterError, RawClause, split_clauses, split_order_by, tokenize

__all__ = [
    "Condition", "FilterError", "LoggedModelOrderBy", "OrderBy", "parse_experiment_filter",
    "parse_experiment_order_by", "parse_logged_model_filter", "parse_logged_model_order_by",
    "parse_model_version_filter", "parse_model_version_order_by", "parse_registered_model_filter",
    "parse_registered_model_order_by", "parse_run_filter", "parse_run_order_by",
]  # fmt: skip

Entity = Literal["metric", "param", "tag", "attribute", "dataset"]
Value = str | float | int | tuple[str, ...] | None
# float: a metric; number: int or float as written; int: integers only; int_text: an integer or a
# quoted integer; text: a quoted string; id_text: a quoted integer kept as text; loose_text: a
# logged-model value (quoted string or a bare number, kept as text)
ValueType = Literal["float", "number", "int", "int_text", "text", "id_text", "loose_text"]


@dataclass(frozen=True)
class Condition:
    """One ``<entity>.<key> <comparator> <value>`` clause of a filter; clauses are AND-ed."""

    entity: Entity
    key: str
    comparator: str  # "=", "!=", ">", ">=", "<", "<=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL"
    value: Value  # a tuple for IN / NOT IN, None for IS [NOT] NULL


@dataclass(frozen=True)
class OrderBy:
    """One order_by clause; MLflow sorts ascending when no direction is given."""

    entity: Entity
    key: str
    ascending: bool = True


@dataclass(frozen=True)
class LoggedModelOrderBy(OrderBy):
    """search_logged_models orders by structured clauses; metrics may be restricted to a dataset."""

    dataset_name: str | None = None
    dataset_digest: str | None = None


_NUMERIC = frozenset({"=", "!=", ">", ">=", "<", "<="})
_TEXT = frozenset({"=", "!=", "LIKE", "ILIKE"})
_LIST = frozenset({"IN", "NOT IN"})
_NULL = frozenset({"IS NULL", "IS NOT NULL"})


@dataclass(frozen=True)
class _Field:
    key: str  # canonical
    comparators: frozenset[str]
    value: ValueType
    lists: bool = False


def _fields(
    spec: Mapping[str, tuple[frozenset[str], ValueType]], aliases: Mapping[str, str] | None = None
) -> dict[str, _Field]:
    fields = {key: _Field(key, ops, value, lists=bool(ops & _LIST)) for key, (ops, value) in spec.items()}
    return fields | {alias: fields[key] for alias, key in (aliases or {}).items()}


_RUN_ENTITIES: dict[str, Entity] = {
    "metric": "metric", "metrics": "metric", "parameter": "param", "parameters": "param", "param": "param",
    "params": "param", "tag": "tag", "tags": "tag", "attribute": "attribute", "attributes": "attribute",
    "attr": "attribute", "run": "attribute", "dataset": "dataset", "datasets": "dataset",
}  # fmt: skip
_RUN_ATTRIBUTES = _fields(
    {"run_id": (_TEXT | _LIST, "text"), "run_name": (_TEXT, "text"), "status": (_TEXT, "text"),
     "artifact_uri": (_TEXT, "text"), "user_id": (_TEXT, "text"), "start_time": (_NUMERIC, "number"),
     "end_time": (_NUMERIC, "number")},
    {"created": "start_time", "Created": "start_time", "run name": "run_name", "Run name": "run_name",
     "Run Name": "run_name"},
)  # fmt: skip
_RUN_ORDER_KEYS = frozenset(_RUN_ATTRIBUTES) - {"run name", "Run name", "Run Name"}
_DATASET = _fields(
    {"name": (_TEXT | _LIST, "text"), "digest": (_TEXT | _LIST, "text"), "context": (_TEXT | _LIST, "text")}
)
_EXPERIMENT_ATTRIBUTES = _fields(
    {"name": (_TEXT, "text"), "experiment_id": (frozenset({"=", "!="}) | _LIST, "id_text"),
     "creation_time": (_NUMERIC, "int"), "last_update_time": (_NUMERIC, "int")}
)  # fmt: skip
_MODEL_ATTRIBUTES = _fields({"name": (_TEXT | _LIST, "text")})
_VERSION_ATTRIBUTES = _fields(
    {"name": (_TEXT | _LIST, "text"), "run_id": (_TEXT | _LIST, "text"), "source_path": (_TEXT, "text"),
     "version_number": (_NUMERIC, "int_text")}
)  # fmt: skip
_LOGGED_MODEL_ATTRIBUTES = _fields(
    {**{key: (_TEXT | _LIST, "loose_text") for key in ("name", "model_id", "model_type", "status", "status_message",
                                                       "source_run_id", "experiment_id", "artifact_location")},
     "creation_timestamp": (_NUMERIC, "number"), "last_updated_timestamp": (_NUMERIC, "number")},
    {"creation_time": "creation_timestamp", "last_updated_time": "last_updated_timestamp"},
)  # fmt: skip
_REGISTRY_ENTITIES: dict[str, Entity] = {"attribute": "attribute", "tag": "tag", "tags": "tag"}
_LOGGED_MODEL_ENTITIES: dict[str, Entity] = {
    "attributes": "attribute",
    "metrics": "metric",
    "params": "param",
    "tags": "tag",
}


def _quoted(text: str, mark: str) -> bool:
    return len(text) >= 2 and text[0] == mark and text[-1] == mark


def _unquote(text: str) -> str:
    """MLflow's ``_strip_quotes``: drop one pair of matching single or double quotes, if any."""
    return text[1:-1] if _quoted(text, "'") or _quoted(text, '"') else text


def _unbacktick(text: str) -> str:
    return text[1:-1] if _quoted(text, "`") else text


def _names(table: Mapping[str, object]) -> str:
    return ", ".join(sorted(table))


def _attribute(table: Mapping[str, _Field], key: str, raw: str, endpoint: str) -> _Field:
    if key not in table:
        raise FilterError(f"Invalid attribute {key!r} in {raw!r}: {endpoint} accept attributes {_names(table)}")
    return table[key]


def _field(entity: Entity, key: str) -> _Field:
    """The field of a metric, param or tag key (any key), as MLflow's runs endpoint accepts it."""
    if entity == "metric":
        return _Field(key, _NUMERIC, "float")
    return _Field(key, _TEXT | _NULL, "text")


def _run_identifier(raw: str, attributes: Mapping[str, _Field]) -> tuple[Entity, _Field]:
    prefix, dot, key = raw.partition(".")
    entity = _RUN_ENTITIES.get(_unbacktick(prefix)) if dot else "attribute"
    if entity is None:
        raise FilterError(f"Invalid entity {prefix!r} in {raw!r}: use one of {_names(_RUN_ENTITIES)}")
    key = _unbacktick(_unquote(key if dot else prefix))
    if entity == "attribute":
        return entity, _attribute(attributes, key, raw, "runs")
    if entity == "dataset":
        return entity, _attribute(_DATASET, key, raw, "dataset filters")
    return entity, _field(entity, key)


def _registry_identifier(
    raw: str, attributes: Mapping[str, _Field], tag_ops: frozenset[str], endpoint: str, strip_attribute: bool = False
) -> tuple[Entity, _Field]:
    """Experiments and the model registry: ``attribute.`` / ``tag.`` / ``tags.`` prefixes only."""
    prefix, dot, key = raw.partition(".")
    entity = _REGISTRY_ENTITIES.get(prefix) if dot else "attribute"
    if entity is None:
        raise FilterError(f"Invalid entity {prefix!r} in {raw!r}: {endpoint} accept attribute, tag or tags")
    key = key if dot else prefix
    if entity == "tag":
        return entity, _Field(_unbacktick(_unquote(key)), tag_ops, "text")
    # The registry checks attribute keys before stripping quotes, experiments after.
    return entity, _attribute(attributes, _unbacktick(_unquote(key)) if strip_attribute else key, raw, endpoint)


def _logged_model_identifier(raw: str) -> tuple[Entity, _Field]:
    match = re.match(r"^([a-z]+)\.(.+)$", raw)
    prefix = match[1] if match else ""
    entity = _LOGGED_MODEL_ENTITIES.get(prefix) if match else "attribute"
    if entity is None:
        raise FilterError(
            f"Invalid entity {prefix!r} in {raw!r}: logged models accept attributes, metrics, params, tags"
        )
    key = _unquote(match[2] if match else raw).strip("`")
    if entity == "attribute":
        return entity, _attribute(_LOGGED_MODEL_ATTRIBUTES, key, raw, "logged models")
    if entity == "metric":
        return entity, _Field(key, _NUMERIC, "float")
    return entity, _Field(key, _TEXT | _LIST, "loose_text", lists=True)


def _condition(clause: RawClause, entity: Entity, field: _Field, case_sensitive: bool = False) -> Condition:
    comparator = clause.comparator.upper()
    where = f"{entity} {field.key!r} in {clause.text!r}"
    if comparator not in field.comparators:
        allowed = ", ".join(sorted(field.comparators))
        raise FilterError(f"Invalid comparator {clause.comparator!r} for {where}: use one of {allowed}")
    if case_sensitive and comparator != clause.comparator:
        raise FilterError(f"Invalid comparator {clause.comparator!r} for {where}: MLflow wants it in upper case")
    raw = clause.value
    if raw is None or comparator in _NULL:
        return Condition(entity, field.key, comparator, None)
    if raw.kind == "list" or comparator in _LIST:
        if not field.lists or comparator not in _LIST:
            raise FilterError(
                f"Invalid value {raw.text} for {where}: a list needs IN or NOT IN and a key that takes one"
            )
        return Condition(entity, field.key, comparator, _list(raw.text, field.value, where))
    return Condition(entity, field.key, comparator, _scalar(raw.kind, raw.text, field.value, where))


def _scalar(kind: str, text: str, value_type: ValueType, where: str) -> str | float | int:
    number = kind in ("int", "float")
    quoted = kind == "string" or (kind == "ident" and (_quoted(text, '"') or _quoted(text, "'")))
    if value_type in ("float", "number", "int") and number:
        if value_type == "float" or (value_type == "number" and kind == "float"):
            return float(text)
        if kind == "int":
            return int(text)
    elif value_type == "loose_text" and (number or quoted):
        return text.strip("'") if kind == "string" else _unquote(text)
    elif value_type in ("text", "id_text", "int_text") and quoted or (value_type == "int_text" and kind == "int"):
        value = _unquote(text)
        if value_type == "text":
            return value
        if _is_int(value):  # Python's int(), as MLflow's store uses: " 7 ", "+7" and "1_0" pass
            return value if value_type == "id_text" else int(value)
    expected = {"float": "a number", "number": "a number", "int": "an integer", "int_text": "an integer",
                "id_text": "a quoted integer id", "text": "a quoted string ('...' or \"...\")",
                "loose_text": "a quoted string or a number"}[value_type]  # fmt: skip
    raise FilterError(f"Invalid value {text} for {where}: expected {expected}")


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


_ESCAPES = frozenset("\n\\'\"abfnrtv01234567xNuU")


def _list(text: str, value_type: ValueType, where: str) -> tuple[str, ...]:
    """An IN list, read as MLflow reads it (a Python literal), once its tokens are known to be strings."""
    inner = tokenize(text[1:-1])
    if all(t.kind in ("string", "symbol", "ws") or t.text == "," for t in inner):
        # Python keeps an unknown escape such as \d as is, with a warning: double its backslash instead.
        literal = re.sub(r"\\(.)", lambda m: m[0] if m[1] in _ESCAPES else "\\" + m[0], text, flags=re.DOTALL)
        try:
            items = ast.literal_eval(literal)
        except (SyntaxError, ValueError):
            items = None
        items = (items,) if isinstance(items, str) else items
        if isinstance(items, tuple) and items and all(isinstance(item, str) for item in items):
            if value_type != "id_text" or all(_is_int(item) for item in items):
                return items
    raise FilterError(f"Invalid list {text} for {where}: expected a non-empty list of quoted strings like ('a', 'b')")


Resolver = Callable[[str], tuple[Entity, _Field]]


def _parse(text: str | None, resolve: Resolver, case_sensitive: bool = False, loose: bool = False) -> list[Condition]:
    conditions = []
    for clause in split_clauses(text or "", operations=loose):
        entity, field = resolve(clause.identifier)
        conditions.append(_condition(clause, entity, field, case_sensitive))
    return conditions


def _order(
    items: Sequence[str] | None, resolve: Resolver, entities: frozenset[str], unique: bool = True
) -> list[OrderBy]:
    orders: list[OrderBy] = []
    for item in items or []:
        if not isinstance(item, str):
            raise FilterError(f"Invalid order_by clause {item!r}: each clause is a string like 'name DESC'")
        key_text, ascending = split_order_by(item)
        entity, field = resolve(key_text.strip())
        if entity not in entities:
            raise FilterError(f"Invalid order_by clause {item!r}: cannot order by a {entity}")
        if unique and any((o.entity, o.key) == (entity, field.key) for o in orders):
            raise FilterError(f"Invalid order_by {list(items or [])!r}: {entity} {field.key!r} appears twice")
        orders.append(OrderBy(entity, field.key, ascending))
    return orders


def parse_run_filter(text: str | None) -> list[Condition]:
    """Parse a ``search_runs`` filter: ``metrics.acc > 0.9 AND params.lr = '0.01'``.

    Raises:
        FilterError: MLflow's server would refuse the filter.
    """
    return _parse(text, lambda raw: _run_identifier(raw, _RUN_ATTRIBUTES))


def parse_run_order_by(items: Sequence[str] | None) -> list[OrderBy]:
    """Parse ``search_runs`` order_by clauses: ``metrics.acc DESC``, ``attributes.start_time``."""
    attributes = {key: _RUN_ATTRIBUTES[key] for key in _RUN_ORDER_KEYS}
    return _order(
        items, lambda raw: _run_identifier(raw, attributes), frozenset({"metric", "param", "tag", "attribute"})
    )


def _experiment(raw: str) -> tuple[Entity, _Field]:
    return _registry_identifier(raw, _EXPERIMENT_ATTRIBUTES, _TEXT | _NULL, "experiments", strip_attribute=True)


def parse_experiment_filter(text: str | None) -> list[Condition]:
    """Parse a ``search_experiments`` filter: ``name LIKE 'x%' AND tags.team = 'ml'``.

    As in MLflow, ``LIKE``, ``ILIKE`` and ``IN`` must be written in upper case here.
    """
    return _parse(text, _experiment, case_sensitive=True)


def parse_experiment_order_by(items: Sequence[str] | None) -> list[OrderBy]:
    """Parse ``search_experiments`` order_by clauses: ``name``, ``creation_time DESC``, ``experiment_id``."""
    return _order(items, _experiment, frozenset({"attribute"}), unique=False)


def parse_registered_model_filter(text: str | None) -> list[Condition]:
    """Parse a ``search_registered_models`` filter: ``name LIKE 'fraud%' AND tags.stage = 'prod'``."""
    return _parse(text, lambda raw: _registry_identifier(raw, _MODEL_ATTRIBUTES, _TEXT, "registered models"))


def parse_registered_model_order_by(items: Sequence[str] | None) -> list[OrderBy]:
    """Parse ``search_registered_models`` order_by clauses: ``name``, ``last_updated_timestamp DESC``.

    ``timestamp`` is MLflow's alias of ``last_updated_timestamp``.
    """
    keys = {"name": "name", "timestamp": "last_updated_timestamp", "last_updated_timestamp": "last_updated_timestamp"}

    def resolve(raw: str) -> tuple[Entity, _Field]:
        if raw not in keys:
            raise FilterError(f"Invalid order_by key {raw!r}: registered models order by {_names(keys)}")
        return "attribute", _Field(keys[raw], _TEXT, "text")

    return _order(items, resolve, frozenset({"attribute"}))


def parse_model_version_filter(text: str | None) -> list[Condition]:
    """Parse a ``search_model_versions`` filter: ``name = 'fraud' AND version_number > 3``."""
    return _parse(text, lambda raw: _registry_identifier(raw, _VERSION_ATTRIBUTES, _TEXT, "model versions"))


def parse_model_version_order_by(items: Sequence[str] | None) -> list[OrderBy]:
    """Parse ``search_model_versions`` order_by clauses: ``version_number DESC``, ``creation_timestamp``."""
    keys = _fields(
        {k: (_NUMERIC, "int") for k in ("name", "version_number", "creation_timestamp", "last_updated_timestamp")}
    )
    return _order(
        items, lambda raw: _registry_identifier(raw, keys, _TEXT, "model versions", True), frozenset({"attribute"})
    )


def parse_logged_model_filter(text: str | None) -> list[Condition]:
    """Parse a ``search_logged_models`` filter: ``metrics.acc > 0.9 AND params.lr = 0.01 AND name = 'm'``.

    Only the plural prefixes are accepted here, and params, tags and attributes take IN lists.
    """
    return _parse(text, _logged_model_identifier, loose=True)


def parse_logged_model_order_by(items: Sequence[Mapping[str, object]] | None) -> list[LoggedModelOrderBy]:
    """Parse ``search_logged_models`` order_by objects: ``{"field_name": "metrics.acc", "ascending": false}``.

    ``field_name`` is an attribute or ``metrics.<key>``; ``dataset_name`` and ``dataset_digest``
    restrict a metric to the values logged against that dataset.
    """
    orders = []
    for item in items or []:
        if not isinstance(item, Mapping):
            raise FilterError(f"Invalid order_by {item!r}: each clause is an object with field_name and ascending")
        name, ascending = item.get("field_name"), item.get("ascending", True)
        dataset_name, dataset_digest = item.get("dataset_name") or None, item.get("dataset_digest") or None
        if not isinstance(name, str) or not name or not isinstance(ascending, bool):
            raise FilterError(f"Invalid order_by {dict(item)!r}: needs a field_name string and a boolean ascending")
        if not isinstance(dataset_name, str | None) or not isinstance(dataset_digest, str | None):
            raise FilterError(f"Invalid order_by {dict(item)!r}: dataset_name and dataset_digest must be strings")
        entity, dot, key = name.partition(".")
        if dot and entity != "metrics":
            raise FilterError(f"Invalid order_by field_name {name!r}: use an attribute or metrics.<key>")
        field = (
            _Field(key, _NUMERIC, "float") if dot else _attribute(_LOGGED_MODEL_ATTRIBUTES, name, name, "logged models")
        )
        orders.append(
            LoggedModelOrderBy("metric" if dot else "attribute", field.key, ascending, dataset_name, dataset_digest)
        )
    return orders
