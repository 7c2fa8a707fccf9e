"""Azure ML CLI v2 YAML -> typed, validated specs (see docs/specs.md).

    loaded = load_spec("pipeline.yml", "job", overrides=["inputs.lr=0.1"])
    loaded.spec        # a pydantic model (PipelineJob here)
    loaded.warnings    # unknown keys, with file:line
"""

from mlyard.specs.loader import SPEC_KINDS, LoadedSpec, load_spec, load_spec_dict

__all__ = ["SPEC_KINDS", "LoadedSpec", "load_spec", "load_spec_dict"]
