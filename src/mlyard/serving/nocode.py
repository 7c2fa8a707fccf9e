"""The host of a no-code MLflow deployment (Azure's §6.4): the model loaded once, ``predict`` per request."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from mlyard.serving import answers
from mlyard.serving.answers import Answer
from mlyard.serving.payloads import ModelInput, PayloadError, Signature, answer, parse_request, schema_error

log = logging.getLogger("mlyard.serving.worker")


class MlflowModelHost:
    """Loads an MLflow model folder and answers ``/score`` bodies with its predictions.

    Args:
        model_path: the folder holding ``MLmodel`` (``$AZUREML_MODEL_DIR/$MLFLOW_MODEL_FOLDER``).
    """

    swagger: bytes | None = None

    def __init__(self, model_path: Path) -> None:
        self.model_path = model_path
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

    def score(self, body: bytes) -> Answer:
        """Answer one ``/score`` body."""
        try:
            request = self.parse(body)
            return Answer(200, answer(self.predict(request), request))
        except PayloadError as exc:
            return answers.invalid_request(str(exc))
        except Exception as exc:
            return failure(exc)


def failure(exc: Exception) -> Answer:
    """The 500 answer for a model that raised, its traceback written to the worker's log."""
    log.error("predict failed", exc_info=exc)
    return answers.scoring_failed(str(exc) or type(exc).__name__)
