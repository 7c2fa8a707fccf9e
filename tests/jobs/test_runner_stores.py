"""The job runner on both stores: a two-step pipeline with a registered output runs, then is reused.

The same scenario on SQLite and on a real PostgreSQL server, through the real CLI and a real server
process, because the runner's rows, reuse lookup and registration are plain store queries.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, free_port, run_cli

STEP = """\
import pathlib, sys
src, out = sys.argv[1], pathlib.Path(sys.argv[2])
text = pathlib.Path(src).read_text() if pathlib.Path(src).is_file() else src
(out / "result.txt").write_text(text.upper())
print("wrote", out / "result.txt")
"""


def _pipeline(root: Path) -> Path:
    (root / "src").mkdir()
    (root / "src" / "step.py").write_text(STEP)
    (root / "pipeline.yml").write_text(textwrap.dedent("""\
        type: pipeline
        experiment_name: stores
        inputs:
          word: hello
        outputs:
          shouted:
            name: shouted-words
        jobs:
          first:
            code: src
            environment: azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest
            command: python step.py ${{inputs.word}} ${{outputs.out}}
            inputs: {word: '${{parent.inputs.word}}'}
            outputs: {out: }
          second:
            code: src
            environment: azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest
            command: python step.py ${{inputs.prev}}/result.txt ${{outputs.out}}
            inputs: {prev: '${{parent.jobs.first.outputs.out}}'}
            outputs: {out: '${{parent.outputs.shouted}}'}
        """))
    return root / "pipeline.yml"


@pytest.mark.slow
def test_pipeline_runs_and_is_reused_on_each_store(tmp_path: Path, database_url: str) -> None:
    server = ServerProcess(tmp_path / "ws", free_port(), database_url=database_url).init().start()
    try:
        pipeline = _pipeline(tmp_path)
        env = server.env()
        first = json.loads(run_cli("job", "create", "-f", str(pipeline), "--stream", "-o", "json", env=env).stdout)
        assert first["status"] == "Completed", first
        assert [s["status"] for s in first["steps"]] == ["Completed", "Completed"]
        assert first["outputs"]["shouted"]["asset"] == "shouted-words:1"
        data = json.loads(run_cli("data", "show", "-n", "shouted-words:1", "-o", "json", env=env).stdout)
        assert data["path"] == first["outputs"]["shouted"]["uri"]
        assert [f["path"] for f in data["files"]] == ["shouted/result.txt"]

        second = json.loads(run_cli("job", "create", "-f", str(pipeline), "--stream", "-o", "json", env=env).stdout)
        assert second["status"] == "Completed", second
        assert [s["reused_from"] for s in second["steps"]] == [s["name"] for s in first["steps"]]
        assert second["outputs"]["shouted"]["uri"] == first["outputs"]["shouted"]["uri"]

        changed = json.loads(run_cli("job", "create", "-f", str(pipeline), "--set", "inputs.word=bye", "--stream",
                                     "-o", "json", env=env).stdout)
        assert [s["reused_from"] for s in changed["steps"]] == [None, None]
        out = tmp_path / "down"
        run_cli("job", "download", "-n", changed["name"], "--output-name", "shouted", "-p", str(out), env=env)
        assert (out / "named-outputs" / "shouted" / "result.txt").read_text() == "BYE"
    finally:
        server.stop()
