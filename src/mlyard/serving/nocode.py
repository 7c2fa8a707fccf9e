"""The host of a no-code MLflow deployment (Azure's §6.4): the model loaded once, ``predict`` per request."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

from mlyard.serving import answers
from mlyard.serving.answers import Answer
from mlyard.serving.collector import DataCollector
from mlyard.serving.payloads import ModelInput, PayloadError, Signature, answer, parse_request, schema_error

log = logging.getLogger("mlyard.serving.worker")


class MlflowModelHost:
    """Loads an MLflow model folder and answers ``/score`` bodies with its predictions.

    Args:
        model_path: the folder holding ``MLmodel`` (``$AZUREML_MODEL_DIR/$MLFLOW_MODEL_FOLDER``).
        collector: where answered requests' inputs and outputs are collected, when the deployment asks for it.
    """

    swagger: bytes | None = None

    def __init__(self, model_path: Path, collector: DataCollector | None = None) -> None:
        self.model_path = model_path
        self.collector = collector
        self.model: Any = None
        self.signature = Signature(columns=None, schema=None, has_params=False)

    def load(self) -> None:
        """Load the model (in the predict thread, while the worker already answers liveness)."""
        if not (self.model_path / "MLmodel").is_file():
            raise FileNotFoundError(f"no MLflow model at {self.model_path}: the folder has no MLmodel file "
                                    "(check the deployment's model and MLFLOW_MODEL_FOLDER)")
        import mlflow.pyfunc
        import mlflow.tracing

        if not os.environ.get("MLFLOW_TRACKING_URI"):
            # Loading enables tracing, whose default store is an mlflow.db in the working directory.
            mlflow.tracing.disable()
        self.model = mlflow.pyfunc.load_model(str(self.model_path))
        self.signature = Signature.of(self.model)

    def parse(self, body: bytes) -> ModelInput:
        """Parse a request body (raises :class:`PayloadError`)."""
        return parse_request(body, self.signature)

    def predict(self, request: ModelInput) -> Any:
        """Predict; a signature mismatch raises :class:`PayloadError`, any other failure propagates."""
        try:
            if request.params is not None:
                return self.model.predict(request.data, params=request.params)
            return self.model.predict(request.data)
        except Exception as exc:
            message = schema_error(exc)
            if message is None:
                raise
            raise PayloadError(message) from None

    def score(self, body: bytes, request_id: str | None = None) -> Answer:
        """Answer one ``/score`` body (``request_id``: the caller's ``x-request-id``, the collected correlation id)."""
        try:
            request = self.parse(body)
            prediction = self.predict(request)
            result = Answer(200, answer(prediction, request))
        except PayloadError as exc:
            return answers.invalid_request(str(exc))
        except Exception as exc:
            return failure(exc)
        if self.collector is not None:
            self.record(request, prediction, body, result.body, request_id)
        return result

    def record(self, request: ModelInput, prediction: Any, body: bytes, answer_body: bytes,
               request_id: str | None) -> None:
        """Hand an answered request to the data collector (Azure's no-code script collects the same frames)."""
        collector = self.collector
        if collector is None or not collector.sampled():
            return
        correlation_id = request_id or str(uuid.uuid4())
        if collector.wants("model_inputs") and (inputs := _frame(request.data)) is not None:
            collector.collect("model_inputs", inputs, correlation_id)
        if collector.wants("model_outputs") and (outputs := _frame(prediction)) is not None:
            collector.collect("model_outputs", outputs, correlation_id)
        collector.collect("request", body, correlation_id, {"path": "/score", "method": "POST"})
        collector.collect("response", answer_body, correlation_id, {"path": "/score", "method": "POST"})


def _frame(data: Any) -> Any:
    """``data`` as a DataFrame, the only kind Azure's collector logs, or None (named tensors, 3-D arrays)."""
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped]

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame()
    if isinstance(data, np.ndarray) and data.ndim in (1, 2):
        frame = pd.DataFrame(data)
        frame.columns = [str(column) for column in frame.columns]
        return frame
    return None


def failure(exc: Exception) -> Answer:
    """The 500 answer for a model that raised, its traceback written to the worker's log."""
    log.error("predict failed", exc_info=exc)
    return answers.scoring_failed(str(exc) or type(exc).__name__)
