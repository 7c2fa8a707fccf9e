"""Batch scoring driver (corpus support file, shaped like mlops-project-template's)."""

import glob
import os

import mlflow
import pandas as pd

model = None


def init():
    global model
    model_dir = glob.glob(os.environ["AZUREML_MODEL_DIR"] + "/*/")[0]
    model = mlflow.pyfunc.load_model(model_dir)


def run(mini_batch):
    results = []
    for file_path in mini_batch:
        data = pd.read_csv(file_path)
        predictions = model.predict(data)
        results.extend(f"{os.path.basename(file_path)},{p}" for p in predictions)
    return results
