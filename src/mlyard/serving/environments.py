"""The interpreter an online deployment's workers run with: the job rules of ``jobs/environments.py``.

``inherit`` (the server's default, ``MLYARD_JOB_ENV_MODE``) runs workers with the server's interpreter. ``isolated``
builds a uv virtual environment, cached by content like a job's, from the deployment's ``environment`` (its conda
file's pip list) or, for a no-code MLflow model with no environment, from the model's own ``requirements.txt`` and
``python_env.yaml``; mlyard adds what its worker needs (uvicorn). A curated Azure environment runs with the server's
interpreter in both modes, as jobs do. A deployment picks its mode with ``environment_variables: MLYARD_ENV_MODE``,
so its YAML stays valid for Azure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlyard.assets.service import AssetService
from mlyard.core.errors import InvalidRequestError
from mlyard.jobs.environments import ENV_MODES, EnvironmentCache, EnvMode, PreparedEnvironment
from mlyard.jobs.resolve import resolve_environment

ENV_MODE_VAR = "MLYARD_ENV_MODE"
WORKER_REQUIREMENTS = ("uvicorn>=0.30",)  # what mlyard's worker imports beyond the standard library
_PYTHON = re.compile(r"^python:\s*['\"]?(\d+(?:\.\d+){0,2})", re.MULTILINE)


def env_mode(spec: dict[str, Any], default: str) -> EnvMode:
    """The deployment's env mode: its ``MLYARD_ENV_MODE`` variable, else the server's default."""
    mode = str((spec.get("environment_variables") or {}).get(ENV_MODE_VAR) or default)
    if mode not in ENV_MODES:
        raise InvalidRequestError(f"environment_variables.{ENV_MODE_VAR} is {mode!r}; use one of "
                                  f"{', '.join(ENV_MODES)}", details={"field": "environment_variables"})
    return mode


def model_environment(model: Path) -> dict[str, Any] | None:
    """An environment definition from an MLflow model's ``requirements.txt`` (and the Python of its
    ``python_env.yaml``), or None when the model lists no requirements."""
    requirements = model / "requirements.txt"
    if not requirements.is_file():
        return None
    lines = [line.strip() for line in requirements.read_text(errors="replace").splitlines()]
    pip = [line for line in lines if line and not line.startswith(("#", "-"))]
    if not pip:
        return None
    dependencies: list[Any] = []
    python_env = model / "python_env.yaml"
    if python_env.is_file() and (m := _PYTHON.search(python_env.read_text(errors="replace"))):
        dependencies.append(f"python={m.group(1)}")
    dependencies += ["pip", {"pip": pip}]
    return {"name": f"{model.name}-requirements", "conda_file": {"dependencies": dependencies}}


def prepare_worker_environment(assets: AssetService, envs: EnvironmentCache, spec: dict[str, Any], *,
                               default_mode: str, model: Path | None,
                               log: Callable[[str], None]) -> PreparedEnvironment:
    """The interpreter for a validated deployment spec's workers, built (or found in the cache) when isolated.

    Args:
        model: the model's local folder when the deployment serves an MLflow model without a scoring script.

    Raises:
        EnvironmentBuildError: uv could not build the environment (its output ends the message).
        InvalidRequestError: an unknown mode, or an environment that is not registered.
    """
    mode = env_mode(spec, default_mode)
    definition, note = resolve_environment(assets, spec.get("environment"))
    if note:
        log(note)
    if mode == "isolated" and definition is None and note is None and model is not None:
        definition = model_environment(model)
        if definition is not None:
            log(f"env mode isolated: building from the model's requirements.txt ({model / 'requirements.txt'})")
    if mode == "inherit" or definition is None:
        return envs.prepare(None, "inherit", log)
    extra = definition.get("requirements") or []
    extra = extra.splitlines() if isinstance(extra, str) else list(extra)
    definition = {**definition, "requirements": [*extra, *WORKER_REQUIREMENTS]}
    return envs.prepare(definition, "isolated", log)
