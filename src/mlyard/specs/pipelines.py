"""Pipeline jobs and pipeline components (reference §3, §4.1).

Steps are inline command jobs (``type`` may be omitted), component steps (``component:`` a file,
an ``azureml:`` reference or an inline component), sweep steps (``trial:``) and pipeline-component
steps. ``check_graph`` enforces §3.3: every ``${{parent.inputs.x}}``, ``${{parent.outputs.z}}`` and
``${{parent.jobs.<step>.outputs.<n>}}`` names something that exists, the steps form no cycle, and no
step asks for ``compute: local``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, model_validator

from mlyard.core.errors import InvalidSpecError
from mlyard.specs.base import Documented, Label, Name, SpecModel, StrMap, Text, Version, show, spec_error, typed_union
from mlyard.specs.bindings import find_bindings
from mlyard.specs.commands import CommandLimits, Distribution, EnvironmentField, Resources, check_command
from mlyard.specs.components import CommandComponent, ComponentName, load_component_ref
from mlyard.specs.io import ComponentInputs, ComponentOutputs, DataInput, DataOutput, JobInputs, JobOutputs
from mlyard.specs.jobs import JobFields
from mlyard.specs.parallel import ParallelStep
from mlyard.specs.paths import LocalPath, check_exists
from mlyard.specs.sweep import SweepStep


class PipelineSettings(SpecModel):
    """``settings:`` of a pipeline job; unknown keys pass through as Azure does."""

    keep_unknown = True
    default_compute: Text | None = None
    default_datastore: Text | None = None
    continue_on_step_failure: bool | None = None
    force_rerun: bool | None = None


def _component_ref(value: Any, info: ValidationInfo) -> Any:
    return load_component_ref(value, info)


CommandComponentField = Annotated[
    typed_union({None: CommandComponent, "command": CommandComponent}, what="command component", scalar=str),
    BeforeValidator(_component_ref),
]


class CommandStep(SpecModel):
    """An inline command step, or a command component step (``component:``)."""

    type: Literal["command"] = "command"
    name: Name | None = None
    display_name: Label | None = None
    description: Text | None = None
    tags: dict[str, Any] | None = None
    component: CommandComponentField | None = None  # type: ignore[valid-type]
    command: Text | None = None
    code: LocalPath | None = None
    environment: EnvironmentField | None = None  # type: ignore[valid-type]
    environment_variables: StrMap = Field(default_factory=dict)
    distribution: Distribution | None = None  # type: ignore[valid-type]
    resources: Resources | None = None
    limits: CommandLimits | None = None
    compute: Text | None = None
    inputs: JobInputs = Field(default_factory=dict)
    outputs: JobOutputs = Field(default_factory=dict)
    services: dict[str, Any] | None = None
    identity: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _inline_or_component(self, info: ValidationInfo) -> CommandStep:
        if self.component is None:
            if self.command is None:
                raise spec_error("a step needs 'command' (an inline command step) or 'component' (a component "
                                 "file or azureml: reference)", "command")
            if self.environment is None:
                raise spec_error("an inline command step needs 'environment'", "environment")
            check_exists(self.code, info, what="code", subpath=("code",))
            check_command(self.command, self.inputs, self.outputs)
        elif self.command is not None:
            raise spec_error("give either 'command' or 'component', not both", "command")
        elif isinstance(self.component, CommandComponent):
            _check_step_binds_component(self.inputs, self.outputs, self.component)
        return self

    def declared_outputs(self) -> set[str] | None:
        """Output names downstream steps may use (None when the component is only a reference)."""
        if isinstance(self.component, CommandComponent):
            return set(self.component.outputs)
        if self.component is not None:
            return None
        return set(self.outputs)


def _check_step_binds_component(inputs: dict[str, Any], outputs: dict[str, Any], component: Any) -> None:
    for name in inputs:
        if name not in component.inputs:
            raise spec_error(f"'{name}' is not an input of the component (inputs: "
                             f"{', '.join(sorted(component.inputs)) or 'none'})", "inputs", name)
    for name in outputs:
        if name not in component.outputs:
            raise spec_error(f"'{name}' is not an output of the component (outputs: "
                             f"{', '.join(sorted(component.outputs)) or 'none'})", "outputs", name)
    missing = sorted(n for n in component.required_inputs() if inputs.get(n) is None)
    if missing:
        raise spec_error(f"required component input(s) {', '.join(missing)} not given; bind them under inputs:",
                         "inputs")


class PipelineComponent(Documented):
    """``type: pipeline`` component: declared inputs and outputs around a ``jobs`` graph."""

    type: Literal["pipeline"]
    name: ComponentName | None = None
    version: Version | None = None
    display_name: Label | None = None
    is_deterministic: bool = True
    inputs: ComponentInputs = Field(default_factory=dict)
    outputs: ComponentOutputs = Field(default_factory=dict)
    jobs: dict[str, PipelineStepField]  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _graph(self) -> PipelineComponent:
        check_graph(self.jobs, set(self.inputs), set(self.outputs))
        return self

    def required_inputs(self) -> set[str]:
        return {n for n, i in self.inputs.items() if not i.optional and i.default is None}


def _pipeline_component_ref(value: Any, info: ValidationInfo) -> Any:
    return load_component_ref(value, info)


PipelineComponentField = Annotated[
    typed_union({"pipeline": PipelineComponent}, what="pipeline component", scalar=str),
    BeforeValidator(_pipeline_component_ref),
]


class PipelineStep(SpecModel):
    """A step running a pipeline component."""

    type: Literal["pipeline"]
    name: Name | None = None
    display_name: Label | None = None
    description: Text | None = None
    component: PipelineComponentField  # type: ignore[valid-type]
    inputs: JobInputs = Field(default_factory=dict)
    outputs: JobOutputs = Field(default_factory=dict)
    compute: Text | None = None
    settings: PipelineSettings | None = None

    @model_validator(mode="after")
    def _binds(self) -> PipelineStep:
        if isinstance(self.component, PipelineComponent):
            _check_step_binds_component(self.inputs, self.outputs, self.component)
        return self

    def declared_outputs(self) -> set[str] | None:
        return set(self.component.outputs) if isinstance(self.component, PipelineComponent) else None


def _unsupported_step(value: Any) -> Any:
    raise spec_error(f"step type {show(value.get('type'))} is not supported; mlyard runs command, sweep, parallel "
                     "and pipeline steps", "type")


def _pick_step(value: Any) -> str:
    if isinstance(value, SpecModel):
        return type(value).__name__
    if not isinstance(value, dict):
        return "invalid"
    kind = value.get("type")
    if kind is None or kind == "command":
        return "CommandStep"
    if kind == "sweep":
        return "SweepStep"
    if kind == "pipeline":
        return "PipelineStep"
    if kind == "parallel":
        return "ParallelStep"
    return "unsupported"


def _invalid_step(value: Any) -> Any:
    raise spec_error(f"expected a step (a mapping with command/component/trial); got {show(value)}")


def _step_union() -> Any:
    from pydantic import Discriminator, Tag

    return Annotated[
        Annotated[CommandStep, Tag("CommandStep")]
        | Annotated[SweepStep, Tag("SweepStep")]
        | Annotated[PipelineStep, Tag("PipelineStep")]
        | Annotated[ParallelStep, Tag("ParallelStep")]
        | Annotated[Any, BeforeValidator(_unsupported_step), Tag("unsupported")]
        | Annotated[Any, BeforeValidator(_invalid_step), Tag("invalid")],
        Discriminator(_pick_step),
    ]


PipelineStepField = _step_union()
PipelineComponent.model_rebuild()


class PipelineJob(JobFields):
    """``type: pipeline``: a graph of steps under ``jobs``, or a wrapped pipeline ``component``."""

    type: Literal["pipeline"]
    jobs: dict[str, PipelineStepField] = Field(default_factory=dict)  # type: ignore[valid-type]
    settings: PipelineSettings = Field(default_factory=PipelineSettings)
    component: PipelineComponentField | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _graph(self) -> PipelineJob:
        if not self.jobs and self.component is None:
            raise spec_error("a pipeline job needs 'jobs' (its steps) or 'component' (a pipeline component)", "jobs")
        if self.jobs and self.component is not None:
            raise spec_error("give either 'jobs' or 'component', not both", "component")
        check_graph(self.jobs, set(self.inputs), set(self.outputs))
        return self


def _bindings_of(value: Any) -> list[str]:
    """The strings of a step input or output that may hold ``${{...}}`` expressions."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, DataInput | DataOutput) and value.path:
        return [value.path]
    return []


def check_graph(steps: dict[str, Any], parent_inputs: set[str], parent_outputs: set[str]) -> None:
    """Check the references between steps and the parent, and that the steps form no cycle."""
    edges: dict[str, set[str]] = {name: set() for name in steps}
    for name, step in steps.items():
        if isinstance(step.compute, str) and step.compute.strip().lower() in ("local", "azureml:local"):
            raise spec_error("compute: local is not allowed on a pipeline step; omit it (steps run on the "
                             "pipeline's default compute) or name a compute", "jobs", name, "compute")
        for section in ("inputs", "outputs"):
            for key, value in getattr(step, section).items():
                for text in _bindings_of(value):
                    where = ("jobs", name, section, key)
                    edges[name] |= _check_binding(text, where, name, steps, parent_inputs, parent_outputs,
                                                  section)
    _check_acyclic(edges)


def _check_binding(text: str, where: tuple[str, ...], step: str, steps: dict[str, Any], parent_inputs: set[str],
                   parent_outputs: set[str], section: str) -> set[str]:
    try:
        bindings = find_bindings(text)
    except InvalidSpecError as exc:
        raise spec_error(exc.issues[0].message, *where) from None
    depends: set[str] = set()
    for b in bindings:
        if b.kind == "parent_inputs":
            if b.name not in parent_inputs:
                raise spec_error(f"{b.text}: the pipeline has no input '{b.name}' (inputs: "
                                 f"{', '.join(sorted(parent_inputs)) or 'none'}); declare it under the "
                                 "pipeline's inputs:", *where)
        elif b.kind == "parent_outputs":
            if b.name not in parent_outputs:
                raise spec_error(f"{b.text}: the pipeline has no output '{b.name}' (outputs: "
                                 f"{', '.join(sorted(parent_outputs)) or 'none'}); declare it under the "
                                 "pipeline's outputs:", *where)
        elif b.kind in ("parent_job_outputs", "parent_job_inputs"):
            assert b.step is not None
            if b.step not in steps:
                raise spec_error(f"{b.text}: there is no step '{b.step}' in this pipeline (steps: "
                                 f"{', '.join(sorted(steps))})", *where)
            if b.step == step:
                raise spec_error(f"{b.text}: a step cannot bind to itself", *where)
            if b.kind == "parent_job_outputs":
                declared = steps[b.step].declared_outputs()
                if declared is not None and b.name not in declared:
                    raise spec_error(f"{b.text}: step '{b.step}' has no output '{b.name}' (outputs: "
                                     f"{', '.join(sorted(declared)) or 'none'})", *where)
            depends.add(b.step)
        elif b.kind not in ("name", "output_name", "default_datastore", "trigger_time"):
            raise spec_error(f"{b.text} cannot be used in a step's {section}; use ${{{{parent.inputs.<name>}}}}, "
                             "${{parent.outputs.<name>}} or ${{parent.jobs.<step>.outputs.<name>}}", *where)
    return depends


def _check_acyclic(edges: dict[str, set[str]]) -> None:
    """Depth-first search; a back edge is a cycle, reported with its steps in order."""
    state: dict[str, int] = {}
    trail: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        trail.append(node)
        for dep in sorted(edges[node]):
            if state.get(dep) == 1:
                cycle = trail[trail.index(dep):] + [dep]
                raise spec_error(f"the steps form a cycle: {' -> '.join(reversed(cycle))}; a step can only "
                                 "use outputs of steps that do not depend on it", "jobs", dep)
            if state.get(dep) is None:
                visit(dep)
        trail.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
