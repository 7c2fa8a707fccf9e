"""
Scoring script of the green online deployment: the registered attrition model behind init() and run().

Azure ML's inference server (and mlyard's worker) calls init() once per worker process and run(raw_data) once per
request, with the request body as a string. The body takes Azure's shape, {"input_data": ...}: either a split frame
{"columns": [...], "index": [...], "data": [[...], ...]} or a list of rows in the columns' order
(data/attrition-request.json and data/attrition-request-rows.json). The answer is a list, one 0/1 per row
(1: the employee is predicted to leave).
"""

import json
import logging
import os

import mlflow
import pandas as pd

MODEL_FOLDER = "attrition-model"  # the folder register.py logged the model under, kept under AZUREML_MODEL_DIR


def init():
    """Load the MLflow model once; AZUREML_MODEL_DIR holds the registered model's folder."""
    global model, columns

    model_path = os.path.join(os.environ["AZUREML_MODEL_DIR"], MODEL_FOLDER)
    model = mlflow.pyfunc.load_model(model_path)
    # the columns the model was trained on, in order: a list of rows is read in this order
    columns = model.metadata.get_input_schema().input_names()
    logging.info("Loaded %s (%d input columns)", model_path, len(columns))


def run(raw_data):
    """Predict every row of the request; returns a list of 0/1."""
    input_data = json.loads(raw_data)["input_data"]
    if isinstance(input_data, dict):
        frame = pd.DataFrame(input_data["data"], columns=input_data["columns"], index=input_data.get("index"))
    else:
        frame = pd.DataFrame(input_data, columns=columns)
    predictions = model.predict(frame)
    logging.info("Scored %d rows", len(frame))
    return [int(p) for p in predictions]
