"""What mlyard's extras mean for jobs: the MLflow client range, and which extra brings a missing module.

The ``ml`` extra (``pyproject.toml``) holds MLflow to ``MLFLOW_RANGE``: from 3.14 MLflow's sklearn flavour
saves with skops by default, and skops refuses tree models, so Azure's unchanged ``train.py`` fails.
Isolated environments get the same range as a uv constraint on ``mlflow`` and ``mlflow-skinny`` (what
``azureml-mlflow`` pulls in), unless the environment pins MLflow outside it itself: a pin the user wrote wins.

A step that fails with ``ModuleNotFoundError`` for a module one of the extras brings gets a hint in its
failure reason: which extra, and how to get the module in the env mode the step ran with.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

MLFLOW_RANGE = ">=3.13,<3.14"
MLFLOW_DISTRIBUTIONS = ("mlflow", "mlflow-skinny")
MLFLOW_WHY = ("from 3.14 MLflow's sklearn flavour saves with skops by default, which refuses tree models, so "
              "unchanged training scripts fail")

_RANGE = SpecifierSet(MLFLOW_RANGE)
_FLOOR = Version("3.13.0")


@dataclass(frozen=True)
class MlflowPolicy:
    """How an isolated environment's MLflow is held.

    Attributes:
        constraints: uv constraint lines (empty when the environment pins MLflow itself, outside the range).
        notes: lines for the job's log.
    """

    constraints: tuple[str, ...]
    notes: tuple[str, ...]


def _admits_range(specifier: SpecifierSet) -> bool:
    """Whether some version in ``MLFLOW_RANGE`` satisfies ``specifier``.

    The candidates are the range's floor and each version the specifier names (and the next patch),
    which is where an intersection with a ``>=X.Y,<X.Z`` range starts if there is one.
    """
    candidates = {_FLOOR}
    for spec in specifier:
        try:
            named = Version(spec.version.removesuffix(".*"))
        except InvalidVersion:
            continue
        candidates |= {named, Version(f"{named.major}.{named.minor}.{named.micro + 1}")}
    return any(_RANGE.contains(v, prereleases=True) and specifier.contains(v, prereleases=True) for v in candidates)


def mlflow_policy(requirements: Sequence[str]) -> MlflowPolicy:
    """The MLflow constraint for an isolated environment built from ``requirements`` (pip lines).

    Lines pip options or paths rather than requirements (``-e .``, ``--index-url``) are not looked at.
    """
    outside = []
    for line in requirements:
        try:
            req = Requirement(line.split(" #", 1)[0].strip())
        except InvalidRequirement:
            continue
        if canonicalize_name(req.name) in MLFLOW_DISTRIBUTIONS and (req.url or not _admits_range(req.specifier)):
            outside.append(line)
    if outside:
        return MlflowPolicy((), (f"the environment asks for {', '.join(outside)}, outside the MLflow range mlyard "
                                 f"supports ({MLFLOW_RANGE}; {MLFLOW_WHY}): installed as asked",))
    return MlflowPolicy(tuple(f"{name}{MLFLOW_RANGE}" for name in MLFLOW_DISTRIBUTIONS), ())


def mlflow_note(installed: dict[str, str]) -> str:
    """The log line for an environment whose MLflow the constraint held (``installed``: distribution -> version)."""
    versions = ", ".join(f"{name} {version}" for name, version in sorted(installed.items()))
    return (f"{versions}: mlyard holds mlflow and mlflow-skinny to {MLFLOW_RANGE}, as its ml extra does "
            f"({MLFLOW_WHY}); pin mlflow in the environment's pip list to choose a version outside it")


# module -> (the pip package that provides it, the mlyard extra that brings it)
MODULE_EXTRAS: dict[str, tuple[str, str]] = {
    "mltable": ("mltable", "azure"),
    "azureml.ai.monitoring": ("azureml-ai-monitoring", "azure"),
    "inference_schema": ("inference-schema", "azure"),
    "mlflow": ("mlflow", "ml"),
    "sklearn": ("scikit-learn", "ml"),
    "pandas": ("pandas", "ml"),
    "numpy": ("numpy", "ml"),
    "pyarrow": ("pyarrow", "ml"),
    "matplotlib": ("matplotlib", "ml"),
}
_MISSING = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")


def missing_module_hint(log_tail: str, mode: str) -> str | None:
    """A hint for a step whose log ends in ``ModuleNotFoundError`` for a module an mlyard extra brings.

    Args:
        log_tail: the last lines of the step's log.
        mode: the env mode the step ran with (``inherit`` or ``isolated``).

    Returns:
        One sentence naming the module, its package and extra, and what to do; None when the log names
        no such module. ``No module named 'azureml'`` counts for ``azureml.ai.monitoring`` only when the
        log (the traceback's source line) names ``azureml.ai.monitoring``.
    """
    found = _MISSING.findall(log_tail)
    if not found:
        return None
    missing = found[-1]
    module = next((m for m in MODULE_EXTRAS if m == missing or (m.startswith(f"{missing}.") and m in log_tail)),
                  None)
    if module is None:
        return None
    package, extra = MODULE_EXTRAS[module]
    if mode == "isolated":
        return (f"the module '{module}' is not in this isolated environment: add {package} to the pip list of the "
                f"environment's conda file (mlyard's {extra} extra brings it for env mode inherit)")
    return (f"the module '{module}' comes with mlyard's {extra} extra: pip install 'mlyard[{extra}]' where the server "
            f"runs and restart it (env mode inherit), or add {package} to the pip list of the environment's conda file "
            "(env mode isolated)")
