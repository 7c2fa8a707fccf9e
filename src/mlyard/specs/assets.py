"""Data, environment and model specs (reference §5).

An environment's ``conda_file`` is captured as content: the loader reads the file (relative to the
YAML file's folder) and keeps its parsed mapping, so the registered version does not depend on a
file that can change later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from mlyard.specs.base import Documented, Name, SpecModel, Text, Version, load_context, show, spec_error
from mlyard.specs.paths import LocalPath, check_exists, is_local
from mlyard.specs.references import ASSET_NAME_RE
from mlyard.specs.source import read_yaml_file


def _check_name(value: str) -> str:
    if not ASSET_NAME_RE.match(value):
        raise spec_error(f"{show(value)} is not a valid name: use letters, digits, '_', '-' and '.', "
                         "starting with a letter, digit or '_' (at most 255 characters)")
    return value


AssetName = Annotated[Text, AfterValidator(_check_name)]


class Data(Documented):
    """A data asset: ``uri_file``, ``uri_folder`` (default) or ``mltable``."""

    name: AssetName
    version: Version | None = None
    type: Annotated[Literal["uri_file", "uri_folder", "mltable"], BeforeValidator(
        lambda v: v.lower() if isinstance(v, str) else v)] = "uri_folder"
    path: LocalPath

    @model_validator(mode="after")
    def _path_matches_type(self, info: ValidationInfo) -> Data:
        expect = {"uri_file": "file", "uri_folder": "dir", "mltable": "dir"}[self.type]
        check_exists(self.path, info, what="path", expect=expect, subpath=("path",))  # type: ignore[arg-type]
        if self.type == "mltable" and load_context(info).check_paths and is_local(self.path):
            if not (Path(self.path) / "MLTable").is_file():
                raise spec_error(f"an mltable data asset's path must be a folder holding an 'MLTable' file; "
                                 f"'{self.path}' has none", "path")
        return self


class BuildContext(SpecModel):
    path: LocalPath
    dockerfile_path: Text = "Dockerfile"

    @field_validator("path")
    @classmethod
    def _exists(cls, value: str, info: ValidationInfo) -> str:
        check_exists(value, info, what="build context", expect="dir")
        return value


class Route(SpecModel):
    port: int = Field(ge=1, le=65535)
    path: Text


class InferenceConfig(SpecModel):
    liveness_route: Route
    readiness_route: Route
    scoring_route: Route


def _capture_conda(value: Any, info: ValidationInfo) -> Any:
    """A conda file path becomes its parsed content (relative to the YAML file's folder)."""
    if value is None or isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise spec_error(f"expected a path to a conda YAML file, or its content as a mapping; got {show(value)}")
    ctx = load_context(info)
    if ctx.base_path is None:
        raise spec_error("conda_file must be sent as content (a mapping); only a YAML file given on the command "
                         "line may name a conda file by path")
    from mlyard.specs.paths import resolve_local_path

    path = Path(resolve_local_path(value, ctx.base_path))
    if not path.is_file():
        raise spec_error(f"conda file '{path}' does not exist (relative paths start from the YAML file's folder)")
    content, _ = read_yaml_file(path)
    if not isinstance(content, dict):
        raise spec_error(f"conda file '{path}' must hold a mapping (name, channels, dependencies); got {show(content)}")
    return content


class EnvironmentBody(SpecModel):
    """What an environment is made of; shared by registered and inline environments."""

    image: Text | None = None
    conda_file: Annotated[dict[str, Any] | None, BeforeValidator(_capture_conda)] = None
    build: BuildContext | None = None
    os_type: Annotated[Literal["linux", "windows"], BeforeValidator(
        lambda v: v.lower() if isinstance(v, str) else v)] = "linux"
    inference_config: InferenceConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_a_conda_file(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("channels", "dependencies"):
                if key in data:
                    raise spec_error(f"'{key}' belongs in a conda file, not in an environment: put the conda "
                                     "content in its own file and name it with conda_file:", key)
        return data

    @model_validator(mode="after")
    def _image_or_build(self) -> EnvironmentBody:
        if self.image is None and self.build is None:
            raise spec_error("an environment needs 'image' or 'build' (a Docker build context); "
                             "add image: with conda_file:, or build: {path: ./docker-context}", "image")
        if self.image is not None and self.build is not None:
            raise spec_error("give either 'image' or 'build', not both", "build")
        if self.conda_file is not None and self.image is None:
            raise spec_error("conda_file needs an 'image' to build on (with 'build', install packages in the "
                             "Dockerfile instead)", "conda_file")
        return self


class Environment(Documented, EnvironmentBody):
    """A registered environment: image + conda file, or a Docker build context."""

    name: AssetName
    version: Version | None = None


class InlineEnvironment(Documented, EnvironmentBody):
    """An anonymous environment inside a job, component or deployment (``name``/``version`` tolerated)."""

    name: Name | None = None
    version: Version | None = None


ModelType = Literal["custom_model", "mlflow_model", "triton_model"]


class Model(Documented):
    """A model: ``custom_model`` (default), ``mlflow_model`` (a folder holding MLmodel), ``triton_model``."""

    name: AssetName
    version: Version | None = None
    type: Annotated[ModelType, BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)] = "custom_model"
    path: LocalPath
    flavors: dict[str, Any] | None = None
    stage: Text | None = None

    @model_validator(mode="after")
    def _mlflow_layout(self, info: ValidationInfo) -> Model:
        check_exists(self.path, info, what="path", subpath=("path",))
        if self.type == "mlflow_model" and load_context(info).check_paths and is_local(self.path):
            if not (Path(self.path) / "MLmodel").is_file():
                raise spec_error(f"an mlflow_model path must be a folder holding an 'MLmodel' file; "
                                 f"'{self.path}' has none (register MLflow models saved with mlflow.save_model, "
                                 "or use type: custom_model)", "path")
        return self


class InlineModel(Documented):
    """An anonymous model inside a deployment."""

    name: Name | None = None
    version: Version | None = None
    type: Annotated[ModelType, BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)] = "custom_model"
    path: LocalPath

    @field_validator("path")
    @classmethod
    def _exists(cls, value: str, info: ValidationInfo) -> str:
        check_exists(value, info, what="model path")
        return value

