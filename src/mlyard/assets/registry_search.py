"""``search_registered_models`` and ``search_model_versions``: MLflow's filters evaluated in Python.

A registry holds hundreds of names and thousands of versions at most, so conditions are checked
on the loaded views rather than translated to SQL; the semantics are MLflow's (a missing tag never
matches, ``LIKE`` is case-sensitive, ``ILIKE`` is not).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from mlyard.assets.registry import ModelView, Registry, VersionView, _number, created_ms
from mlyard.core.errors import InvalidRequestError
from mlyard.core.paging import Page, decode_token, encode_token
from mlyard.specs.search_filters import (
    Condition,
    FilterError,
    OrderBy,
    parse_model_version_filter,
    parse_model_version_order_by,
    parse_registered_model_filter,
    parse_registered_model_order_by,
)
from mlyard.specs.search_match import matches

T = TypeVar("T")
PROMPT_TAG = "mlflow.prompt.is_prompt"


def _split_prompt_filter(conditions: list[Condition]) -> tuple[list[Condition], bool]:
    """MLflow's rule: a condition on the prompt tag only says whether to list prompts or models.

    Models carry no prompt tag, so ``tags.`mlflow.prompt.is_prompt` != 'true'`` (which MLflow's
    client adds to every search) means "models only", not a tag comparison.
    """
    wanted_prompts = False
    rest = []
    for c in conditions:
        if c.entity == "tag" and c.key == PROMPT_TAG:
            value = str(c.value).lower()
            wanted_prompts = (c.comparator == "=" and value == "true") or (c.comparator == "!=" and value == "false")
        else:
            rest.append(c)
    return rest, wanted_prompts


def _is_prompt(tags: dict[str, str]) -> bool:
    return tags.get(PROMPT_TAG, "").lower() == "true"


def _page(items: list[T], orders: list[OrderBy], key: Callable[[T, str], Any], default: Callable[[T], Any],
          max_results: int, page_token: str | None) -> Page[T]:
    ordered = sorted(items, key=default)
    for o in reversed(orders):  # stable sorts, last key first
        present = [i for i in ordered if key(i, o.key) is not None]
        missing = [i for i in ordered if key(i, o.key) is None]
        ordered = sorted(present, key=lambda i: key(i, o.key), reverse=not o.ascending) + missing
    offset = decode_token(page_token)
    chunk = ordered[offset:offset + max_results]
    token = encode_token(offset + max_results) if len(ordered) > offset + max_results else None
    return Page(chunk, token)


def _model_value(view: ModelView, c_entity: str, key: str) -> Any:
    if c_entity == "tag":
        return view.tags.get(key)
    return {"name": view.name, "last_updated_timestamp": view.last_updated_time,
            "creation_timestamp": view.creation_time}.get(key)


def search_models(registry: Registry, filter_text: str | None, order_by: list[str] | None, max_results: int,
                  page_token: str | None) -> Page[ModelView]:
    try:
        conditions = parse_registered_model_filter(filter_text)
        orders = parse_registered_model_order_by(order_by)
    except FilterError as exc:
        raise InvalidRequestError(str(exc)) from None
    conditions, prompts = _split_prompt_filter(conditions)
    found = [m for m in registry.all_models() if _is_prompt(m.tags) == prompts
             and all(matches(_model_value(m, c.entity, c.key), c) for c in conditions)]
    return _page(found, orders, lambda m, k: _model_value(m, "attribute", k), lambda m: m.name, max_results,
                 page_token)


def _version_value(view: VersionView, entity: str, key: str) -> Any:
    if entity == "tag":
        return view.tags.get(key)
    record = view.record
    return {"name": view.asset.name, "run_id": record.run_id if record else None,
            "source_path": record.source if record else view.asset.path,
            "version_number": _number(view.asset.version)[0], "creation_timestamp": created_ms(view.asset),
            "last_updated_timestamp": record.last_updated_time if record else created_ms(view.asset)}.get(key)


def search_versions(registry: Registry, filter_text: str | None, order_by: list[str] | None, max_results: int,
                    page_token: str | None) -> Page[VersionView]:
    try:
        conditions = parse_model_version_filter(filter_text)
        orders = parse_model_version_order_by(order_by)
    except FilterError as exc:
        raise InvalidRequestError(str(exc)) from None
    conditions, prompts = _split_prompt_filter(conditions)
    found = [v for v in registry.all_versions() if _is_prompt(v.tags) == prompts
             and all(matches(_version_value(v, c.entity, c.key), c) for c in conditions)]
    # MLflow's default order: name ascending, newest version first
    return _page(found, orders, lambda v, k: _version_value(v, "attribute", k),
                 lambda v: (v.asset.name, -_number(v.asset.version)[0]), max_results, page_token)
