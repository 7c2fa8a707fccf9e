"""Loading the definition a monitor job runs: a ``create_monitor`` mapping, or a whole monitor schedule."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlyard.core.errors import InvalidRequestError


@dataclass(frozen=True)
class LoadedDefinition:
    """The validated ``MonitorDefinition`` and the schedule's trigger (None for a bare definition)."""

    definition: Any
    trigger: Any = None


def load_definition(path: Path) -> LoadedDefinition:
    """Validate ``path`` (YAML or JSON) as a monitor definition or a monitor schedule.

    Raises:
        InvalidSpecError: the file is not a valid monitor (file:line:field in the message).
        InvalidRequestError: the file is missing, or a schedule that does not create a monitor.
    """
    from mlyard.specs import load_spec

    if not path.is_file():
        raise InvalidRequestError(f"--definition {path}: no such file", details={"path": str(path)})
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"{path}: not YAML or JSON ({exc})", details={"path": str(path)}) from exc
    loaded = load_spec(path, "schedule" if isinstance(raw, dict) and "create_monitor" in raw else "monitor")
    if loaded.kind == "monitor":
        return LoadedDefinition(loaded.spec)
    if loaded.kind == "schedule" and getattr(loaded.spec, "create_monitor", None) is not None:
        return LoadedDefinition(loaded.spec.create_monitor, loaded.spec.trigger)
    raise InvalidRequestError(f"{path}: a {loaded.kind} file; expected a monitor definition (create_monitor "
                              "mapping) or a schedule with create_monitor", details={"path": str(path)})
