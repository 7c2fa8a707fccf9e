"""Online scoring script (corpus support file)."""

import json
import os

model = None


def init():
    global model
    model = os.path.join(os.environ["AZUREML_MODEL_DIR"], "sklearn_regression_model.pkl")


def run(raw_data):
    data = json.loads(raw_data)["data"]
    return [len(row) for row in data]
