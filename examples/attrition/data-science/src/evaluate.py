"""
Evaluates the trained model on the test dataset and compares it with every registered version.

Saves predictions, a score report and the deploy flag: 1 when the new model scores at least as well (F1 on the
test set) as the best registered version, or when none is registered yet; 0 otherwise.
"""

import argparse
import json
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import pandas as pd
from mlflow.tracking import MlflowClient
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

TARGET_COL = "Attrition"


def parse_args():
    """Parse input arguments"""

    parser = argparse.ArgumentParser("evaluate")
    parser.add_argument("--model_name", type=str, help="Name of registered model")
    parser.add_argument("--model_input", type=str, help="Path of input model (an MLflow model folder)")
    parser.add_argument("--test_data", type=str, help="Path to test dataset (a folder)")
    parser.add_argument("--evaluation_output", type=str, help="Path of eval results (a folder)")
    parser.add_argument("--runner", type=str, help="Local or Cloud Runner", default="CloudRunner")

    args = parser.parse_args()

    return args


def read_folder(folder, name):
    """The CSV a previous step wrote into a folder output."""
    path = Path(folder) / name
    return pd.read_csv(path if path.exists() else sorted(Path(folder).glob("*.csv"))[0])


def main(args):
    """Read trained model and test dataset, evaluate model and save result"""

    Path(args.evaluation_output).mkdir(parents=True, exist_ok=True)

    test_data = read_folder(args.test_data, "test.csv")
    y_test = (test_data[TARGET_COL] == "Yes").astype(int)
    X_test = test_data.drop(columns=[TARGET_COL])

    model = mlflow.sklearn.load_model(args.model_input)

    # ---------------- Model Evaluation ---------------- #
    yhat_test, score = model_evaluation(X_test, y_test, model, args.evaluation_output)

    # ----------------- Model Promotion ---------------- #
    if args.runner == "CloudRunner":
        deploy_flag = model_promotion(args.model_name, args.evaluation_output, X_test, y_test, score)
    else:
        print("LocalRunner: no registry to compare with, the model may be deployed")
        deploy_flag = 1
        write_deploy_flag(args.evaluation_output, deploy_flag)
    return deploy_flag


def model_evaluation(X_test, y_test, model, evaluation_output):
    """Score the test set; the F1 score of the leavers is the score models are compared on."""

    yhat_test = model.predict(X_test)
    proba_test = model.predict_proba(X_test)[:, 1]

    # Save the output data with feature columns, predicted and actual label in a csv file
    output_data = X_test.copy()
    output_data["real_label"] = y_test
    output_data["predicted_label"] = yhat_test
    output_data["predicted_probability"] = proba_test
    output_data.to_csv(Path(evaluation_output) / "predictions.csv", index=False)

    metrics = {
        "test_accuracy": accuracy_score(y_test, yhat_test),
        "test_precision": precision_score(y_test, yhat_test, zero_division=0),
        "test_recall": recall_score(y_test, yhat_test, zero_division=0),
        "test_f1": f1_score(y_test, yhat_test, zero_division=0),
        "test_auc": roc_auc_score(y_test, proba_test),
    }

    # Print score report to a text file
    report = [f"Scored with the following model:\n{model}\n"]
    report += [f"{name}: {value:.4f}" for name, value in metrics.items()]
    (Path(evaluation_output) / "score.txt").write_text("\n".join(report) + "\n")

    mlflow.log_metrics(metrics)

    return yhat_test, metrics["test_f1"]


def model_promotion(model_name, evaluation_output, X_test, y_test, score):
    """Compare with every registered version of the model on the same test set; write the deploy flag."""

    scores = {}

    client = MlflowClient()

    for model_run in client.search_model_versions(f"name='{model_name}'"):
        model_version = model_run.version
        mdl = mlflow.pyfunc.load_model(model_uri=f"models:/{model_name}/{model_version}")
        predictions = mdl.predict(X_test)
        scores[f"{model_name}:{model_version}"] = f1_score(y_test, predictions, zero_division=0)

    if scores:
        champion = max(scores, key=scores.get)
        deploy_flag = 1 if score >= scores[champion] else 0
        print(f"Comparison: current model f1={score:.4f}, champion {champion} f1={scores[champion]:.4f}")
        mlflow.log_metric("champion_f1", scores[champion])
        mlflow.set_tag("champion", champion)
    else:
        print(f"Comparison: no registered version of {model_name}, current model f1={score:.4f}")
        deploy_flag = 1
    print(f"Deploy flag: {deploy_flag}")

    write_deploy_flag(evaluation_output, deploy_flag)

    # add current model score
    scores["current model"] = score
    (Path(evaluation_output) / "perf_comparison.json").write_text(json.dumps({"f1": scores}, indent=2))
    mlflow.log_dict({"f1": scores}, "perf_comparison.json")

    return deploy_flag


def write_deploy_flag(evaluation_output, deploy_flag):
    with open(Path(evaluation_output) / "deploy_flag", "w") as outfile:
        outfile.write(f"{int(deploy_flag)}")
    mlflow.log_metric("deploy_flag", int(deploy_flag))


if __name__ == "__main__":

    args = parse_args()

    lines = [
        f"Model name: {args.model_name}",
        f"Model path: {args.model_input}",
        f"Test data path: {args.test_data}",
        f"Evaluation output path: {args.evaluation_output}",
    ]

    for line in lines:
        print(line)

    main(args)
