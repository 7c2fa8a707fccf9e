"""The YAML corpus: Azure ML CLI v2 files the loader must accept, and broken ones it must reject precisely.

``corpus/valid/*.yml`` are shaped like the public examples (azureml-examples ``cli/...`` and
Azure/mlops-project-template); they are our compatibility proof. Their first line is ``# kind=<kind>``.
Support files they reference (code folders, conda files, data, an MLflow model folder, a Docker build
context, component files) live in sub-folders of ``valid/`` and are not corpus entries themselves.

``corpus/invalid/*.yml`` each contain exactly one mistake, described on line 1::

    # kind=<kind> line=<N> field=<dotted.path[0]> expect=<words that must appear in the message>

``line`` is the line of the key holding the bad value (of the item, for a bad list item); for a missing
field, the line of the key of the mapping that lacks it (the first key of the file at the top level).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlyard.core.errors import InvalidSpecError
from mlyard.specs import SPEC_KINDS, load_spec

CORPUS = Path(__file__).parent / "corpus"
VALID_DIR = CORPUS / "valid"
INVALID_DIR = CORPUS / "invalid"

ALL_KINDS = {
    "data", "environment", "model", "component", "job", "online-endpoint", "online-deployment",
    "batch-endpoint", "batch-deployment", "schedule", "monitor", "compute", "datastore",
}

_VALID_HEADER = re.compile(r"^# kind=(?P<kind>[a-z-]+)\s*$")
_INVALID_HEADER = re.compile(
    r"^# kind=(?P<kind>[a-z-]+) line=(?P<line>\d+) field=(?P<field>\S*)(?: expect=(?P<expect>.*))?$"
)


def _entries(folder: Path) -> list[Path]:
    """Corpus entries: the YAML files directly in ``folder`` (sub-folders hold support files)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in {".yml", ".yaml"})


VALID = _entries(VALID_DIR)
INVALID = _entries(INVALID_DIR)


def _first_line(path: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0] if lines else ""


def _valid_kind(path: Path) -> str:
    m = _VALID_HEADER.match(_first_line(path))
    assert m, f"{path.name}: line 1 must be '# kind=<kind>'"
    return m["kind"]


@dataclass(frozen=True)
class Expectation:
    kind: str
    line: int
    field: str
    words: tuple[str, ...]


def _invalid_expectation(path: Path) -> Expectation:
    m = _INVALID_HEADER.match(_first_line(path))
    assert m, f"{path.name}: line 1 must be '# kind=<kind> line=<N> field=<field> [expect=<words>]'"
    return Expectation(m["kind"], int(m["line"]), m["field"], tuple((m["expect"] or "").split()))


def _dump(value: Any) -> Any:
    """Plain data of a spec (pydantic models, dicts, lists), with YAML key names where aliased."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True)
    return value


def _strings(value: Any) -> list[str]:
    """Every string value (not key) anywhere in ``value``."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        assert isinstance(data, dict) and part in data, f"no '{dotted}' in the loaded spec (missing '{part}')"
        data = data[part]
    return data


# -- what the loader contract guarantees, per file ---------------------------------------------------

# Local paths (relative to valid/) that must appear, resolved to absolute POSIX strings, in the loaded spec.
# Component files used by pipelines (components/*/...yml) say `code: ../../src`: that only exists relative to
# the component file itself, so loading those pipelines at all checks the nested base-path rule (§1.2).
RESOLVED_PATHS: dict[str, tuple[str, ...]] = {
    "data-uri-file.yml": ("data/taxi-data.csv",),
    "data-uri-folder.yml": ("data",),
    "data-mltable.yml": ("data/taxi-mltable",),
    "environment-docker-context.yml": ("docker-context",),
    "model-custom.yml": ("models/sklearn_regression_model.pkl",),
    "model-mlflow.yml": ("models/taxi-model",),
    "component-train.yml": ("src", "shared/common_utils.py"),
    "component-image-classifier.yml": ("src",),
    "job-command-train.yml": ("src", "data/taxi-data.csv"),
    "job-command-hello.yml": ("src",),
    "job-command-distributed.yml": ("src",),
    "job-sweep.yml": ("src", "data"),
    "job-pipeline-classical.yml": ("src", "data"),
    "job-pipeline-components.yml": ("data",),
    "job-pipeline-nlp.yml": ("src",),
    "job-pipeline-sweep.yml": ("src", "data"),
    "job-pipeline-component-wrapper.yml": ("data",),
    "online-deployment-ncd-local.yml": ("models/taxi-model",),
    "online-deployment-custom.yml": ("src", "models/sklearn_regression_model.pkl"),
    "batch-deployment-legacy.yml": ("batch/code",),
    "batch-deployment-model.yml": ("models/taxi-model",),
    "batch-deployment-model-summary.yml": ("batch/code",),
}

# conda_file: (where it sits, the file it names). The loader may keep the resolved path or capture the file's
# content (a mapping; reference §5.2 allows either form), but it must be that file, read from the YAML's folder.
CONDA_FILES: dict[str, tuple[str, str]] = {
    "environment-conda.yml": ("conda_file", "environments/train-conda.yml"),
    "job-command-train.yml": ("environment.conda_file", "environments/train-conda.yml"),
    "online-deployment-custom.yml": ("environment.conda_file", "environments/score-conda.yml"),
    "batch-deployment-legacy.yml": ("environment.conda_file", "batch/conda.yml"),
    "batch-deployment-model-summary.yml": ("environment.conda_file", "batch/conda.yml"),
}

# Pipelines (jobs and pipeline components): the number of steps under `jobs`.
STEP_COUNTS: dict[str, int] = {
    "job-pipeline-classical.yml": 4,
    "job-pipeline-components.yml": 3,
    "job-pipeline-nlp.yml": 3,
    "job-pipeline-cv.yml": 1,
    "job-pipeline-sweep.yml": 2,
    "component-pipeline.yml": 2,
}

# `version` is always a string (§0), whatever YAML type it was written as.
VERSIONS: dict[str, str] = {
    "data-uri-folder.yml": "1",
    "data-mltable.yml": "1",
    "environment-conda.yml": "1",
    "model-mlflow.yml": "1",
    "model-job-output.yml": "7",
    "component-train.yml": "1",
    "component-image-classifier.yml": "1.0.4",
    "component-pipeline.yml": "1",
}

# Numeric tag values become strings (§1.1).
TAGS: dict[str, dict[str, str]] = {
    "environment-conda.yml": {"python": "3.8", "sklearn": "0.24"},
    "model-mlflow.yml": {"accuracy": "0.93", "epochs": "10"},
    "online-endpoint.yml": {"tier": "2"},
}

# Batch run settings end up under `settings`, whether written at the root (legacy) or not (§7.2).
BATCH_SETTINGS: dict[str, dict[str, Any]] = {
    "batch-deployment-legacy.yml": {
        "mini_batch_size": 10,
        "max_concurrency_per_instance": 2,
        "output_action": "append_row",
        "output_file_name": "predictions.csv",
        "error_threshold": -1,
        "logging_level": "info",
        "retry_settings.max_retries": 3,
        "retry_settings.timeout": 30,
    },
    "batch-deployment-model.yml": {
        "mini_batch_size": 2,
        "output_action": "append_row",
        "error_threshold": -1,
        "retry_settings.timeout": 300,
    },
    "batch-deployment-model-summary.yml": {"output_action": "summary_only"},
}


# -- the tests ------------------------------------------------------------------------------------------


def test_corpus_is_big_enough() -> None:
    assert len(VALID) >= 25 and len(INVALID) >= 25
    assert len(VALID) >= 30 and len(INVALID) >= 30


def test_valid_corpus_covers_every_kind() -> None:
    assert {_valid_kind(p) for p in VALID} == ALL_KINDS


def test_header_kinds_are_loader_kinds() -> None:
    kinds = {_valid_kind(p) for p in VALID} | {_invalid_expectation(p).kind for p in INVALID}
    unknown = sorted(k for k in kinds if k not in SPEC_KINDS)
    assert not unknown, f"kinds the loader does not know: {unknown}"


def test_per_file_expectations_name_real_files() -> None:
    names = {p.name for p in VALID}
    for table in (RESOLVED_PATHS, CONDA_FILES, STEP_COUNTS, VERSIONS, TAGS, BATCH_SETTINGS):
        assert set(table) <= names, sorted(set(table) - names)


@pytest.mark.parametrize("path", VALID, ids=[p.name for p in VALID])
def test_valid_file_loads(path: Path) -> None:
    kind = _valid_kind(path)
    loaded = load_spec(path, kind)

    assert loaded.kind == kind
    assert isinstance(loaded.warnings, list) and all(isinstance(w, str) for w in loaded.warnings)
    data = _dump(loaded.spec)
    assert isinstance(data, dict)
    strings = _strings(data)

    # Relative local paths are resolved against the YAML file's folder (§1.2) and exist.
    for rel in RESOLVED_PATHS.get(path.name, ()):
        expected = (VALID_DIR / rel).resolve()
        assert expected.exists(), f"support file missing from the corpus: {rel}"
        assert expected.as_posix() in strings, f"{rel} was not resolved to {expected.as_posix()}"
    corpus_root = VALID_DIR.resolve().as_posix()
    for s in strings:
        if s.startswith(corpus_root + "/") or s == corpus_root:
            assert Path(s).exists(), f"resolved path does not exist: {s}"
    leftover = [s for s in strings if s.startswith(("./", "../", "file:"))]
    assert not leftover, f"local paths left relative: {leftover}"

    if path.name in CONDA_FILES:
        where, rel = CONDA_FILES[path.name]
        conda = _get(data, where)
        conda_path = VALID_DIR / rel
        if isinstance(conda, str):
            assert conda == conda_path.resolve().as_posix()
        else:
            assert conda == yaml.safe_load(conda_path.read_text(encoding="utf-8"))
    if path.name in STEP_COUNTS:
        assert len(_get(data, "jobs")) == STEP_COUNTS[path.name]
    if path.name in VERSIONS:
        assert data.get("version") == VERSIONS[path.name]
    for key, value in TAGS.get(path.name, {}).items():
        assert _get(data, "tags").get(key) == value
    for dotted, value in BATCH_SETTINGS.get(path.name, {}).items():
        assert _get(_get(data, "settings"), dotted) == value, f"settings.{dotted}"


@pytest.mark.parametrize("path", INVALID, ids=[p.name for p in INVALID])
def test_invalid_file_is_rejected(path: Path) -> None:
    expected = _invalid_expectation(path)
    try:
        load_spec(path, expected.kind)
    except InvalidSpecError as caught:
        err = caught
    except Exception as other:  # the point: only InvalidSpecError may escape
        pytest.fail(f"{path.name}: raised {type(other).__name__} instead of InvalidSpecError: {other}")
    else:
        pytest.fail(f"{path.name}: loaded without error; expected {expected}")

    assert err.issues, "InvalidSpecError without issues"
    first = err.issues[0]
    summary = f"{path.name}: got {first}"
    assert first.file is not None and Path(first.file).name == path.name, summary
    assert first.line == expected.line, summary
    assert first.field == expected.field, summary
    for word in expected.words:
        assert word.lower() in first.message.lower(), f"{summary}; expected the word {word!r}"

    message = str(err)
    assert f"{path.name}:{expected.line}" in message
    first_line = message.splitlines()[0]
    field_part = f" {re.escape(expected.field)}:" if expected.field else ""
    assert re.search(rf"{re.escape(path.name)}:{expected.line}(?::\d+)?:{field_part} ", first_line), first_line
