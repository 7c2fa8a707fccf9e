"""Job environments: the server's interpreter, or a uv venv built once per content and reused."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mlyard.core.errors import InvalidRequestError, InvalidSpecError
from mlyard.jobs.conda import environment_identity, pip_requirements, requested_python
from mlyard.jobs.environments import MARKER, EnvironmentBuildError, EnvironmentCache, PreparedEnvironment

AZURE_CONDA: dict[str, Any] = {
    "name": "sklearn-env",
    "channels": ["conda-forge", "defaults"],
    "dependencies": ["python=3.11", "pip", "numpy=1.26", {"pip": ["mlflow>=2.14", "scikit-learn"]}],
}
AZURE_ENV: dict[str, Any] = {"image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest",
                             "conda_file": AZURE_CONDA}


def _run(python: str, code: str) -> str:
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def _key(prepared: PreparedEnvironment) -> str:
    return Path(prepared.python).parents[1].name


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name != ".locks")


# --- the definition ---------------------------------------------------------------------------


def test_pip_requirements_of_an_azure_conda_file() -> None:
    requirements, skipped = pip_requirements(AZURE_ENV)
    assert requirements == ["mlflow>=2.14", "scikit-learn"]
    assert skipped == ["numpy=1.26"]  # python=3.11 is read as the Python version; pip needs nothing
    assert requested_python(AZURE_ENV) == "3.11"


def test_requirements_extension_and_python_ranges() -> None:
    env = {"conda_file": {"dependencies": ["python>=3.9", "conda-forge::cudatoolkit=11.8"]},
           "requirements": "# training\nsix==1.16.0\n\nidna\n"}
    assert pip_requirements(env) == (["six==1.16.0", "idna"], ["python>=3.9", "conda-forge::cudatoolkit=11.8"])
    assert requested_python(env) is None
    assert pip_requirements({"requirements": ["six", " "]}) == (["six"], [])
    assert requested_python({"conda_file": {"dependencies": ["python==3.10.4=h12debd9_0"]}}) == "3.10.4"


def test_malformed_definitions_are_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpecError, match="conda_file.dependencies"):
        pip_requirements({"conda_file": {"dependencies": "numpy"}})
    with pytest.raises(InvalidSpecError, match="requirements"):
        pip_requirements({"requirements": {"six": "1.16"}})
    with pytest.raises(InvalidRequestError, match="inherit, isolated"):
        EnvironmentCache(tmp_path).prepare(None, "docker")  # type: ignore[arg-type]


def test_identity_is_stable_and_follows_the_definition() -> None:
    same = {**AZURE_ENV, "conda_file": {**AZURE_CONDA}, "description": "not part of the definition"}
    assert environment_identity(AZURE_ENV) == environment_identity(same)
    changed = {**AZURE_ENV, "conda_file": {**AZURE_CONDA, "dependencies": [
        "python=3.11", "pip", "numpy=1.26", {"pip": ["mlflow>=2.15", "scikit-learn"]}]}}
    assert environment_identity(changed) != environment_identity(AZURE_ENV)
    assert environment_identity({**AZURE_ENV, "image": "python:3.11"}) != environment_identity(AZURE_ENV)
    assert environment_identity({**AZURE_ENV, "requirements": ["six"]}) != environment_identity(AZURE_ENV)
    assert environment_identity(None) == environment_identity(None) != environment_identity(AZURE_ENV)


# --- inherit ----------------------------------------------------------------------------------


def test_inherit_is_the_servers_interpreter_without_io(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_process(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("inherit mode started a process")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    monkeypatch.setattr(subprocess, "run", no_process)
    root = tmp_path / "envs"
    prepared = EnvironmentCache(root).prepare(AZURE_ENV, "inherit")
    assert prepared.mode == "inherit"
    assert prepared.python == os.path.abspath(sys.executable)
    assert prepared.bin_dir == os.path.dirname(prepared.python)
    assert prepared.identity == environment_identity(AZURE_ENV)
    assert not root.exists()
    assert prepared.notes[0].startswith(f"env mode inherit: running with the server's interpreter {prepared.python}")
    assert "2 pip requirement(s) were not installed" in prepared.notes[0]
    assert any("is not pulled" in n for n in prepared.notes)
    assert any("skipped" in n and "numpy=1.26" in n for n in prepared.notes)
    bare = EnvironmentCache(root).prepare(None, "inherit")
    assert bare.notes == (f"env mode inherit: running with the server's interpreter {bare.python}",)


# --- isolated (real uv, real venvs) -----------------------------------------------------------


@pytest.mark.slow
def test_empty_isolated_env_is_built_once_then_reused(tmp_path: Path) -> None:
    cache, lines = EnvironmentCache(tmp_path), list[str]()
    first = cache.prepare(None, "isolated", lines.append)
    folder = Path(first.python).parents[1]
    assert folder.parent == tmp_path and (folder / MARKER).is_file()
    assert Path(_run(first.python, "import sys; print(sys.prefix)")).resolve() == folder.resolve()
    shell = subprocess.run(["sh", "-c", "command -v python; command -v pip"], capture_output=True, text=True,
                           check=True, env={**os.environ, "PATH": f"{first.bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert shell.stdout.split() == [f"{first.bin_dir}/python", f"{first.bin_dir}/pip"]
    before = (folder.stat().st_ino, (folder / MARKER).stat().st_mtime_ns)

    lines.clear()
    again = cache.prepare(None, "isolated", lines.append)
    assert again == first
    assert f"environment {_key(first)[:12]} cached" in lines
    assert (folder.stat().st_ino, (folder / MARKER).stat().st_mtime_ns) == before
    assert _leftovers(tmp_path) == [folder.name]


@pytest.mark.slow
def test_isolated_env_installs_a_real_package(tmp_path: Path) -> None:
    lines: list[str] = []
    env = {"conda_file": {"dependencies": ["python=3", "pip", {"pip": ["six==1.16.0"]}]}}
    prepared = EnvironmentCache(tmp_path).prepare(env, "isolated", lines.append)
    assert " + six==1.16.0" in lines  # uv's own output, streamed
    found = _run(prepared.python, "import six; print(six.__version__, six.__file__)").split()
    assert found[0] == "1.16.0"
    assert Path(found[1]).resolve().is_relative_to(Path(prepared.python).parents[1].resolve())
    assert prepared.identity == environment_identity(env)


@pytest.mark.slow
def test_unsatisfiable_requirement_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentBuildError) as caught:
        EnvironmentCache(tmp_path).prepare({"requirements": ["mlyard-no-such-package-xyz==99"]}, "isolated")
    message = caught.value.message
    assert "No solution found" in message or "not found in the package registry" in message
    assert "To fix: fix the environment's pip requirements" in message
    assert caught.value.details["step"] == "uv pip install"
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_two_threads_preparing_one_env_share_it(tmp_path: Path) -> None:
    cache, start = EnvironmentCache(tmp_path), threading.Barrier(2)
    env = {"requirements": ["six==1.16.0"]}

    def prepare(_: int) -> tuple[PreparedEnvironment, list[str]]:
        lines: list[str] = []
        start.wait()
        return cache.prepare(env, "isolated", lines.append), lines

    with ThreadPoolExecutor(2) as pool:
        (a, a_lines), (b, b_lines) = pool.map(prepare, range(2))
    assert a == b
    assert _run(a.python, "import six; print(six.__version__)") == "1.16.0"
    cached = f"environment {_key(a)[:12]} cached"
    assert sorted([cached in a_lines, cached in b_lines]) == [False, True]
    assert _leftovers(tmp_path) == [_key(a)]


@pytest.mark.slow
def test_a_crashed_build_does_not_confuse_the_next(tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path)
    key = _key(cache.prepare(None, "isolated"))
    # What a crash leaves: a half-built tmp folder, and (from a tool that skipped the marker) an unmarked folder.
    (tmp_path / key / MARKER).unlink()
    junk = tmp_path / f".tmp-{key}-junk"
    (junk / "bin").mkdir(parents=True)
    (junk / "bin" / "python").write_text("half")

    lines: list[str] = []
    prepared = cache.prepare(None, "isolated", lines.append)
    assert f"environment {key[:12]} cached" not in lines
    assert (tmp_path / key / MARKER).is_file()
    assert _run(prepared.python, "print('ok')") == "ok"
    assert _leftovers(tmp_path) == [key]


def test_a_pinned_python_the_machine_lacks_fails_saying_how_to_install_it(tmp_path: Path) -> None:
    env = {"name": "old-env", "version": "2", "conda_file": {"dependencies": ["python=3.99", "pip", {"pip": ["six"]}]}}
    lines: list[str] = []
    with pytest.raises(EnvironmentBuildError) as caught:
        EnvironmentCache(tmp_path).prepare(env, "isolated", lines.append)
    assert caught.value.message == (
        "Python 3.99 is pinned by the conda file of environment old-env:2 (dependencies: python=3.99) but is not "
        "installed on this machine (uv looked on PATH and among the Pythons it manages; mlyard never downloads one). "
        "To fix: install it (uv python install 3.99), remove the pin from the conda file, or run the job with env "
        "mode inherit.")
    assert any(line.startswith("uv found no Python 3.99: ") for line in lines)  # uv's own reason, in the log
    assert _leftovers(tmp_path) == []  # nothing built


@pytest.mark.slow
def test_a_patch_release_the_machine_lacks_runs_with_another_of_the_same_minor(tmp_path: Path) -> None:
    minor = ".".join(map(str, sys.version_info[:2]))
    env = {"conda_file": {"dependencies": [f"python={minor}.99", "pip"]}}
    prepared = EnvironmentCache(tmp_path).prepare(env, "isolated")
    server = ".".join(map(str, sys.version_info[:3]))
    assert (f"conda asks for python {minor}.99; this machine has no {minor}.99: using CPython {server}, a release of "
            f"the same {minor}") in prepared.notes
    assert _run(prepared.python, "import platform; print(platform.python_version())") == server


@pytest.mark.slow
def test_mlflow_pulled_in_by_azureml_mlflow_is_held_to_the_ml_extras_range(tmp_path: Path) -> None:
    """``azureml-mlflow`` unpinned pulls the newest ``mlflow-skinny``; the constraint keeps it below 3.14."""
    cache, lines = EnvironmentCache(tmp_path), list[str]()
    env = {"conda_file": {"dependencies": ["python=3", "pip", {"pip": ["azureml-mlflow"]}]}}
    prepared = cache.prepare(env, "isolated", lines.append)
    version = _run(prepared.python, "from importlib.metadata import version; print(version('mlflow-skinny'))")
    assert version.startswith("3.13."), version
    note = (f"mlflow-skinny {version}: mlyard holds mlflow and mlflow-skinny to >=3.13,<3.14, as its ml extra does "
            "(from 3.14 MLflow's sklearn flavour saves with skops by default, which refuses tree models, so unchanged "
            "training scripts fail); pin mlflow in the environment's pip list to choose a version outside it")
    assert note in prepared.notes
    assert note in cache.prepare(env, "isolated").notes  # a cached environment says it too


@pytest.mark.slow
def test_an_mlflow_pin_outside_the_range_is_installed_as_asked(tmp_path: Path) -> None:
    env = {"requirements": ["mlflow-skinny==3.14.0"]}
    prepared = EnvironmentCache(tmp_path).prepare(env, "isolated")
    assert _run(prepared.python, "from importlib.metadata import version; print(version('mlflow-skinny'))") == "3.14.0"
    assert any(n.startswith("the environment asks for mlflow-skinny==3.14.0, outside the MLflow range mlyard "
                            "supports (>=3.13,<3.14;") for n in prepared.notes)
    assert not any("mlyard holds mlflow" in n for n in prepared.notes)
