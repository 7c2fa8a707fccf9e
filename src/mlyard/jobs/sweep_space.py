"""A sweep's search space and sampler, on Optuna (reference §4.2).

Each hyperparameter is one Optuna distribution (its "raw" value) plus a map from that value to what the
trial gets:

* ``choice``: a categorical over the value *indices* (values may be any JSON, Optuna's categoricals only
  scalars); the trial gets ``values[i]``.
* ``randint``: an integer in [0, upper).
* ``uniform`` / ``loguniform``: a float in [min, max], or log-uniform in [exp(min), exp(max)] (Azure's
  bounds are in log space).
* ``normal`` / ``lognormal``: a uniform u in (0, 1) mapped through the normal's inverse CDF (and exp), so
  Sobol sequences stay low-discrepancy in the normal too.
* ``q*`` forms: the continuous sample rounded to a multiple of ``q`` (an int when ``q`` and the result are
  whole numbers, so ``--n_estimators 40`` rather than ``40.0``).

Samplers: random is Optuna's ``RandomSampler`` (``seed``), ``rule: sobol`` its ``QMCSampler`` (scrambled
Sobol, ``seed``; its first trial is drawn at random, as Optuna's QMC sampler learns the space from it), grid its
``GridSampler`` over every ``choice`` (the Cartesian product, each point once), bayesian its ``TPESampler``
(Azure's own is a Gaussian process; TPE needs no extra packages and takes categoricals natively).

Optuna is imported only here, and only when a sweep runs: ``mlyard --help`` does not load it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from mlyard.core.errors import InvalidRequestError

if TYPE_CHECKING:
    import optuna

_EDGE = 1e-9  # u is kept inside (0, 1): the inverse CDF is infinite at the ends


def import_optuna() -> Any:
    """Optuna, or a clear error on a server installed without the ``sweep`` extra."""
    try:
        import optuna
    except ModuleNotFoundError:
        raise InvalidRequestError("this mlyard server cannot run sweep jobs: Optuna is not installed; install "
                                  "the server with pip install 'mlyard[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    spec: dict[str, Any]

    def distribution(self) -> optuna.distributions.BaseDistribution:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        kind = self.spec["type"]
        if kind == "choice":
            return CategoricalDistribution(list(range(len(self.spec["values"]))))
        if kind == "randint":
            return IntDistribution(0, int(self.spec["upper"]) - 1)
        if kind in ("uniform", "quniform"):
            return FloatDistribution(float(self.spec["min_value"]), float(self.spec["max_value"]))
        if kind in ("loguniform", "qloguniform"):
            return FloatDistribution(math.exp(self.spec["min_value"]), math.exp(self.spec["max_value"]), log=True)
        return FloatDistribution(_EDGE, 1 - _EDGE)  # normal family: u for the inverse CDF

    def value(self, raw: Any) -> Any:
        """What the trial gets for the raw (Optuna) value."""
        kind = self.spec["type"]
        if kind == "choice":
            return self.spec["values"][int(raw)]
        if kind == "randint":
            return int(raw)
        if kind in ("uniform", "loguniform"):
            return float(raw)
        if kind in ("quniform", "qloguniform"):
            return _quantise(float(raw), float(self.spec["q"]))
        x = NormalDist(float(self.spec["mu"]), float(self.spec["sigma"])).inv_cdf(min(max(float(raw), _EDGE),
                                                                                      1 - _EDGE))
        if kind in ("lognormal", "qlognormal"):
            x = math.exp(x)
        return _quantise(x, float(self.spec["q"])) if kind in ("qnormal", "qlognormal") else x


def _quantise(x: float, q: float) -> float | int:
    value = round(x / q) * q
    if float(q).is_integer() and float(value).is_integer():
        return int(value)
    return round(value, 12)


class SearchSpace:
    """The hyperparameters of one sweep and the sampler that draws them."""

    def __init__(self, sweep: dict[str, Any]) -> None:
        self.params = [Hyperparameter(n, dict(s)) for n, s in (sweep.get("search_space") or {}).items()]
        algo = sweep.get("sampling_algorithm") or {"type": "random"}
        self.algorithm: dict[str, Any] = algo if isinstance(algo, dict) else {"type": str(algo).lower()}
        self.goal = str((sweep.get("objective") or {}).get("goal", "maximize")).lower()

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {p.name: p.distribution() for p in self.params}

    def values(self, raw: dict[str, Any]) -> dict[str, Any]:
        return {p.name: p.value(raw[p.name]) for p in self.params}

    def grid_size(self) -> int | None:
        """How many points a grid sweep has (None for the other samplers)."""
        if self.algorithm["type"] != "grid":
            return None
        return math.prod(len(p.spec["values"]) for p in self.params)

    def sampler(self) -> optuna.samplers.BaseSampler:
        import_optuna()
        from optuna import samplers

        kind = self.algorithm["type"]
        seed = None if self.algorithm.get("seed") is None else int(self.algorithm["seed"])
        if kind == "grid":
            return _grid_sampler({p.name: list(range(len(p.spec["values"]))) for p in self.params})
        if kind == "bayesian":
            return samplers.TPESampler(seed=seed)
        if str(self.algorithm.get("rule") or "random").lower() == "sobol":
            with warnings.catch_warnings():  # "experimental" since Optuna 3.0
                warnings.simplefilter("ignore")
                return samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=0 if seed is None else seed)
        return samplers.RandomSampler(seed=seed)

    def study(self) -> optuna.Study:
        import_optuna()
        from optuna import create_study

        return create_study(direction="maximize" if self.goal == "maximize" else "minimize",
                                   sampler=self.sampler())


def _grid_sampler(space: dict[str, list[int]]) -> optuna.samplers.BaseSampler:
    """Optuna's grid sampler, less its ``study.stop()`` once the grid is done (that only works inside
    ``study.optimize``; the sweep loop counts the grid's points itself)."""
    from optuna.samplers import GridSampler

    class Grid(GridSampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return Grid(space, seed=0)


class Search:
    """Ask-and-tell over an in-memory Optuna study; rebuilt from the trial rows after a server restart."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._optuna = import_optuna()
        self.study = space.study()
        self._dists = space.distributions()
        self._open: dict[int, Any] = {}  # number -> optuna Trial asked and not yet told

    def ask(self) -> tuple[int, dict[str, Any], dict[str, Any]]:
        """A new trial: (number, raw values, values for the trial)."""
        trial = self.study.ask(fixed_distributions=self._dists)
        self._open[trial.number] = trial
        raw = dict(trial.params)
        return trial.number, raw, self.space.values(raw)

    def tell(self, number: int, value: float | None, state: str) -> None:
        """``state``: complete (with ``value``), pruned (early terminated) or fail."""
        states = self._optuna.trial.TrialState
        trial = self._open.pop(number, None)
        if trial is None:
            return
        if state == "complete" and value is not None and math.isfinite(value):
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=states.PRUNED if state == "pruned" else states.FAIL)

    def restore(self, trials: list[tuple[int, dict[str, Any], str, float | None, dict[str, Any]]],
                study_attrs: dict[str, Any] | None = None) -> None:
        """Put back trials of an earlier run of this sweep: (number, raw, state, value, system attrs), in number
        order. ``state`` "running" keeps the trial open: it is run again with the same values. ``study_attrs``:
        what the sampler kept on the study (the Sobol sampler's position in its sequence)."""
        for key, value in (study_attrs or {}).items():
            self.study._storage.set_study_system_attr(self.study._study_id, key, value)
        states = self._optuna.trial.TrialState
        create = self._optuna.trial.create_trial
        for number, raw, state, value, attrs in trials:
            kind = {"complete": states.COMPLETE, "pruned": states.PRUNED, "running": states.RUNNING}.get(
                state, states.FAIL)
            if kind == states.COMPLETE and (value is None or not math.isfinite(value)):
                kind = states.FAIL
            frozen = create(params=raw, distributions=self._dists, value=value if kind == states.COMPLETE else None,
                            state=kind, system_attrs=attrs)
            self.study.add_trial(frozen)
            added = self.study.trials[-1]
            if added.number != number:
                raise RuntimeError(f"sweep trial numbers are not contiguous: expected {number}, got {added.number}")
            if kind == states.RUNNING:
                self._open[number] = self._optuna.Trial(self.study, added._trial_id)

    def study_attrs(self) -> dict[str, Any]:
        """What the sampler keeps on the study, kept on each trial row for a restart."""
        attrs = self.study._storage.get_study_system_attrs(self.study._study_id)
        return {k: v for k, v in attrs.items() if isinstance(v, int | float | str)}

    def system_attrs(self, number: int) -> dict[str, Any]:
        """What the sampler noted on a trial (the grid point), kept on the trial row for a restart."""
        trial = self._open.get(number)
        attrs = self.study._storage.get_trial_system_attrs(trial._trial_id) if trial is not None else {}
        return {k: v for k, v in attrs.items() if k in ("grid_id", "search_space")}
