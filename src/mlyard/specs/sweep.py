"""Sweep jobs and sweep steps (reference §4.2): search spaces, samplers, early termination, limits."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from mlyard.specs.base import Label, Name, SpecModel, Text, spec_error, typed_union
from mlyard.specs.commands import CommandSettings, check_command
from mlyard.specs.components import CommandComponent, load_component_ref
from mlyard.specs.io import JobInputs, JobOutputs
from mlyard.specs.jobs import JobFields


class Choice(SpecModel):
    type: Literal["choice"]
    values: list[Any]

    @field_validator("values")
    @classmethod
    def _some(cls, value: list[Any]) -> list[Any]:
        if not value:
            raise spec_error("a choice needs at least one value: list them under values: [...]")
        return value


class RandInt(SpecModel):
    type: Literal["randint"]
    upper: int = Field(ge=1)


class Uniform(SpecModel):
    type: Literal["uniform", "loguniform"]
    min_value: float
    max_value: float

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.min_value >= self.max_value:
            raise spec_error(f"min_value ({self.min_value}) must be below max_value ({self.max_value})", "max_value")
        return self


class QUniform(Uniform):  # type: ignore[misc]
    type: Literal["quniform", "qloguniform"]  # type: ignore[assignment]
    q: float = Field(gt=0)


class Normal(SpecModel):
    type: Literal["normal", "lognormal"]
    mu: float
    sigma: float = Field(gt=0)


class QNormal(Normal):  # type: ignore[misc]
    type: Literal["qnormal", "qlognormal"]  # type: ignore[assignment]
    q: float = Field(gt=0)


SearchDistribution = typed_union(
    {"choice": Choice, "randint": RandInt, "uniform": Uniform, "loguniform": Uniform, "quniform": QUniform,
     "qloguniform": QUniform, "normal": Normal, "lognormal": Normal, "qnormal": QNormal, "qlognormal": QNormal},
    what="search space distribution")


class RandomSampling(SpecModel):
    type: Literal["random"]
    seed: int | None = None
    rule: Annotated[Literal["random", "sobol"], BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)] = \
        "random"


class GridSampling(SpecModel):
    type: Literal["grid"]


class BayesianSampling(SpecModel):
    type: Literal["bayesian"]


def _sampling_shorthand(value: Any) -> Any:
    if isinstance(value, str):
        return {"type": value.lower()}
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return {**value, "type": value["type"].lower()}
    return value


SamplingAlgorithm = Annotated[
    typed_union({"random": RandomSampling, "grid": GridSampling, "bayesian": BayesianSampling},
                what="sampling algorithm"),
    BeforeValidator(_sampling_shorthand),
]


class Objective(SpecModel):
    primary_metric: Text
    goal: Annotated[Literal["maximize", "minimize"], BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)]


class Termination(SpecModel):
    evaluation_interval: int = Field(default=1, ge=0)
    delay_evaluation: int = Field(default=0, ge=0)


class Bandit(Termination):
    type: Literal["bandit"]
    slack_factor: float | None = Field(default=None, gt=0)
    slack_amount: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_slack(self) -> Bandit:
        if (self.slack_factor is None) == (self.slack_amount is None):
            raise spec_error("a bandit policy needs exactly one of slack_factor and slack_amount", "slack_factor")
        return self


class MedianStopping(Termination):
    type: Literal["median_stopping"]


class TruncationSelection(Termination):
    type: Literal["truncation_selection"]
    truncation_percentage: int = Field(ge=1, le=99)
    exclude_finished_jobs: bool = False


EarlyTermination = typed_union(
    {"bandit": Bandit, "median_stopping": MedianStopping, "truncation_selection": TruncationSelection},
    what="early termination policy")


class SweepLimits(SpecModel):
    max_total_trials: int = Field(default=1000, ge=1, le=1000)
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    timeout: int = Field(default=5184000, ge=1)
    trial_timeout: int | None = Field(default=None, ge=1)


class Trial(CommandSettings):
    """The command a sweep job runs per trial."""


class SweepFields(SpecModel):
    """What sweep jobs and sweep steps share."""

    type: Literal["sweep"]
    search_space: dict[str, SearchDistribution]  # type: ignore[valid-type]
    sampling_algorithm: SamplingAlgorithm  # type: ignore[valid-type]
    objective: Objective
    early_termination: EarlyTermination | None = None  # type: ignore[valid-type]
    limits: SweepLimits = Field(default_factory=SweepLimits)

    @field_validator("search_space")
    @classmethod
    def _not_empty(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise spec_error("search_space is empty: give at least one hyperparameter")
        return value

    @model_validator(mode="after")
    def _sampler_fits(self) -> SweepFields:
        sampler = self.sampling_algorithm.type
        kinds = {name: d.type for name, d in self.search_space.items()}
        allowed = {"grid": {"choice"}, "bayesian": {"choice", "uniform", "quniform"}}.get(sampler)
        if allowed is not None:
            for name, kind in kinds.items():
                if kind not in allowed:
                    raise spec_error(f"{sampler} sampling supports only {', '.join(sorted(allowed))} distributions; "
                                     f"'{name}' is {kind}: use random sampling or change the distribution",
                                     "search_space", name, "type")
        if sampler == "bayesian" and self.early_termination is not None:
            raise spec_error("bayesian sampling does not support early termination; remove early_termination",
                             "early_termination")
        return self


class SweepJob(JobFields, SweepFields):
    """``type: sweep`` with an inline ``trial``."""

    trial: Trial

    @model_validator(mode="after")
    def _trial_bindings(self) -> SweepJob:
        check_command(self.trial.command, self.inputs, self.outputs, search_space=set(self.search_space),
                      field="trial")
        return self


def _trial_ref(value: Any, info: ValidationInfo) -> Any:
    return load_component_ref(value, info)


class SweepStep(SweepFields):
    """A sweep step in a pipeline: ``trial`` is a component whose inputs the search space overrides."""

    trial: Annotated[
        typed_union({None: CommandComponent, "command": CommandComponent}, what="component", scalar=str),
        BeforeValidator(_trial_ref),
    ]
    inputs: JobInputs = Field(default_factory=dict)
    outputs: JobOutputs = Field(default_factory=dict)
    compute: Text | None = None
    name: Name | None = None
    display_name: Label | None = None
    description: Text | None = None
    tags: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _space_names_inputs(self) -> SweepStep:
        if isinstance(self.trial, CommandComponent):
            for name in self.search_space:
                if name not in self.trial.inputs:
                    raise spec_error(f"search_space key '{name}' is not an input of the trial component "
                                     f"(inputs: {', '.join(sorted(self.trial.inputs)) or 'none'})", "search_space",
                                     name)
        return self

    def declared_outputs(self) -> set[str] | None:
        """Outputs of the trial component (the best trial's become the step's)."""
        return set(self.trial.outputs) if isinstance(self.trial, CommandComponent) else None

