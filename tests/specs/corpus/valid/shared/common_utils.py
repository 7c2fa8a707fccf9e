"""Helpers copied into the component snapshot through additional_includes (corpus support file)."""


def clip(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
