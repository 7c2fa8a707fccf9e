"""An environment definition read: its pip requirements, the Python it pins, what is skipped, its identity.

What is read from an environment definition (a registered or inline environment as a mapping):

- ``conda_file`` (its parsed content): the ``- pip: [...]`` list inside ``dependencies`` gives pip
  requirements. A ``python=X.Y`` entry asks for that Python, which must be on the machine (uv finds
  it; nothing is downloaded), else the build fails saying how to install it; ``pip`` needs nothing.
  Other conda packages (``numpy=1.26``, ``conda-forge::cudatoolkit``) are skipped and reported:
  only pip packages are installed.
- ``requirements`` (an mlyard extension, not Azure ML): pip requirement lines, as a list of strings
  or one newline-separated string (``#`` comment lines and blank lines are ignored). They are
  installed after the conda file's pip list.
- ``image`` and ``build`` are not run (no Docker); they are reported and count in the identity.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

from mlyard import __version__
from mlyard.core.errors import InvalidSpecError, SpecIssue
from mlyard.core.hashing import sha256_json

_PYTHON_PIN = re.compile(r"^(\d+(?:\.\d+){0,2})(?:\.\*|\*)?$")
_CONDA_NAME_END = re.compile(r"[\s=<>!~\[]")


def _spec_error(field: str, message: str) -> InvalidSpecError:
    return InvalidSpecError(issues=[SpecIssue(message, field=field)])


def _conda_dependencies(env: Mapping[str, Any]) -> list[Any]:
    conda = env.get("conda_file")
    if conda is None:
        return []
    if not isinstance(conda, Mapping):
        raise _spec_error("conda_file", "expected the conda file's content as a mapping "
                                        f"(name, channels, dependencies); got {type(conda).__name__}")
    deps = conda.get("dependencies") or []
    if not isinstance(deps, list):
        raise _spec_error("conda_file.dependencies", "expected a list of packages")
    return deps


def _conda_name(entry: str) -> tuple[str, str]:
    """Split a conda match spec (``conda-forge::python=3.11``) into (name, version spec)."""
    bare = entry.strip().split("::")[-1]
    match = _CONDA_NAME_END.search(bare)
    cut = match.start() if match else len(bare)
    return bare[:cut].lower(), bare[cut:].strip()


def _python_pin(spec: str) -> str | None:
    """The version of an exact conda pin (``=3.11``, ``==3.11.4``, ``3.11.*``, ``=3.11=h123_0``)."""
    version = spec.removeprefix("==").removeprefix("=").strip().split("=")[0].split(" ")[0]
    match = _PYTHON_PIN.match(version)
    return match.group(1) if match else None


def _requirement_lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.splitlines()
    if not isinstance(value, list):
        raise _spec_error("requirements", "expected pip requirement lines: a list of strings or one string")
    lines = (str(item).strip() for item in value)
    return [line for line in lines if line and not line.startswith("#")]


def pip_requirements(env: Mapping[str, Any] | None) -> tuple[list[str], list[str]]:
    """The pip requirements of an environment, and the conda-only entries that are skipped.

    Args:
        env: an environment definition (``conda_file`` content and/or ``requirements``), or None.

    Returns:
        (pip requirement lines in order, skipped conda entries). ``pip`` and an exact ``python``
        pin are not reported as skipped; a ``python`` range (``python>=3.9``) is.

    Raises:
        InvalidSpecError: the conda file or ``requirements`` has the wrong shape.
    """
    if env is None:
        return [], []
    requirements: list[str] = []
    skipped: list[str] = []
    for entry in _conda_dependencies(env):
        if isinstance(entry, Mapping):
            for key, value in entry.items():
                if key == "pip":
                    requirements += _requirement_lines(value)
                else:
                    skipped.append(f"{key}: {value}")
            continue
        text = str(entry).strip()
        name, spec = _conda_name(text)
        if name == "pip" or (name == "python" and (not spec or _python_pin(spec))):
            continue
        skipped.append(text)
    requirements += _requirement_lines(env.get("requirements"))
    return requirements, skipped


def requested_python(env: Mapping[str, Any] | None) -> str | None:
    """The Python version an environment's conda file pins (``python=3.11`` gives ``"3.11"``), if any."""
    return python_entry(env)[0]


def python_entry(env: Mapping[str, Any] | None) -> tuple[str | None, str]:
    """(the pinned Python version or None, the conda entry that pins it)."""
    if env is None:
        return None, ""
    for entry in _conda_dependencies(env):
        if isinstance(entry, str):
            name, spec = _conda_name(entry)
            if name == "python" and spec:
                return _python_pin(spec), entry.strip()
    return None, ""


def environment_label(env: Mapping[str, Any] | None) -> str:
    """How a message names the environment: ``environment NAME:VERSION``, or the job's inline one."""
    name = (env or {}).get("name")
    if not name:
        return "the job's environment"
    version = env.get("version") if env else None
    return f"environment {name}" + (f":{version}" if version else "")


def environment_identity(env: Mapping[str, Any] | None) -> str:
    """sha256 of an environment's definition: image, conda file content, build context, pip requirements.

    ``None`` (no environment) is the server's interpreter: its ``sys.version`` and mlyard's version.
    """
    if env is None:
        return sha256_json({"interpreter": "server", "python": sys.version, "mlyard": __version__})
    requirements, _ = pip_requirements(env)
    return sha256_json({"image": env.get("image"), "conda_file": env.get("conda_file"),
                        "build": env.get("build"), "requirements": requirements})


def definition_notes(env: Mapping[str, Any] | None, skipped: list[str]) -> list[str]:
    """Log lines for what of a definition is not run: its image, its build context, conda-only packages."""
    if env is None:
        return []
    notes = []
    if env.get("image"):
        notes.append(f"image {env['image']} is not pulled: mlyard runs on the local interpreter")
    build = env.get("build")
    if build:
        where = build.get("path") if isinstance(build, Mapping) else build
        notes.append(f"build context {where} is not built: mlyard runs on the local interpreter "
                     "(list what its Dockerfile installs as pip requirements)")
    if skipped:
        notes.append(f"conda-only packages skipped (only pip packages are installed): {', '.join(skipped)}")
    return notes
