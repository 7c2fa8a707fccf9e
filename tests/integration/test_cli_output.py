"""What scripts and people read from the CLI: --query and -o tsv, whole names in tables, model update."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.support.server import ServerProcess, run_cli

if TYPE_CHECKING:
    from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
DATA_YML = ROOT / "examples" / "quickstart" / "data.yml"
ENV_YML = ROOT / "examples" / "quickstart" / "train-env.yml"


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_query_and_tsv_on_create_show_and_list(server: ServerProcess, tmp_path: Path) -> None:
    env = server.env()

    def out(*args: str) -> str:
        return run_cli(*args, env=env).stdout

    assert out("data", "create", "-f", str(DATA_YML), "--name", "q-data", "--query", "name", "-o", "tsv") == "q-data\n"
    # as in az: an object's values on one line, tab-separated; a list's items one per line
    assert out("data", "create", "-f", str(DATA_YML), "--name", "q-data", "--query", "{n: name, v: version}",
               "-o", "tsv") == "q-data\t1\n"
    assert out("data", "show", "-n", "q-data", "--query", "[name, version]", "-o", "tsv") == "q-data\n1\n"
    assert out("data", "list", "--query", "[?name=='q-data'].[name, version]", "-o", "tsv") == "q-data\t1\n"
    assert out("data", "show", "-n", "q-data", "--query", "version") == "1\n"  # table output: the value itself
    # no headers; a row is an object's values in order, nested ones (tags, spec, files) left empty
    rows = [line.split("\t") for line in out("data", "list", "-o", "tsv").splitlines()]
    row = next(r for r in rows if r[1] == "q-data")
    assert row[:4] == ["data", "q-data", "1", "uri_file"] and row[6] == "" and row[7] == "false"

    assert out("environment", "create", "-f", str(ENV_YML), "--name", "q-env", "--query", "name", "-o", "tsv") \
        == "q-env\n"
    component = _write(tmp_path / "component.yml", """\
        $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
        type: command
        name: q_component
        command: echo hi
        environment: azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest
        """)
    assert out("component", "create", "-f", str(component), "--query", "{n: name, v: version}", "-o", "tsv") \
        == "q_component\t1\n"
    assert out("datastore", "list", "--query", "[].name", "-o", "tsv") == "workspaceblobstore\n"
    assert out("datastore", "show", "-n", "workspaceblobstore", "--query", "is_default", "-o", "tsv") == "true\n"
    assert out("compute", "create", "--name", "q-cpu", "--max-instances", "2", "--query", "name", "-o", "tsv") \
        == "q-cpu\n"
    assert out("compute", "show", "-n", "q-cpu", "--query", "max_parallel", "-o", "tsv") == "2\n"


def test_bad_query_is_refused_before_anything_is_created(server: ServerProcess) -> None:
    bad = run_cli("data", "create", "-f", str(DATA_YML), "--name", "q-bad", "--query", "[[", "-o", "tsv",
                  env=server.env(), check=False)
    assert bad.returncode == 2 and "'--query'" in bad.stderr and "JMESPath" in bad.stderr
    assert "Traceback" not in bad.stderr and bad.stdout == ""
    listed = run_cli("data", "list", "--include-archived", "--query", "[?name=='q-bad']", "-o", "json",
                     env=server.env())
    assert json.loads(listed.stdout) == []


def test_job_create_query_name_tsv_prints_only_the_name(server: ServerProcess, tmp_path: Path) -> None:
    pipeline = _write(tmp_path / "pipeline.yml", """\
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        experiment_name: cli-output
        jobs:
          hello:
            type: command
            command: python -c "print('hello')"
            environment: azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest
        """)
    created = run_cli("job", "create", "-f", str(pipeline), "--query", "name", "-o", "tsv", env=server.env())
    name = created.stdout.strip()
    assert created.stdout == f"{name}\n" and name and "\t" not in name
    run_cli("job", "stream", "-n", name, env=server.env())
    assert run_cli("job", "show", "-n", name, "--query", "[[name, status]]", "-o", "tsv",
                   env=server.env()).stdout == f"{name}\tCompleted\n"
    steps = run_cli("job", "list", "-p", name, "--query", "[].step", "-o", "tsv", env=server.env())
    assert steps.stdout == "hello\n"


def test_list_tables_keep_long_names_whole(server: ServerProcess) -> None:
    name = "a-data-asset-with-a-name-long-enough-to-be-cut-in-an-eighty-column-table"[:70]
    assert len(name) == 70
    run_cli("data", "create", "-f", str(DATA_YML), "--name", name, env=server.env())
    for args in (("data", "list"), ("data", "list", "-n", name), ("data", "show", "-n", name)):
        table = run_cli(*args, env={**server.env(), "COLUMNS": "80"}).stdout
        assert name in table, table


# -- model update --------------------------------------------------------------------------------------------


@pytest.fixture
def mlflow_client(server: ServerProcess) -> Iterator[MlflowClient]:
    from mlflow import MlflowClient

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        yield MlflowClient(tracking_uri=server.url)


def test_model_update_sets_metadata_shared_with_mlflow(server: ServerProcess, mlflow_client: MlflowClient,
                                                       tmp_path: Path) -> None:
    env = server.env()
    (tmp_path / "m.pkl").write_bytes(b"model")
    spec = _write(tmp_path / "model.yml", """\
        name: upd-model
        type: custom_model
        path: m.pkl
        description: as registered
        tags: {owner: ml-team}
        """)
    before = json.loads(run_cli("model", "create", "-f", str(spec), "-o", "json", env=env).stdout)

    updated = json.loads(run_cli("model", "update", "-n", "upd-model", "-v", "1", "--set", "description=retrained",
                                 "--set", "tags.stage=prod", "--set", "stage=Production", "-o", "json",
                                 env=env).stdout)
    assert updated["description"] == "retrained"
    assert updated["tags"] == {"owner": "ml-team", "stage": "prod"}
    assert updated["registry"]["stage"] == "Production"
    assert (updated["path"], updated["content_hash"], updated["files"]) == \
        (before["path"], before["content_hash"], before["files"])  # content and identity untouched

    seen = mlflow_client.get_model_version("upd-model", "1")
    assert seen.tags == {"owner": "ml-team", "stage": "prod"}
    assert (seen.description, seen.current_stage) == ("retrained", "Production")

    mlflow_client.set_model_version_tag("upd-model", "1", "validated", "yes")
    mlflow_client.delete_model_version_tag("upd-model", "1", "stage")
    mlflow_client.update_model_version("upd-model", "1", description="from mlflow")
    shown = run_cli("model", "show", "-n", "upd-model", "-v", "1", "--query", "[[description, tags.validated]]",
                    "-o", "tsv", env=env)
    assert shown.stdout == "from mlflow\tyes\n"
    tags = json.loads(run_cli("model", "show", "-n", "upd-model", "--query", "tags", "-o", "json", env=env).stdout)
    assert tags == {"owner": "ml-team", "validated": "yes"}

    removed = run_cli("model", "update", "-n", "upd-model:1", "--remove", "tags.owner", "--query", "tags",
                      "-o", "json", env=env)
    assert json.loads(removed.stdout) == {"validated": "yes"}
    assert mlflow_client.get_model_version("upd-model", "1").tags == {"validated": "yes"}
    mlflow_client.set_registered_model_alias("upd-model", "champion", "1")
    by_alias = run_cli("model", "update", "-n", "upd-model@champion", "--set", "tags.served=yes", "--query",
                       "[[version, tags.served]]", "-o", "tsv", env=env)
    assert by_alias.stdout == "1\tyes\n"

    # registering the same file again is still a no-op: metadata changes are not content changes
    again = run_cli("model", "create", "-f", str(spec), "-v", "1", env=env)
    assert "exists, unchanged" in again.stdout

    audit = _audit(server, "PATCH")
    assert ("admin", "/api/v1/models/upd-model/versions/1", 200) in audit


def test_model_update_refuses_immutable_fields(server: ServerProcess, tmp_path: Path) -> None:
    env = server.env()
    (tmp_path / "m.pkl").write_bytes(b"model")
    run_cli("model", "create", "--name", "frozen-model", "--type", "custom_model", "--path", "m.pkl",
            cwd=tmp_path, env=env)
    for field in ("path=elsewhere", "version=9", "type=mlflow_model", "properties.x=1", "flavors.a=b"):
        proc = run_cli("model", "update", "-n", "frozen-model", "--set", field, env=env, check=False)
        assert proc.returncode == 2 and f"field '{field.split('=')[0]}'" in proc.stderr, proc.stderr
        assert "register a new version" in proc.stderr and "Traceback" not in proc.stderr
    bad_stage = run_cli("model", "update", "-n", "frozen-model", "--set", "stage=Shipped", env=env, check=False)
    assert bad_stage.returncode == 1 and "invalid model version stage 'Shipped'" in bad_stage.stderr
    missing = run_cli("model", "update", "-n", "no-such-model", "-v", "1", "--set", "description=x", env=env,
                      check=False)
    assert missing.returncode == 1 and "no-such-model" in missing.stderr
    # the API names the field too, for callers other than the CLI
    response = httpx.patch(f"{server.url}/api/v1/models/frozen-model/versions/1", json={"path": "elsewhere"},
                           headers=server.headers())
    assert response.status_code == 400 and "'path'" in response.json()["error"]["message"]
    empty_key = httpx.patch(f"{server.url}/api/v1/models/frozen-model/versions/1", json={"tags": {"": "v"}},
                            headers=server.headers())
    assert empty_key.status_code == 400 and "body.tags" in empty_key.json()["error"]["message"]
    shown = json.loads(run_cli("model", "show", "-n", "frozen-model", "-o", "json", env=env).stdout)
    assert shown["path"].endswith("/m.pkl") and shown["version"] == "1" and shown["type"] == "custom_model"


def _audit(server: ServerProcess, action: str) -> list[tuple[str, str, int]]:
    with sqlite3.connect(server.workspace / "mlyard.db") as db:
        rows = db.execute("SELECT actor, resource, status FROM audit_log WHERE action = ?", (action,)).fetchall()
    return [(str(a), str(r), int(s)) for a, r, s in rows]
