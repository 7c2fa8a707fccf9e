"""Isolated job environments end to end: a registered environment's conda file becomes a uv venv the step runs in.

Hits the package index (uv installs a small real package), so it is marked slow.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.jobs import JobYard, write
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.slow

REPORT = """\
import json, sys
import six
print("ENV " + json.dumps({"prefix": sys.prefix, "executable": sys.executable, "six": six.__version__}))
"""
WHERE = """\
import json, sys
print("ENV " + json.dumps({"prefix": sys.prefix, "executable": sys.executable}))
"""
CONDA = """\
name: tiny
channels: [conda-forge]
dependencies:
  - python=3.11
  - pip
  - numpy=1.26
  - pip:
      - six==1.16.0
"""


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobYard]:
    root = tmp_path_factory.mktemp("envs")
    server = ServerProcess(root / "workspace", free_port()).init().start()
    try:
        project = root / "project"
        write(project / "src" / "report.py", REPORT)
        write(project / "src" / "where.py", WHERE)
        write(project / "conda.yml", CONDA)
        write(project / "env.yml", "name: tiny-env\nimage: python:3.11-slim\nconda_file: conda.yml\n")
        write(project / "bad-env.yml", "name: bad-env\nimage: python:3.11-slim\nconda_file:\n"
                                       "  dependencies:\n    - pip:\n        - mlyard-no-such-package-xyz==99\n")
        write(project / "job.yml", "code: src\ncommand: python report.py\nenvironment: azureml:tiny-env@latest\n")
        write(project / "bad-job.yml", "command: python -c 'print(1)'\nenvironment: azureml:bad-env@latest\n")
        yard = JobYard(server, project)
        yard.cli("environment", "create", "-f", "env.yml")
        yard.cli("environment", "create", "-f", "bad-env.yml")
        yield yard
    finally:
        server.stop()


def _report(yard: JobYard, name: str) -> dict[str, str]:
    lines = [line for line in yard.log(name).splitlines() if line.startswith("ENV ")]
    assert len(lines) == 1, yard.log(name)
    result: dict[str, str] = json.loads(lines[0][4:])
    return result


def test_isolated_step_runs_in_a_cached_venv_built_from_the_conda_file(yard: JobYard) -> None:
    first = yard.completed(yard.root / "job.yml", env_mode="isolated")
    assert first["env_mode"] == "isolated"
    report = _report(yard, first["name"])
    envs = yard.server.workspace / ".mlyard" / "envs"
    assert Path(report["prefix"]).parent == envs  # not the server's interpreter
    assert report["six"] == "1.16.0"
    log = yard.log(first["name"])
    assert "numpy=1.26" in log  # the conda-only package is reported as skipped

    second = yard.completed(yard.root / "job.yml", env_mode="isolated")
    assert _report(yard, second["name"])["prefix"] == report["prefix"]  # the same cached venv
    assert "cached" in yard.log(second["name"])


def test_inherit_mode_runs_with_the_servers_interpreter(yard: JobYard) -> None:
    job = yard.completed(yard.root / "job.yml", ["command=python where.py"], env_mode="inherit")
    assert "env mode inherit" in yard.log(job["name"])
    assert _report(yard, job["name"])["prefix"] == sys.prefix  # the server runs on this test's interpreter


def test_an_unsatisfiable_environment_fails_in_preparing_with_uvs_message(yard: JobYard) -> None:
    job = yard.run(yard.root / "bad-job.yml", env_mode="isolated")
    assert job["status"] == "Failed"
    assert job["error"].startswith("Preparing:")
    assert "mlyard-no-such-package-xyz" in job["error"]
    envs = yard.server.workspace / ".mlyard" / "envs"
    assert not [p for p in envs.iterdir() if p.name.startswith(".tmp-")]
