"""Requests and answers of no-code MLflow deployments, read and written as Azure ML's and MLflow's servers do.

Azure's rules (its ``mlflow_score_script.py``): the body is a JSON object with ``input_data`` and an optional ``params``
object. ``input_data`` is a list of rows (a DataFrame named by the signature's columns when the signature has them),
a ``{columns, index, data}`` frame (all three keys required), or any other object as named tensors. The bodies
MLflow's own server reads (``dataframe_split``, ``dataframe_records``, ``inputs``, ``instances``) are accepted too and
answered in its shape, ``{"predictions": ...}``. The signature's types are applied by ``PyFuncModel.predict``; its
refusal is a :class:`PayloadError` like any other malformed request (see :func:`schema_error`).

This module is imported by the worker once the model is loading, never at start: it needs numpy and pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from mlyard.serving import answers

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "inputs", "instances")
_SPLIT_KEYS = ("columns", "index", "data")
_NUMPY_KINDS = frozenset("biuf")  # dtypes orjson writes straight from the array's memory


class PayloadError(ValueError):
    """A request the model cannot be asked with; the message names the key, column or type at fault (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class ModelInput:
    """A parsed request: what goes to ``predict`` and how the answer is shaped.

    Attributes:
        data: a DataFrame, an ndarray or a dict of ndarrays.
        params: the request's ``params`` when the model's signature declares params, else None.
        mlflow_shape: True when the request used MLflow's keys; the answer is then ``{"predictions": ...}``.
    """

    data: Any
    params: dict[str, Any] | None
    mlflow_shape: bool


@dataclass(frozen=True, slots=True)
class Signature:
    """What the request parser needs from a model's signature, read once at load.

    Attributes:
        columns: the input column names of a ColSpec signature, else None (tensors or no signature).
        schema: the MLflow input schema (or None), for MLflow's own parsers.
        has_params: whether the signature declares params.
    """

    columns: tuple[str, ...] | None
    schema: Any
    has_params: bool

    @classmethod
    def of(cls, model: Any) -> Signature:
        """Read the signature of a loaded ``PyFuncModel``."""
        schema = model.metadata.get_input_schema()
        columns = None
        if schema is not None and not schema.is_tensor_spec() and schema.has_input_names():
            columns = tuple(schema.input_names())
        return cls(columns=columns, schema=schema, has_params=model.metadata.get_params_schema() is not None)


def loads(body: bytes) -> Any:
    """Decode a JSON body, refusing what is not JSON with the decoder's reason."""
    try:
        return answers.loads(body)
    except ValueError as exc:
        raise PayloadError(f"the request body is not valid JSON: {exc}") from None


def parse_request(body: bytes, signature: Signature) -> ModelInput:
    """Turn a ``/score`` body into the input of ``predict``.

    Raises:
        PayloadError: the body is not an object with ``input_data`` (or one of MLflow's keys), or its data cannot
            form the model's input; the message names the key and what was expected.
    """
    request = loads(body)
    if not isinstance(request, dict):
        raise PayloadError(f"the request body must be a JSON object with an 'input_data' key, not {_kind(request)}")
    params = _params(request, signature)
    if "input_data" in request:
        return ModelInput(_input_data(request["input_data"], signature), params, mlflow_shape=False)
    present = [key for key in MLFLOW_KEYS if key in request]
    if len(present) == 1:
        return ModelInput(_mlflow_input(request, present[0], signature), params, mlflow_shape=True)
    if present:
        raise PayloadError(f"the request body holds {', '.join(present)}: give exactly one of them")
    keys = ", ".join(repr(key) for key in request) or "none"
    raise PayloadError(f"the request body must hold an 'input_data' key (or one of MLflow's {', '.join(MLFLOW_KEYS)});"
                       f" its keys: {keys}")


def _params(request: dict[str, Any], signature: Signature) -> dict[str, Any] | None:
    params = request.get("params")
    if params is None:
        return None
    if not isinstance(params, dict):
        raise PayloadError(f"'params' must be a JSON object of parameter names and values, not {_kind(params)}")
    # Azure passes params only when the signature declares them; otherwise they are ignored, not refused.
    return params if signature.has_params else None


def _input_data(value: Any, signature: Signature) -> Any:
    if isinstance(value, list):
        return _rows(value, signature)
    if isinstance(value, dict):
        present = [key for key in _SPLIT_KEYS if key in value]
        if present:
            return _split_frame(value, present)
        try:
            return {name: np.asarray(tensor) for name, tensor in value.items()}
        except ValueError as exc:
            raise PayloadError(f"input_data as named tensors: {exc}") from None
    raise PayloadError("'input_data' must be a list of rows, an object with 'columns', 'index' and 'data', "
                       f"or an object of named tensors, not {_kind(value)}")


def _rows(rows: list[Any], signature: Signature) -> Any:
    columns = signature.columns
    if columns is None:
        try:
            return np.asarray(rows)
        except ValueError as exc:
            raise PayloadError(f"input_data is not a rectangular list of rows: {exc}") from None
    width = len(columns)
    for number, row in enumerate(rows):
        if not isinstance(row, list):
            raise PayloadError(f"input_data[{number}] must be a list of {width} values ({', '.join(columns)}), "
                               f"not {_kind(row)}")
        if len(row) != width:
            raise PayloadError(f"input_data[{number}] has {len(row)} values; the model's signature expects {width}: "
                               f"{', '.join(columns)}")
    return pd.DataFrame(rows, columns=list(columns))


def _split_frame(value: dict[str, Any], present: list[str]) -> pd.DataFrame:
    missing = [key for key in _SPLIT_KEYS if key not in value]
    if missing:
        raise PayloadError(f"input_data has {', '.join(present)} but no {', '.join(missing)}: a split frame needs "
                           "'columns', 'index' and 'data'")
    columns, index, data = value["columns"], value["index"], value["data"]
    for key, item in (("columns", columns), ("index", index), ("data", data)):
        if not isinstance(item, list):
            raise PayloadError(f"input_data.{key} must be a list, not {_kind(item)}")
    if len(index) != len(data):
        raise PayloadError(f"input_data.index has {len(index)} entries but input_data.data has {len(data)} rows")
    for number, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            got = f"{len(row)} values" if isinstance(row, list) else _kind(row)
            raise PayloadError(f"input_data.data[{number}] has {got}; input_data.columns names {len(columns)}: "
                               f"{', '.join(map(str, columns))}")
    try:
        return pd.DataFrame(data, columns=columns, index=index)
    except (ValueError, TypeError) as exc:
        raise PayloadError(f"input_data is not a valid split frame: {exc}") from None


def _mlflow_input(request: dict[str, Any], key: str, signature: Signature) -> Any:
    from mlflow.exceptions import MlflowException
    from mlflow.utils.proto_json_utils import dataframe_from_parsed_json, parse_tf_serving_input

    try:
        if key in ("inputs", "instances"):
            return parse_tf_serving_input(  # type: ignore[no-untyped-call]
                {key: request[key]}, schema=signature.schema)
        return dataframe_from_parsed_json(  # type: ignore[no-untyped-call]
            request[key], pandas_orient=key[len("dataframe_"):], schema=signature.schema)
    except MlflowException as exc:
        raise PayloadError(f"{key}: {exc.message}") from None
    except (ValueError, TypeError) as exc:
        raise PayloadError(f"{key} cannot be read as the model's input: {exc}") from None


def schema_error(exc: Exception) -> str | None:
    """The 400 message for an exception ``predict`` raised, or None when it is the model's own failure (500).

    MLflow refuses input that does not match the signature (or params that do not match the params schema) with an
    ``MlflowException`` whose code is INVALID_PARAMETER_VALUE; its message repeats the whole input, which is cut away.
    """
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException) or exc.error_code != "INVALID_PARAMETER_VALUE":
        return None
    message = exc.message
    if message.startswith("Failed to enforce schema") and ". Error: " in message:
        message = message.split(". Error: ", 1)[1]
    return f"the input does not match the model's signature: {message}"


def to_jsonable(prediction: Any) -> Any:
    """Azure's answer shape (MLflow's ``_get_jsonable_obj`` with records orientation), leaving numeric arrays to orjson.

    ndarray -> list, DataFrame -> list of row objects, Series -> list of row objects (as MLflow does), dict -> dict
    with each value converted the same way.
    """
    if isinstance(prediction, np.ndarray):
        if answers.HAS_ORJSON and prediction.dtype.kind in _NUMPY_KINDS and prediction.flags.c_contiguous:
            return prediction
        return prediction.tolist()
    if isinstance(prediction, pd.DataFrame):
        return prediction.to_dict(orient="records")
    if isinstance(prediction, pd.Series):
        return pd.DataFrame(prediction).to_dict(orient="records")
    if isinstance(prediction, dict):
        return {key: to_jsonable(value) for key, value in prediction.items()}
    return prediction


def answer(prediction: Any, request: ModelInput) -> bytes:
    """The JSON body answering ``request`` with ``prediction``."""
    result = to_jsonable(prediction)
    return answers.dumps({"predictions": result} if request.mlflow_shape else result)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
