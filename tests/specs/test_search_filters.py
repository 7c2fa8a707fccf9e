"""MLflow's search grammars: what each endpoint accepts, the AST it gives, and what it refuses.

Cases follow MLflow 3's ``tests/utils/test_search_utils.py`` and were checked against MLflow's own
SQLAlchemy stores (accept or refuse, and the parsed clauses).
"""

from __future__ import annotations

import pytest

from mlyard.specs.search_filters import (
    Condition,
    FilterError,
    LoggedModelOrderBy,
    OrderBy,
    parse_experiment_filter,
    parse_experiment_order_by,
    parse_logged_model_filter,
    parse_logged_model_order_by,
    parse_model_version_filter,
    parse_model_version_order_by,
    parse_registered_model_filter,
    parse_registered_model_order_by,
    parse_run_filter,
    parse_run_order_by,
)

C = Condition


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, []),
        ("", []),
        ("metric.acc >= 0.94", [C("metric", "acc", ">=", 0.94)]),
        ("metric.acc>=100", [C("metric", "acc", ">=", 100.0)]),
        ("params.m!='tf'", [C("param", "m", "!=", "tf")]),
        ('params."m"!="tf"', [C("param", "m", "!=", "tf")]),
        ('metric."legit name" >= 0.243', [C("metric", "legit name", ">=", 0.243)]),
        ("metrics.XYZ = 3", [C("metric", "XYZ", "=", 3.0)]),
        ('params."cat dog" = "pets"', [C("param", "cat dog", "=", "pets")]),
        ('metrics."X-Y-Z" = 3', [C("metric", "X-Y-Z", "=", 3.0)]),
        ('metrics."X//Y#$$@&Z" = 3', [C("metric", "X//Y#$$@&Z", "=", 3.0)]),
        (
            "metrics.rmse < 1 and params.model_class = 'LR'",
            [C("metric", "rmse", "<", 1.0), C("param", "model_class", "=", "LR")],
        ),
        ("`metric`.a >= 0.1", [C("metric", "a", ">=", 0.1)]),
        ("`tags`.source_name = 'a notebook'", [C("tag", "source_name", "=", "a notebook")]),
        ('metrics."accuracy.2.0" > 5', [C("metric", "accuracy.2.0", ">", 5.0)]),
        ("metrics.`spacey name` > 5", [C("metric", "spacey name", ">", 5.0)]),
        ('tags."t.a.g" = "a"', [C("tag", "t.a.g", "=", "a")]),
        ("tags.`mlflow.runName` = 'x'", [C("tag", "mlflow.runName", "=", "x")]),
        ("tags.mlflow.runName = 'x'", [C("tag", "mlflow.runName", "=", "x")]),  # dots after the entity are the key's
        ("metrics.'a.b' > 1", [C("metric", "a.b", ">", 1.0)]),
        ("metrics.`a`.`b` > 1", [C("metric", "a`.`b", ">", 1.0)]),  # MLflow trims one pair of backticks, no more
        ("metrics.f1(macro) > 0.5", [C("metric", "f1(macro)", ">", 0.5)]),
        ("metrics.select > 1", [C("metric", "select", ">", 1.0)]),
        ("metrics.é > 1", [C("metric", "é", ">", 1.0)]),
        ("metrics.1abc > 1", [C("metric", "1abc", ">", 1.0)]),
        ("metrics.acc desc > 1", [C("metric", "acc desc", ">", 1.0)]),  # sqlparse folds DESC into the name
        ("attribute.artifact_uri = '1/23/4'", [C("attribute", "artifact_uri", "=", "1/23/4")]),
        ("attribute.start_time >= 1234", [C("attribute", "start_time", ">=", 1234)]),
        ("start_time > 1.5", [C("attribute", "start_time", ">", 1.5)]),
        ("end_time <= 1e3", [C("attribute", "end_time", "<=", 1000.0)]),
        ("created > 5", [C("attribute", "start_time", ">", 5)]),
        ("Created > 5", [C("attribute", "start_time", ">", 5)]),
        ("`Run name` = 'x'", [C("attribute", "run_name", "=", "x")]),
        ("attributes.`run name` LIKE 'x%'", [C("attribute", "run_name", "LIKE", "x%")]),
        ("run.status = 'RUNNING'", [C("attribute", "status", "=", "RUNNING")]),
        ("attr.user_id != 'me'", [C("attribute", "user_id", "!=", "me")]),
        ("run.run_name ilike 'x%'", [C("attribute", "run_name", "ILIKE", "x%")]),
        ("run_id IN ('a', 'b')", [C("attribute", "run_id", "IN", ("a", "b"))]),
        ("run_id in ('a')", [C("attribute", "run_id", "IN", ("a",))]),
        ("run_id NOT IN (\"A\", 'b',)", [C("attribute", "run_id", "NOT IN", ("A", "b"))]),
        ("run_id IN ('a' 'b')", [C("attribute", "run_id", "IN", ("ab",))]),  # a Python literal to MLflow
        ("run_id IN ('a\\d', 'q\\'r')", [C("attribute", "run_id", "IN", ("a\\d", "q'r"))]),
        ("dataset.name = 'my_dataset'", [C("dataset", "name", "=", "my_dataset")]),
        ("datasets.digest IN ('d1', 'd2')", [C("dataset", "digest", "IN", ("d1", "d2"))]),
        ("datasets.context LIKE 'train%'", [C("dataset", "context", "LIKE", "train%")]),
        ("tags.version IS NULL", [C("tag", "version", "IS NULL", None)]),
        ("params.lr is not null", [C("param", "lr", "IS NOT NULL", None)]),
        ("tags.a IS NULL AND params.b = 'val'", [C("tag", "a", "IS NULL", None), C("param", "b", "=", "val")]),
        ('params.m = "L\'Hosp"', [C("param", "m", "=", "L'Hosp")]),
        ("params.m = 'it''s'", [C("param", "m", "=", "it''s")]),  # no unescaping, as in MLflow
        ("params.m = ''", [C("param", "m", "=", "")]),
        ("metrics.a > -.5", [C("metric", "a", ">", -0.5)]),
        ("metrics.a > 5.", [C("metric", "a", ">", 5.0)]),
        ("metrics.a > 1.5E-3", [C("metric", "a", ">", 0.0015)]),
        ("  metrics.a  >  1  ", [C("metric", "a", ">", 1.0)]),
        ("metrics.a > 1\nAND\tparams.b = 'x'", [C("metric", "a", ">", 1.0), C("param", "b", "=", "x")]),
        ("params.a='x'AND params.b='y'", [C("param", "a", "=", "x"), C("param", "b", "=", "y")]),
        ("params.a = 'x' params.b = 'y'", [C("param", "a", "=", "x"), C("param", "b", "=", "y")]),  # AND optional
        ("AND metrics.a > 1 AND AND metrics.b > 2 AND", [C("metric", "a", ">", 1.0), C("metric", "b", ">", 2.0)]),
        ("metrics. > 1", [C("metric", "", ">", 1.0)]),
        ("params.a b IS NULL", [C("param", "a b", "IS NULL", None)]),  # two names in a row are one to sqlparse
    ],
)
def test_run_filter(text: str | None, expected: list[Condition]) -> None:
    assert parse_run_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics.A > 0.1 OR params.B = 'LR'", "OR is not supported; MLflow filters join conditions with AND"),
        ("metric.acc >= 0.94; metrics.rmse < 1", "unexpected ';'"),
        ("  \n", "it is blank"),
        ("metrics.acc > 1;", "unexpected ';'"),
        ("m.acc >= 0.94", "Invalid entity 'm'"),
        ("Metrics.acc > 1", "Invalid entity 'Metrics'"),
        ("metrics .a > 1", "Invalid entity 'metrics '"),
        ("acc >= 0.94", "Invalid attribute 'acc'"),
        ("attri.x != 1", "Invalid entity 'attri'"),
        ("model >= 'LR'", "Invalid attribute 'model'"),
        ("metrics.A > 0.1 NAND params.B = 'LR'", "unexpected 'NAND'"),
        ("metrics.A > 0.1 AND (params.B = 'LR')", "unexpected \"(params.B = 'LR')\""),
        ("NOT params.b = 'y'", "unexpected 'NOT'"),
        ("`metrics.A > 0.1", "unexpected '`'"),
        ("param`.A > 0.1", "unexpected 'param'"),
        ("`dummy.A > 0.1", "unexpected '`'"),
        ("attribute.start != 1", "Invalid attribute 'start'"),
        ("attribute.experiment_id != 1", "Invalid attribute 'experiment_id'"),
        ("attribute.lifecycle_stage = 'ACTIVE'", "Invalid attribute 'lifecycle_stage'"),
        ("attribute._status != 'RUNNING'", "Invalid attribute '_status'"),
        ("attribute.status = true", "Invalid value true for attribute 'status'"),
        ("dataset.profile = 'num_rows: 10'", "Invalid attribute 'profile'"),
        ("metrics.acc IS NULL", "Invalid comparator 'IS NULL' for metric 'acc'"),
        ("attribute.status IS NULL", "Invalid comparator 'IS NULL' for attribute 'status'"),
        ("params.lr IS NOT  NULL", "unexpected 'params'"),  # MLflow matches the raw `NOT NULL` token
        ("metric.model = 'LR'", "expected a number"),
        ("metric.model = '5'", "expected a number"),
        ("params.acc = 5", "expected a quoted string"),
        ("tags.acc = 5", "expected a quoted string"),
        ("metrics.acc != metrics.acc", "expected a number"),
        ("1.0 > metrics.acc", "unexpected '1.0'"),
        ("attribute.status = 1", "Invalid value 1 for attribute 'status'"),
        ("params.acc = LR", "Invalid value LR for param 'acc'"),
        ("params.acc = `LR`", "Invalid value `LR`"),
        ("params.acc = 'LR", "unexpected 'params'"),
        ("params.acc = \"LR'", "unexpected 'params'"),
        ("tags.acc = = 'LR'", "unexpected 'tags'"),
        ("attribute.status IS 'RUNNING'", "unexpected 'attribute'"),
        ("params.acc LR !=", "unexpected 'params'"),
        ("metric.acc !=", "unexpected 'metric'"),
        ("foo is null", "Invalid attribute 'foo'"),
        ("1=1", "unexpected '1'"),
        ("metrics.acc == 1", "Invalid comparator '=='"),
        ("metrics.acc <> 1", "Invalid comparator '<>'"),
        ("metrics.abc ~ 1.0", "Invalid comparator '~'"),
        ("params.abc > 'x'", "Invalid comparator '>' for param 'abc'"),
        ("tags.abc <= 'x'", "Invalid comparator '<=' for tag 'abc'"),
        ("params.lr not like '%a'", "Invalid comparator 'not like'"),
        ("attributes.status > 'x'", "Invalid comparator '>' for attribute 'status'"),
        ("attributes.start_time LIKE 5", "Invalid comparator 'LIKE' for attribute 'start_time'"),
        ("datasets.name > 'x'", "Invalid comparator '>' for dataset 'name'"),
        ("start_time > '1'", "Invalid value '1' for attribute 'start_time'"),
        ("metrics.acc > 0x10", "unexpected 'metrics'"),
        ("metrics.a > - 1", "unexpected 'metrics'"),
        ("metrics.a-b > 1", "unexpected 'metrics'"),
        ("metrics.a > 1 -- comment", "unexpected '-- comment'"),
        ("run_name IN ('a')", "Invalid comparator 'IN' for attribute 'run_name'"),
        ("tags.a IN ('x')", "Invalid comparator 'IN' for tag 'a'"),
        ("run_id = ('a', 'b')", "a list needs IN or NOT IN"),
        ("run_id IN ()", "Invalid list ()"),
        ("run_id IN ('a', 1)", "Invalid list ('a', 1)"),
        ("run_id IN 'a'", "unexpected 'run_id'"),
        ("params.a = 'x' run_id IN ('a')", "put AND before \"run_id IN ('a')\""),
    ],
)
def test_run_filter_refused(text: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_run_filter(text)
    assert message in str(info.value)


def test_filter_error_is_a_value_error_naming_the_filter() -> None:
    with pytest.raises(ValueError, match=r"Invalid filter 'params.a = 1 OR x'"):
        parse_run_filter("params.a = 1 OR x")


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (None, []),
        ([], []),
        (["metrics.acc"], [OrderBy("metric", "acc", True)]),
        (["metrics.acc DESC", "params.lr"], [OrderBy("metric", "acc", False), OrderBy("param", "lr", True)]),
        (
            ["params.my_param aSc", "attributes.status  ASC"],
            [OrderBy("param", "my_param"), OrderBy("attribute", "status")],
        ),
        (['metrics."key1"  desc'], [OrderBy("metric", "key1", False)]),
        (["tags.tag1\tDESC"], [OrderBy("tag", "tag1", False)]),
        (["metrics.`Mean Square Error` DESC"], [OrderBy("metric", "Mean Square Error", False)]),
        (["metrics.`Mean Square Error`"], [OrderBy("metric", "Mean Square Error", True)]),
        (["metrics.'q r' DESC"], [OrderBy("metric", "q r", False)]),
        (["tags.`mlflow.runName`"], [OrderBy("tag", "mlflow.runName")]),
        (["metrics.a.b"], [OrderBy("metric", "a.b")]),
        (["created DESC"], [OrderBy("attribute", "start_time", False)]),
        (["run_name", "attr.end_time"], [OrderBy("attribute", "run_name"), OrderBy("attribute", "end_time")]),
        (["metrics.a `desc`"], [OrderBy("metric", "a", False)]),
        (["params.a", "tags.a"], [OrderBy("param", "a"), OrderBy("tag", "a")]),
    ],
)
def test_run_order_by(items: list[str] | None, expected: list[OrderBy]) -> None:
    assert parse_run_order_by(items) == expected


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("m.acc", "Invalid entity 'm'"),
        ("acc", "Invalid attribute 'acc'"),
        ("`metrics.A", "Invalid order_by clause '`metrics.A'"),
        ("`metrics.A`", "Invalid entity '`metrics'"),
        ("attribute.experiment_id", "Invalid attribute 'experiment_id'"),
        ("`Run name`", "Invalid attribute 'Run name'"),
        ("metrics.A != 1", "Invalid order_by clause"),
        ("params.my_param ", "Invalid order_by clause"),
        (" params.my_param", "Invalid order_by clause"),
        ("attribute.run_id ACS", "direction 'ACS' must be ASC or DESC"),
        ("metrics.a DESC NULLS LAST", "Invalid order_by clause"),
        ("metrics.a, metrics.b", "Invalid order_by clause"),
        ("datasets.name", "cannot order by a dataset"),
        ("", "Invalid order_by clause"),
    ],
)
def test_run_order_by_refused(item: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_run_order_by([item])
    assert message in str(info.value)


@pytest.mark.parametrize("items", [["metrics.a", "metric.a DESC"], ["created", "start_time"]])
def test_run_order_by_refuses_a_key_twice(items: list[str]) -> None:
    with pytest.raises(FilterError, match="appears twice"):
        parse_run_order_by(items)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name = 'x'", [C("attribute", "name", "=", "x")]),
        ('attribute.`name` ILIKE "x%"', [C("attribute", "name", "ILIKE", "x%")]),
        ("tags.team LIKE 'ml%' AND tag.`a.b` != 'c'", [C("tag", "team", "LIKE", "ml%"), C("tag", "a.b", "!=", "c")]),
        ("tags.x IS NULL", [C("tag", "x", "IS NULL", None)]),
        ("tags.x is not null", [C("tag", "x", "IS NOT NULL", None)]),
        (
            "creation_time > 1 AND last_update_time <= 2",
            [C("attribute", "creation_time", ">", 1), C("attribute", "last_update_time", "<=", 2)],
        ),
        ("experiment_id = '1'", [C("attribute", "experiment_id", "=", "1")]),
        ("experiment_id IN ('1', '2')", [C("attribute", "experiment_id", "IN", ("1", "2"))]),
        ("experiment_id not in ('1')", [C("attribute", "experiment_id", "NOT IN", ("1",))]),
    ],
)
def test_experiment_filter(text: str, expected: list[Condition]) -> None:
    assert parse_experiment_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("attributes.name = 'x'", "Invalid entity 'attributes'"),  # only the singular here
        ("`tags`.x = 'y'", "Invalid entity '`tags`'"),
        ("params.x = 'y'", "Invalid entity 'params'"),
        ("name like 'x%'", "MLflow wants it in upper case"),  # experiments compare comparators as typed
        ("tags.x ilike 'y'", "MLflow wants it in upper case"),
        ("experiment_id in ('1')", "MLflow wants it in upper case"),
        ("name IN ('a')", "Invalid comparator 'IN' for attribute 'name'"),
        ("name IS NULL", "Invalid comparator 'IS NULL' for attribute 'name'"),
        ("experiment_id = 1", "Invalid value 1"),
        ("experiment_id = 'abc'", "expected a quoted integer id"),
        ("experiment_id IN ('a')", "Invalid list ('a')"),
        ("experiment_id LIKE '1%'", "Invalid comparator 'LIKE' for attribute 'experiment_id'"),
        ("creation_time > 1.5", "expected an integer"),
        ("creation_time > '1'", "expected an integer"),
        ("lifecycle_stage = 'active'", "Invalid attribute 'lifecycle_stage'"),
    ],
)
def test_experiment_filter_refused(text: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_experiment_filter(text)
    assert message in str(info.value)


def test_experiment_order_by() -> None:
    assert parse_experiment_order_by(["name", "attribute.creation_time DESC", "experiment_id"]) == [
        OrderBy("attribute", "name"),
        OrderBy("attribute", "creation_time", False),
        OrderBy("attribute", "experiment_id"),
    ]
    assert parse_experiment_order_by(["name", "name DESC"]) == [
        OrderBy("attribute", "name"),
        OrderBy("attribute", "name", False),
    ]
    with pytest.raises(FilterError, match="cannot order by a tag"):
        parse_experiment_order_by(["tags.x"])
    with pytest.raises(FilterError, match="Invalid attribute 'artifact_location'"):
        parse_experiment_order_by(["artifact_location"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name = 'x'", [C("attribute", "name", "=", "x")]),
        ("attribute.name like 'fraud%'", [C("attribute", "name", "LIKE", "fraud%")]),
        ("name IN ('a', 'b')", [C("attribute", "name", "IN", ("a", "b"))]),
        ("name not in ('a')", [C("attribute", "name", "NOT IN", ("a",))]),
        ("tags.`mlflow.prompt.is_prompt` = 'true'", [C("tag", "mlflow.prompt.is_prompt", "=", "true")]),
        (
            "tag.stage ilike 'prod' AND name = \"m\"",
            [C("tag", "stage", "ILIKE", "prod"), C("attribute", "name", "=", "m")],
        ),
    ],
)
def test_registered_model_filter(text: str, expected: list[Condition]) -> None:
    assert parse_registered_model_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("`name` = 'x'", "Invalid attribute '`name`'"),  # the registry checks the key before unquoting it
        ("\"name\" = 'x'", "Invalid attribute '\"name\"'"),
        ("attributes.name = 'x'", "Invalid entity 'attributes'"),
        ("run_id = 'x'", "Invalid attribute 'run_id'"),
        ("name > 'x'", "Invalid comparator '>'"),
        ("name = 1", "expected a quoted string"),
        ("tags.x IS NULL", "Invalid comparator 'IS NULL' for tag 'x'"),
        ("tags.x IN ('a')", "Invalid comparator 'IN' for tag 'x'"),
        ("name = ('a')", "a list needs IN or NOT IN"),
    ],
)
def test_registered_model_filter_refused(text: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_registered_model_filter(text)
    assert message in str(info.value)


def test_registered_model_order_by() -> None:
    assert parse_registered_model_order_by(["name DESC", "timestamp"]) == [
        OrderBy("attribute", "name", False),
        OrderBy("attribute", "last_updated_timestamp"),
    ]
    for bad, message in [
        ("creation_timestamp DESC", "Invalid order_by key 'creation_timestamp'"),
        ("attribute.name", "Invalid order_by key 'attribute.name'"),
        ("last_updated_timestamp DESC blah", "Invalid order_by clause"),
        ("timestamp somerandomstuff", "direction 'somerandomstuff'"),
        ("name aCs", "direction 'aCs'"),
    ]:
        with pytest.raises(FilterError) as info:
            parse_registered_model_order_by([bad])
        assert message in str(info.value)
    with pytest.raises(FilterError, match="appears twice"):
        parse_registered_model_order_by(["timestamp", "last_updated_timestamp"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name = 'x' AND version_number > 3",
            [C("attribute", "name", "=", "x"), C("attribute", "version_number", ">", 3)],
        ),
        ("version_number = '3'", [C("attribute", "version_number", "=", 3)]),  # MLflow's store int()s strings
        ("run_id IN ('a', 'b')", [C("attribute", "run_id", "IN", ("a", "b"))]),
        ("name not in ('a')", [C("attribute", "name", "NOT IN", ("a",))]),
        ("source_path LIKE 's3://%'", [C("attribute", "source_path", "LIKE", "s3://%")]),
        ("attribute.run_id = 'r'", [C("attribute", "run_id", "=", "r")]),
        ("tags.`a b` != 'c'", [C("tag", "a b", "!=", "c")]),
    ],
)
def test_model_version_filter(text: str, expected: list[Condition]) -> None:
    assert parse_model_version_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version_number = 1.5", "expected an integer"),
        ("version_number = 'abc'", "expected an integer"),
        ("version_number LIKE 1", "Invalid comparator 'LIKE'"),
        ("version_number IN ('1')", "Invalid comparator 'IN' for attribute 'version_number'"),
        ("source_path IN ('a')", "Invalid comparator 'IN' for attribute 'source_path'"),
        ("run_id = 1", "expected a quoted string"),
        ("current_stage = 'Production'", "Invalid attribute 'current_stage'"),
        ("creation_timestamp > 1", "Invalid attribute 'creation_timestamp'"),
        ("tags.x > 'y'", "Invalid comparator '>' for tag 'x'"),
    ],
)
def test_model_version_filter_refused(text: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_model_version_filter(text)
    assert message in str(info.value)


def test_model_version_order_by() -> None:
    assert parse_model_version_order_by(["version_number DESC", "attribute.creation_timestamp", "`name`"]) == [
        OrderBy("attribute", "version_number", False),
        OrderBy("attribute", "creation_timestamp"),
        OrderBy("attribute", "name"),
    ]
    with pytest.raises(FilterError, match="cannot order by a tag"):
        parse_model_version_order_by(["tags.name"])
    with pytest.raises(FilterError, match="appears twice"):
        parse_model_version_order_by(["name", "name DESC"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.acc > 0.9 AND params.lr = 0.01", [C("metric", "acc", ">", 0.9), C("param", "lr", "=", "0.01")]),
        ("params.lr = '0.1'", [C("param", "lr", "=", "0.1")]),
        ("tags.t in ('a', 'b')", [C("tag", "t", "IN", ("a", "b"))]),  # lists work for every text key here
        (
            "name = 'm' AND attributes.model_type != 'x'",
            [C("attribute", "name", "=", "m"), C("attribute", "model_type", "!=", "x")],
        ),
        ("creation_time > 1", [C("attribute", "creation_timestamp", ">", 1)]),
        ("last_updated_timestamp <= 2.5", [C("attribute", "last_updated_timestamp", "<=", 2.5)]),
        ("status NOT IN ('READY')", [C("attribute", "status", "NOT IN", ("READY",))]),
        ("metrics.val-loss < 0.3", [C("metric", "val-loss", "<", 0.3)]),
        ("`name` = 'x'", [C("attribute", "name", "=", "x")]),
        ('tags.`a.b` = "y"', [C("tag", "a.b", "=", "y")]),  # MLflow keeps these quotes; we strip them
        ("tags.x.y = 'z'", [C("tag", "x.y", "=", "z")]),
    ],
)
def test_logged_model_filter(text: str, expected: list[Condition]) -> None:
    assert parse_logged_model_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metric.acc > 1", "Invalid entity 'metric'"),  # only the plural prefixes here
        ("attribute.name = 'x'", "Invalid entity 'attribute'"),
        ("Metrics.acc > 1", "Invalid attribute 'Metrics.acc'"),
        ("metrics.acc LIKE 1", "Invalid comparator 'LIKE' for metric 'acc'"),
        ("metrics.acc > '1'", "expected a number"),
        ("params.lr IS NULL", "Invalid comparator 'IS NULL'"),
        ("name > 'x'", "Invalid comparator '>' for attribute 'name'"),
        ("name = ('a')", "a list needs IN or NOT IN"),
        ("foo = 'x'", "Invalid attribute 'foo'"),
        ("params.lr = lr", "expected a quoted string or a number"),  # MLflow reads a bare word as text
        ("metrics.acc > 1 OR params.a = 'b'", "OR is not supported"),
    ],
)
def test_logged_model_filter_refused(text: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_logged_model_filter(text)
    assert message in str(info.value)


def test_logged_model_order_by() -> None:
    items: list[dict[str, object]] = [
        {"field_name": "metrics.acc", "ascending": False, "dataset_name": "eval", "dataset_digest": "d1"},
        {"field_name": "creation_time"},
        {"field_name": "name", "dataset_name": ""},
    ]
    assert parse_logged_model_order_by(items) == [
        LoggedModelOrderBy("metric", "acc", False, "eval", "d1"),
        LoggedModelOrderBy("attribute", "creation_timestamp", True),
        LoggedModelOrderBy("attribute", "name", True),
    ]
    for bad, message in [
        ({"field_name": "params.x"}, "use an attribute or metrics.<key>"),
        ({"field_name": "foo"}, "Invalid attribute 'foo'"),
        ({"field_name": " name "}, "Invalid attribute ' name '"),
        ({"field_name": "name", "ascending": "yes"}, "boolean ascending"),
        ({"ascending": True}, "needs a field_name"),
    ]:
        with pytest.raises(FilterError) as info:
            parse_logged_model_order_by([bad])
        assert message in str(info.value)


def test_a_filter_joins_at_most_a_hundred_conditions() -> None:
    assert len(parse_run_filter(" and ".join(["metrics.a > 1"] * 100))) == 100
    with pytest.raises(FilterError, match="more than 100 conditions"):
        parse_run_filter(" and ".join(["metrics.a > 1"] * 1000))
    with pytest.raises(FilterError, match="more than 100 conditions"):
        parse_experiment_filter(" AND ".join(["name = 'a'"] * 101))


def test_a_refusal_quotes_a_huge_filter_in_part() -> None:
    huge = "attribute.run_id IN (" + ",".join(f"{i}" for i in range(100_000)) + ")"
    with pytest.raises(FilterError) as caught:
        parse_run_filter(huge)
    assert len(str(caught.value)) <= 1000 and str(caught.value).startswith("Invalid list")


@pytest.mark.parametrize("items", [[{"": None}], [["name"]], [1]])
def test_order_by_clauses_are_strings(items: list[object]) -> None:
    with pytest.raises(FilterError, match="each clause is a string"):
        parse_experiment_order_by(items)  # type: ignore[arg-type]
    with pytest.raises(FilterError, match="each clause is an object|needs a field_name"):
        parse_logged_model_order_by(items)  # type: ignore[arg-type]
