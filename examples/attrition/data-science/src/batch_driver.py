"""
Batch driver of the attrition-driver deployment, written the way Azure's batch examples write them.

Azure ML's batch runtime (and mlyard's batch engine) calls init() once per worker process and run(mini_batch)
once per mini-batch, with the absolute paths of that mini-batch's files. What run() returns is appended to the
deployment's output_file_name, one line per row, without a header: here, file, row and the 0/1 prediction.
"""

import glob
import logging
import os

import mlflow
import pandas as pd


def init():
    """Load the MLflow model once; AZUREML_MODEL_DIR holds the registered model's one folder."""
    global model

    model_path = glob.glob(os.path.join(os.environ["AZUREML_MODEL_DIR"], "*/"))[0]
    model = mlflow.pyfunc.load_model(model_path)
    logging.info("Loaded the model from %s", model_path)


def run(mini_batch):
    """Score every row of every CSV file in the mini-batch."""
    results = []
    for path in mini_batch:
        frame = pd.read_csv(path)
        predictions = model.predict(frame)
        results.append(pd.DataFrame({"file": os.path.basename(path), "row": range(len(frame)),
                                     "prediction": predictions}))
        logging.info("Scored %d rows of %s", len(frame), os.path.basename(path))
    return pd.concat(results)
