"""Hypothesis strategies for MLflow's REST routes: one table of routes and fields, bodies built as raw JSON text.

MLflow's routes read their parameters themselves (``server/mlflow/protocol.py``), so the OpenAPI
document has no schema for them and a schema-driven fuzzer sends them nothing of interest. Here each
route lists its fields with a kind; a request fills some of them with a plausible value of that kind,
a seeded name that exists, any JSON value, or a hostile fragment written as JSON text (``1e400``,
``NaN``, a lone surrogate, 2**70, deep nesting, control characters, a thousand ``and`` clauses).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")  # the UI's prefix reaches the same routes

# Written as JSON text: none of them can be made by json.dumps of a Python value.
HOSTILE = [
    "1e400", "-1e400", "Infinity", "-Infinity", "NaN", str(2**70), str(-(2**70)), str(2**63), str(2**64),
    '"\\ud800"', '"a\\udc00b"', '"\\u0000"', '"x\\n"', '"\\u0007bell"', '"\\u009fc1"', "true", "false", "null",
    "[]", "{}", "[" * 100 + "]" * 100, "[" * 2000 + "]" * 2000, '{"a":' * 70 + "1" + "}" * 70,
    json.dumps("x" * 10_000), '""', '"1e400"', f'"{2**70}"', '"NaN"', '"-Infinity"', "0.5", "-1", "1.5",
]  # fmt: skip
FILTERS = [
    "metrics.acc > 0.5", "params.lr = '0.1'", "tags.t != 'x'", "attributes.status = 'FINISHED'",
    "name LIKE 'a%'", "name = 'a' and tags.k = 'v'", "attribute.run_id IN ('a', 'b')", "metrics.x >= 1e400",
    f"metrics.x > {2**70}", "attributes.start_time > 1e400", "dataset.name = 'd'", "version_number = 1",
    " and ".join(["metrics.a > 1"] * 1000), " and ".join(["name = 'a'"] * 1000), "(" * 500 + ")" * 500,
    "name = '\\u0000'", "name = 'x\u0007'", "experiment_id = '2147483648'", "experiment_id IN ('0', '99999999999')",
    f"attributes.start_time > {2**70}", f"creation_time < {-(2**70)}", "last_update_time > 1e400",
]  # fmt: skip
BODIES = [b"", b"[]", b"1", b'"x"', b"null", b"{", b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe{}", b'{"a":1,"a":2}']


@dataclass(frozen=True)
class Route:
    path: str  # after the prefix; {model_id} and {tag_key} are path parameters
    methods: tuple[str, ...]
    fields: dict[str, str] = field(default_factory=dict)  # name -> kind (see KINDS)


ROUTES = [
    Route("/runs/create", ("POST",), {"experiment_id": "experiment", "user_id": "text", "run_name": "name",
                                      "start_time": "int64", "tags": "key_values"}),
    Route("/runs/get", ("GET",), {"run_id": "run", "run_uuid": "run"}),
    Route("/runs/update", ("POST",), {"run_id": "run", "run_uuid": "run", "status": "status", "end_time": "int64",
                                      "run_name": "name"}),
    Route("/runs/delete", ("POST",), {"run_id": "run"}),
    Route("/runs/restore", ("POST",), {"run_id": "run"}),
    Route("/runs/search", ("POST",), {"experiment_ids": "experiments", "filter": "filter", "run_view_type": "view",
                                      "max_results": "int64", "order_by": "order_by", "page_token": "text"}),
    Route("/runs/log-metric", ("POST",), {"run_id": "run", "run_uuid": "run", "key": "key", "value": "number",
                                          "timestamp": "int64", "step": "int64", "model_id": "text",
                                          "dataset_name": "text", "dataset_digest": "text"}),
    Route("/runs/log-parameter", ("POST",), {"run_id": "run", "key": "key", "value": "text"}),
    Route("/runs/set-tag", ("POST",), {"run_id": "run", "key": "key", "value": "text"}),
    Route("/runs/delete-tag", ("POST",), {"run_id": "run", "key": "key"}),
    Route("/runs/log-batch", ("POST",), {"run_id": "run", "metrics": "metrics", "params": "key_values",
                                         "tags": "key_values"}),
    Route("/runs/log-inputs", ("POST",), {"run_id": "run", "datasets": "datasets"}),
    Route("/runs/outputs", ("POST",), {"run_id": "run", "models": "any"}),
    Route("/metrics/get-history", ("GET",), {"run_id": "run", "metric_key": "key", "max_results": "int64",
                                             "page_token": "text"}),
    Route("/experiments/create", ("POST",), {"name": "name", "artifact_location": "text", "tags": "key_values"}),
    Route("/experiments/get", ("GET",), {"experiment_id": "experiment"}),
    Route("/experiments/get-by-name", ("GET",), {"experiment_name": "name"}),
    Route("/experiments/search", ("GET", "POST"), {"view_type": "view", "filter": "filter", "order_by": "order_by",
                                                   "max_results": "int64", "page_token": "text"}),
    Route("/experiments/update", ("POST",), {"experiment_id": "experiment", "new_name": "name"}),
    Route("/experiments/delete", ("POST",), {"experiment_id": "experiment"}),
    Route("/experiments/restore", ("POST",), {"experiment_id": "experiment"}),
    Route("/experiments/set-experiment-tag", ("POST",), {"experiment_id": "experiment", "key": "key",
                                                         "value": "text"}),
    Route("/experiments/delete-experiment-tag", ("POST",), {"experiment_id": "experiment", "key": "key"}),
    Route("/registered-models/create", ("POST",), {"name": "model", "description": "text", "tags": "key_values"}),
    Route("/registered-models/get", ("GET",), {"name": "model"}),
    Route("/registered-models/update", ("PATCH",), {"name": "model", "description": "text"}),
    Route("/registered-models/rename", ("POST",), {"name": "model", "new_name": "name"}),
    Route("/registered-models/delete", ("DELETE",), {"name": "model"}),
    Route("/registered-models/search", ("GET", "POST"), {"filter": "filter", "order_by": "order_by",
                                                         "max_results": "int64", "page_token": "text"}),
    Route("/registered-models/get-latest-versions", ("POST",), {"name": "model", "stages": "texts"}),
    Route("/registered-models/set-tag", ("POST",), {"name": "model", "key": "key", "value": "text"}),
    Route("/registered-models/delete-tag", ("DELETE",), {"name": "model", "key": "key"}),
    Route("/registered-models/alias", ("GET", "POST", "DELETE"), {"name": "model", "alias": "name",
                                                                  "version": "version"}),
    Route("/model-versions/create", ("POST",), {"name": "model", "source": "text", "run_id": "run",
                                                "tags": "key_values", "run_link": "text", "description": "text",
                                                "model_id": "text"}),
    Route("/model-versions/get", ("GET",), {"name": "model", "version": "version"}),
    Route("/model-versions/update", ("PATCH",), {"name": "model", "version": "version", "description": "text"}),
    Route("/model-versions/transition-stage", ("POST",), {"name": "model", "version": "version", "stage": "text",
                                                          "archive_existing_versions": "any"}),
    Route("/model-versions/delete", ("DELETE",), {"name": "model", "version": "version"}),
    Route("/model-versions/search", ("GET", "POST"), {"filter": "filter", "order_by": "order_by",
                                                      "max_results": "int64", "page_token": "text"}),
    Route("/model-versions/get-download-uri", ("GET",), {"name": "model", "version": "version"}),
    Route("/model-versions/set-tag", ("POST",), {"name": "model", "version": "version", "key": "key",
                                                 "value": "text"}),
    Route("/model-versions/delete-tag", ("DELETE",), {"name": "model", "version": "version", "key": "key"}),
    Route("/logged-models", ("POST",), {"experiment_id": "experiment", "name": "name", "source_run_id": "run",
                                        "model_type": "text", "params": "key_values", "tags": "key_values"}),
    Route("/logged-models/search", ("POST",), {"experiment_ids": "experiments", "filter": "filter",
                                               "max_results": "int64", "page_token": "text"}),
    Route("/logged-models/{model_id}", ("GET", "PATCH", "DELETE"), {"status": "text"}),
    Route("/logged-models/{model_id}/tags", ("PATCH",), {"tags": "key_values"}),
    Route("/logged-models/{model_id}/tags/{tag_key}", ("DELETE",)),
    Route("/logged-models/{model_id}/params", ("POST",), {"params": "key_values"}),
    Route("/webhooks", ("GET", "POST"), {"name": "name", "url": "url", "events": "webhook_events",
                                         "description": "text", "secret": "text", "status": "webhook_status",
                                         "max_results": "int64", "page_token": "text"}),
    Route("/webhooks/{webhook_id}", ("GET", "PATCH", "DELETE"), {"name": "name", "url": "url",
                                                                 "events": "webhook_events", "description": "text",
                                                                 "secret": "text", "status": "webhook_status"}),
    Route("/webhooks/{webhook_id}/test", ("POST",), {"event": "webhook_event"}),
]


@dataclass(frozen=True)
class Seeds:
    """Things that exist on the fuzzed server, so that a share of the requests get past the lookups."""

    experiment: str
    run: str
    model: str
    logged_model: str


def _json(value: Any) -> str:
    return json.dumps(value)  # NaN and infinities come out as bare NaN/Infinity: hostile too


_ANY = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=8).map(_json)
_TEXT = st.text(max_size=30).map(_json)
_NAME = st.one_of(_TEXT, st.sampled_from(["a", "a\n", "a\x00b", "a\tb", "\x7f", " a ", "a/b", "..", "a" * 600,
                                          "\u202e", "\x85"]).map(_json))


def _key_values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    item = st.fixed_dictionaries({}, optional={"key": keys, "value": st.one_of(_TEXT, _ANY)})
    return st.lists(item.map(lambda d: "{" + ",".join(f'"{k}":{v}' for k, v in d.items()) + "}"), max_size=4) \
        .map(lambda items: "[" + ",".join(items) + "]")


_WEBHOOK_EVENT = st.fixed_dictionaries({}, optional={
    "entity": st.sampled_from(["MODEL_VERSION", "REGISTERED_MODEL", "PROMPT", "model_version", "x", 2, 0, 99, -1]),
    "action": st.sampled_from(["CREATED", "SET", "DELETED", "created", "nope", 1, 0, 7])})


def kinds(seeds: Seeds) -> dict[str, st.SearchStrategy[str]]:
    """Field kind -> JSON text of a value of that kind (plausible, seeded, or odd)."""
    ints = st.one_of(st.integers(min_value=-(2**66), max_value=2**66).map(str),
                     st.integers(0, 2**40).map(lambda i: _json(str(i))))
    key = st.one_of(_NAME, st.sampled_from(["loss", "a.b/c", "x y:z", "../x", "/x"]).map(_json))
    point = st.fixed_dictionaries({}, optional={"key": key, "value": st.one_of(st.floats().map(_json), _ANY),
                                                "timestamp": ints, "step": ints})
    points = st.lists(point.map(lambda d: "{" + ",".join(f'"{k}":{v}' for k, v in d.items()) + "}"), max_size=4)
    return {
        "experiment": st.one_of(st.sampled_from([seeds.experiment, "0", str(2**31)]).map(_json), ints),
        "experiments": st.lists(st.sampled_from([seeds.experiment, "0", "x", str(2**31), str(2**70)]),
                                max_size=3).map(_json),
        "run": st.one_of(st.just(_json(seeds.run)), _TEXT),
        "model": st.one_of(st.just(_json(seeds.model)), _NAME),
        "version": st.one_of(st.sampled_from(["1", "2", "0", str(2**70)]).map(_json), ints),
        "name": _NAME,
        "key": key,
        "text": _TEXT,
        "texts": st.lists(st.text(max_size=10), max_size=3).map(_json),
        "int64": ints,
        "number": st.one_of(st.floats().map(_json), st.sampled_from(['"NaN"', '"Infinity"', '"0.5"', '"x"'])),
        "status": st.sampled_from(["RUNNING", "FINISHED", "FAILED", "KILLED", "SCHEDULED", "nope"]).map(_json),
        "view": st.sampled_from(["ACTIVE_ONLY", "DELETED_ONLY", "ALL", "1", "9", "x"]).map(_json),
        "filter": st.one_of(st.sampled_from(FILTERS).map(_json), _TEXT),
        "order_by": st.lists(st.sampled_from(["name", "metrics.acc DESC", "x y z", "attributes.start_time ASC",
                                              "params.`a b`"]), max_size=3).map(_json),
        "key_values": _key_values(key),
        "metrics": points.map(lambda items: "[" + ",".join(items) + "]"),
        "datasets": st.lists(st.fixed_dictionaries({"dataset": st.fixed_dictionaries(
            {}, optional={"name": st.text(max_size=5), "digest": st.text(max_size=5), "schema": st.text(max_size=5),
                          "profile": st.text(max_size=5)}), "tags": st.just([{"key": "mlflow.data.context",
                                                                               "value": "train"}])}),
            max_size=2).map(_json),
        "any": _ANY,
        # receivers that refuse at once (the discard port) or addresses that are not http(s)
        "url": st.sampled_from(["http://127.0.0.1:9/hook", "https://127.0.0.1:9/", "ftp://127.0.0.1/", "http://",
                                "http://[::1", "http://127.0.0.1:99999/", "http://\u00e9x\u0000"]).map(_json),
        "webhook_event": _WEBHOOK_EVENT.map(_json),
        "webhook_events": st.lists(_WEBHOOK_EVENT, max_size=3).map(_json),
        "webhook_status": st.sampled_from(["ACTIVE", "DISABLED", "active", 1, 2, 0, 3, "x"]).map(_json),
    }


@dataclass(frozen=True)
class Request:
    method: str
    url: str  # path and, for a GET, the query string
    content: bytes | None  # the raw body of any other method

    def __repr__(self) -> str:  # Hypothesis prints it when a request fails
        body = self.content[:300] if self.content is not None else b""
        return f"{self.method} {self.url[:300]} body={body!r}"


def requests(route: Route, method: str, seeds: Seeds) -> st.SearchStrategy[Request]:
    """Requests for one operation of ``route``: its fields filled in oddly, or an odd body as a whole."""
    table = kinds(seeds)
    values = {name: st.one_of(table[kind], table[kind], _ANY, st.sampled_from(HOSTILE))
              for name, kind in route.fields.items()}
    model_ids = st.one_of(st.just(seeds.logged_model), st.text(min_size=1, max_size=20))

    @st.composite
    def build(draw: st.DrawFn) -> Request:
        path = draw(st.sampled_from(PREFIXES)) + route.path
        if "{model_id}" in path:
            path = path.replace("{model_id}", _segment(draw(model_ids)))
        if "{webhook_id}" in path:
            path = path.replace("{webhook_id}", _segment(draw(st.text(min_size=1, max_size=40))))
        if "{tag_key}" in path:
            path = path.replace("{tag_key}", _segment(draw(st.text(min_size=1, max_size=20))))
        chosen = draw(st.fixed_dictionaries({}, optional=values))
        if method == "GET":  # a query string holds text: a JSON string's text, any other value's JSON
            query = "&".join(f"{k}={_segment(_query_text(v))}" for k, v in chosen.items())
            return Request(method, f"{path}?{query}" if query else path, None)
        if draw(st.integers(0, 9)) == 0:
            return Request(method, path, draw(st.sampled_from(BODIES)))
        body = "{" + ",".join(f'"{k}":{v}' for k, v in chosen.items()) + "}"
        return Request(method, path, body.encode())

    return build()


def _query_text(value: str) -> str:
    try:
        decoded = json.loads(value)
    except (ValueError, RecursionError):
        return value
    return decoded if isinstance(decoded, str) else value


def _segment(text: str) -> str:
    """Percent-encoded, lone surrogates included (as their UTF-8-like bytes, which no decoder takes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="") or "x"
