"""What MLflow's fields may hold: key names, display names, 64-bit integers and metric values.

MLflow's own rule for metric, param and tag keys is kept (:func:`check_key`), matched against the
whole key: MLflow's pattern ends in ``$``, which lets one trailing newline through; mlyard does not.
Display names (experiments, runs, registered models) are free text in MLflow; mlyard refuses control
characters in them (a name ``"d\\n"`` shows as a second ``d`` in every list), as docs/tracking.md says.
"""

from __future__ import annotations

import math
import re
from typing import Any

from mlyard.core.errors import InvalidRequestError

MAX_KEY = 250
MAX_RUN_NAME = 250  # the store's column, as MLflow's
MAX_MODEL_NAME = 255  # registered models: the store's column (MLflow's is 256)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EXPERIMENT_ID_MAX = 2**31 - 1  # experiment ids are 32-bit integers in the store (PostgreSQL's INTEGER)
_KEY_RE = re.compile(r"[/\w.\- :]*")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode's Cc: C0, DEL and C1


def check_key(kind: str, key: Any) -> str:
    """MLflow's rule for metric, param and tag keys: word characters, ``/ . - :`` and spaces; no ``..``."""
    if not isinstance(key, str) or not key:
        raise InvalidRequestError(f"{kind} key is missing; give a name")
    if len(key) > MAX_KEY:
        raise InvalidRequestError(f"{kind} key {key[:40]!r}... is longer than {MAX_KEY} characters")
    if not _KEY_RE.fullmatch(key) or ".." in key.split("/") or key.startswith("/"):
        raise InvalidRequestError(f"invalid {kind} name {key!r}: use letters, digits, underscores, dashes, periods, "
                                  "spaces, colons and slashes, not a path like '../x' or '/x'")
    return key


def check_display_name(kind: str, name: str, limit: int | None = None) -> str:
    """Refuse a name with a control character (newline, tab, NUL...) or longer than ``limit``; returns ``name``."""
    if limit is not None and len(name) > limit:
        raise InvalidRequestError(f"{kind} name {name[:40]!r}... is {len(name)} characters long; the most is {limit}")
    bad = _CONTROL_RE.search(name)
    if bad is not None:
        raise InvalidRequestError(f"{kind} name {name!r} holds the control character U+{ord(bad[0]):04X} at "
                                  f"position {bad.start() + 1}: a name is one line of printable text")
    return name


def to_int64(field: str, value: Any) -> int:
    """``value`` (an integer, an integral number or a decimal string, as MLflow's clients send int64s) as an int."""
    if isinstance(value, bool):
        raise InvalidRequestError(f"{field} must be an integer; got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequestError(f"{field} must be a finite integer; got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"{field} must be an integer; got {str(value)[:100]!r}") from None
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidRequestError(f"{field} is {str(value)[:40]}, beyond a signed 64-bit integer "
                                  f"({INT64_MIN} to {INT64_MAX})")
    return number


def to_metric_value(key: str, value: Any) -> float:
    """A metric's value: a number, or a string MLflow's clients send (``"NaN"``, ``"Infinity"``, ``"0.5"``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRequestError(f"metric {key!r}: the value must be a number; got {str(value)[:100]!r}")
    try:
        return float(value)
    except ValueError:
        raise InvalidRequestError(f"metric {key!r}: the value must be a number; got {str(value)[:100]!r}") from None


def experiment_key(value: Any) -> int | None:
    """An experiment id as the store's key; None when it is an integer no experiment can have (so: none found)."""
    number = to_int64("experiment id", value)
    return number if 0 <= number <= EXPERIMENT_ID_MAX else None
