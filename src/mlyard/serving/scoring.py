"""The host of a scoring-script deployment (Azure's §6.3): ``init()`` once, ``run(raw_data)`` per request.

The script is imported from the code folder, which is on ``sys.path`` and the working directory, as Azure's inference
server does. ``run`` gets the request body as ``str``; what it returns is written as JSON (a returned ``str`` arrives
as a JSON string literal, as on Azure). When ``run`` carries ``inference_schema`` decorators (and that package is
installed), the body is read as a JSON object whose keys are ``run``'s arguments, the decorators convert them, and
``/swagger.json`` describes them.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlyard.serving import answers
from mlyard.serving.answers import Answer

log = logging.getLogger("mlyard.serving.worker")


class ScoringScriptError(Exception):
    """The scoring script cannot be served: missing, or without a ``run`` function."""


class ScoringScriptHost:
    """Imports a scoring script, calls its ``init()`` and answers requests with its ``run()``.

    Args:
        code: the deployment's ``code_configuration.code`` folder.
        script: ``code_configuration.scoring_script``, relative to ``code``.
    """

    def __init__(self, code: Path, script: str) -> None:
        self.code = code.resolve()
        self.script = script
        self.swagger: bytes | None = None
        self._run: Callable[..., Any] | None = None
        self._schema_inputs: bool = False

    def load(self) -> None:
        """Import the script and run its ``init()``."""
        path = self.code / self.script
        if not path.is_file():
            raise ScoringScriptError(f"scoring_script {self.script} not found in the code folder {self.code}")
        if str(self.code) not in sys.path:
            sys.path.insert(0, str(self.code))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ScoringScriptError(f"scoring_script {self.script} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        run = getattr(module, "run", None)
        if not callable(run):
            raise ScoringScriptError(f"scoring_script {self.script} has no run(raw_data) function")
        if "mlflow" in sys.modules and not os.environ.get("MLFLOW_TRACKING_URI"):
            # The script loads an MLflow model in init(): loading enables tracing, whose default store is an
            # mlflow.db written into the working directory, the deployment's uploaded code folder.
            import mlflow.tracing

            mlflow.tracing.disable()
        init = getattr(module, "init", None)
        if callable(init):
            init()
        self._run = run
        if _schema_decorated(run):
            from inference_schema.schema_util import get_input_schema

            self._schema_inputs = bool(get_input_schema(run).get("properties"))
            self.swagger = _swagger(run, self.script)

    def score(self, body: bytes, request_id: str | None = None) -> Answer:
        """Answer one ``/score`` body with ``run``'s return value."""
        assert self._run is not None, "score() before load()"
        try:
            arguments = self._arguments(body)
        except ValueError as exc:
            return answers.invalid_request(str(exc))
        try:
            result = self._run(**arguments) if self._schema_inputs else self._run(arguments["raw_data"])
        except Exception as exc:
            if self._schema_inputs and not _entered(self._run, exc):
                # the decorators could not convert the request to run()'s declared types: the caller's mistake
                log.info("inference_schema refused the request: %s", exc)
                return answers.invalid_request(
                    f"the request does not fit run()'s input schema (see /swagger.json): {exc or type(exc).__name__}")
            log.error("run() failed", exc_info=exc)
            return answers.scoring_failed(str(exc) or type(exc).__name__)
        try:
            return answers.ok(result)
        except (TypeError, ValueError) as exc:  # ValueError: NaN or infinity without orjson
            log.error("run() returned a value that cannot be written as JSON", exc_info=exc)
            return answers.scoring_failed(f"run() returned a value that cannot be written as JSON: {exc}")

    def _arguments(self, body: bytes) -> dict[str, Any]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("the request body is not UTF-8 text") from None
        if not self._schema_inputs:
            return {"raw_data": text}
        try:
            payload = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise ValueError("the request body must be a JSON object whose keys are run()'s inputs")
        assert self._run is not None
        try:
            inspect.signature(self._run).bind(**payload)
        except TypeError as exc:
            names = ", ".join(inspect.signature(self._run).parameters)
            raise ValueError(f"the request's keys do not match run({names}): {exc}") from None
        return payload


def _entered(run: Callable[..., Any], exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside the user's own ``run`` (under its decorators), by its traceback."""
    inner = inspect.unwrap(run)
    code = getattr(inner, "__code__", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return True
        tb = tb.tb_next
    return False


def _schema_decorated(run: Callable[..., Any]) -> bool:
    try:
        from inference_schema.schema_util import is_schema_decorated
    except ImportError:
        return False
    return bool(is_schema_decorated(run))


def _swagger(run: Callable[..., Any], script: str) -> bytes:
    """A Swagger 2.0 document of ``/score`` from the decorators' schemas, as Azure's inference server serves."""
    from inference_schema.schema_util import get_input_schema, get_output_schema

    document = {
        "swagger": "2.0",
        "info": {"title": script, "version": "1.0"},
        "schemes": ["http"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "paths": {"/score": {"post": {
            "parameters": [{"name": "Inputs", "in": "body", "required": True, "schema": get_input_schema(run)}],
            "responses": {"200": {"description": "the scoring result", "schema": get_output_schema(run)}},
        }}},
    }
    return answers.dumps(document)
