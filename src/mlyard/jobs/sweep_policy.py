"""Early termination of sweep trials (reference §4.2), with Azure's rules rather than Optuna's pruners.

Every value a trial logs for the primary metric is one *interval* (the n-th value is interval n, in MLflow's
step, timestamp order). A policy is applied to a trial at each interval k that is a multiple of
``evaluation_interval`` (0 counts as 1) and at least ``delay_evaluation``, comparing the trial with every
trial, running or finished, that has logged a value, each taken up to interval k (a trial behind the one
evaluated counts with what it logged so far: trials run side by side and rarely log in step):

* bandit: the trial's best value so far is compared with the best of all trials' best values at that
  interval; maximize stops it below ``best / (1 + slack_factor)`` (or ``best - slack_amount``), minimize above
  ``best * (1 + slack_factor)`` (or ``best + slack_amount``);
* median stopping: stops it when its best so far is worse than the median of the trials' running averages
  (their mean up to that interval); it needs at least two trials at the interval;
* truncation selection: stops it when it ranks in the worst ``truncation_percentage`` % (rounded down) of
  the trials at that interval by best value so far; ``exclude_finished_jobs`` leaves finished trials out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Any


@dataclass
class Curve:
    """The primary metric values a trial logged, in order; ``finished``: the trial has ended."""

    values: list[float] = field(default_factory=list)
    finished: bool = False


class Policy:
    def __init__(self, spec: dict[str, Any], goal: str) -> None:
        self.kind = str(spec["type"])
        self.spec = spec
        self.maximize = goal == "maximize"
        self.interval = max(1, int(spec.get("evaluation_interval") or 1))
        self.delay = int(spec.get("delay_evaluation") or 0)

    def due(self, k: int) -> bool:
        return k >= max(1, self.delay) and k % self.interval == 0

    def _best(self, values: list[float]) -> float:
        return max(values) if self.maximize else min(values)

    def _worse(self, a: float, b: float) -> bool:
        """``a`` is strictly worse than ``b`` for the goal."""
        return a < b if self.maximize else a > b

    def check(self, trial: str, k: int, curves: dict[str, Curve]) -> str | None:
        """Why ``trial`` stops at interval ``k`` (None: it goes on)."""
        mine = curves[trial].values[:k]
        if len(mine) < k or any(math.isnan(v) for v in mine):
            return None
        peers = {n: c.values[:k] for n, c in curves.items() if c.values}
        own = self._best(mine)
        if self.kind == "bandit":
            best = self._best([self._best(v) for v in peers.values()])
            factor, amount = self.spec.get("slack_factor"), self.spec.get("slack_amount")
            if factor is not None:
                limit = best / (1 + float(factor)) if self.maximize else best * (1 + float(factor))
                slack = f"slack_factor {factor}"
            else:
                limit = best - float(amount) if self.maximize else best + float(amount)  # type: ignore[arg-type]
                slack = f"slack_amount {amount}"
            if self._worse(own, limit):
                return (f"bandit policy at interval {k}: best value so far {own:.6g} is "
                        f"{'below' if self.maximize else 'above'} {limit:.6g} (best {best:.6g}, {slack})")
            return None
        if self.kind == "median_stopping":
            if len(peers) < 2:
                return None
            mid = median(sum(v) / len(v) for v in peers.values())
            if self._worse(own, mid):
                return (f"median stopping policy at interval {k}: best value so far {own:.6g} is worse than the "
                        f"median of the running averages, {mid:.6g}")
            return None
        if self.kind == "truncation_selection":
            if self.spec.get("exclude_finished_jobs"):
                peers = {n: v for n, v in peers.items() if n == trial or not curves[n].finished}
            cut = len(peers) * int(self.spec["truncation_percentage"]) // 100
            better = sum(1 for n, v in peers.items() if n != trial and self._worse(own, self._best(v)))
            if cut > 0 and better >= len(peers) - cut:
                return (f"truncation selection policy at interval {k}: best value so far {own:.6g} is in the "
                        f"worst {self.spec['truncation_percentage']}% of the {len(peers)} trials at this interval")
            return None
        return None
