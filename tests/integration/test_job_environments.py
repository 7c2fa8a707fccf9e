"""Job environments end to end: curated Azure environments, isolated venvs built from a conda file, and what a
step that lacks a module or a pinned Python is told.

The tests that build with uv hit the package index, so they are marked slow.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.jobs import JobYard, write
from tests.support.server import ServerProcess, free_port

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
        write(project / "old-conda.yml", "name: old\ndependencies:\n  - python=3.99\n  - pip\n  - pip:\n"
                                         "      - six==1.16.0\n")
        write(project / "old-env.yml", "name: old-env\nimage: python:3.99-slim\nconda_file: old-conda.yml\n")
        write(project / "src" / "score.py", "import mltable\n\nprint(mltable.load)\n")
        write(project / "registry-job.yml", "code: src\ncommand: python where.py\nenvironment: @ENV@\n")
        yard = JobYard(server, project)
        yard.cli("environment", "create", "-f", "env.yml")
        yard.cli("environment", "create", "-f", "bad-env.yml")
        yard.cli("environment", "create", "-f", "old-env.yml")
        yield yard
    finally:
        server.stop()


def _report(yard: JobYard, name: str) -> dict[str, str]:
    lines = [line for line in yard.log(name).splitlines() if line.startswith("ENV ")]
    assert len(lines) == 1, yard.log(name)
    result: dict[str, str] = json.loads(lines[0][4:])
    return result


@pytest.mark.slow
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


@pytest.mark.slow
def test_an_unsatisfiable_environment_fails_in_preparing_with_uvs_message(yard: JobYard) -> None:
    job = yard.run(yard.root / "bad-job.yml", env_mode="isolated")
    assert job["status"] == "Failed"
    assert job["error"].startswith("Preparing:")
    assert "mlyard-no-such-package-xyz" in job["error"]
    envs = yard.server.workspace / ".mlyard" / "envs"
    assert not [p for p in envs.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("environment", [
    "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
    "azureml://registries/azureml/environments/AzureML-sklearn-1.0-ubuntu20.04-py38-cpu/versions/3",
])
def test_a_curated_environment_in_azures_registry_runs_with_the_servers_interpreter(yard: JobYard,
                                                                                     environment: str) -> None:
    for mode in ("inherit", "isolated"):
        job = yard.completed(yard.root / "registry-job.yml", [f"environment={environment}"], env_mode=mode)
        assert _report(yard, job["name"])["prefix"] == sys.prefix
        assert f"environment {environment} is a curated Azure ML environment" in yard.log(job["name"])


def test_an_environment_in_another_registry_is_refused_naming_the_registry(yard: JobYard) -> None:
    environment = "azureml://registries/my-team/environments/trainer/versions/1"
    job = yard.run(yard.root / "registry-job.yml", [f"environment={environment}"])
    assert job["status"] == "Failed"
    assert job["error"] == (
        f"Preparing: environment {environment} is in the Azure ML registry 'my-team', which mlyard cannot reach "
        "(of the registries, only Azure's curated 'azureml' runs, with the server's interpreter): register the "
        "environment here with 'mlyard environment create -f <file>' and refer to it as azureml:<name>@latest")


def test_a_pinned_python_the_machine_lacks_fails_in_preparing_saying_how_to_install_it(yard: JobYard) -> None:
    job = yard.run(yard.root / "registry-job.yml", ["environment=azureml:old-env@latest"], env_mode="isolated")
    assert job["status"] == "Failed"
    assert job["error"] == (
        "Preparing: Python 3.99 is pinned by the conda file of environment old-env:1 (dependencies: python=3.99) but "
        "is not installed on this machine (uv looked on PATH and among the Pythons it manages; mlyard never downloads "
        "one). To fix: install it (uv python install 3.99), remove the pin from the conda file, or run the job with "
        "env mode inherit.")
    assert "uv found no Python 3.99" in yard.log(job["name"])


def test_a_missing_azure_module_names_the_extra_that_brings_it(yard: JobYard) -> None:
    job = yard.run(yard.root / "registry-job.yml", ["command=python score.py"])  # mltable is not installed here
    assert job["status"] == "Failed"
    hint = ("the module 'mltable' comes with mlyard's azure extra: pip install 'mlyard[azure]' where the server runs "
            "and restart it (env mode inherit), or add mltable to the pip list of the environment's conda file (env "
            "mode isolated)")
    assert job["error"] == f"the command exited with code 1; {hint}"
    assert "ModuleNotFoundError: No module named 'mltable'" in yard.log(job["name"])
