"""
Registers the trained model if the deploy flag is 1.

Logs the model folder to the job's run and registers it from there (runs:/<run id>/<model name>), so the model
version keeps its lineage to the run on Azure ML and on mlyard alike.
"""

import argparse
import json
import os
from pathlib import Path

import mlflow
import mlflow.sklearn
from mlflow.models import Model


def parse_args():
    """Parse input arguments"""

    parser = argparse.ArgumentParser("register")
    parser.add_argument("--model_name", type=str, help="Name under which model will be registered")
    parser.add_argument("--model_path", type=str, help="Model directory")
    parser.add_argument("--evaluation_output", type=str, help="Path of eval results")
    parser.add_argument("--model_info_output_path", type=str, help="Path to write model info JSON")
    args, _ = parser.parse_known_args()
    print(f"Arguments: {args}")

    return args


def main(args):
    """Loads model, registers it if deploy flag is 1"""

    with open(Path(args.evaluation_output) / "deploy_flag", "rb") as infile:
        deploy_flag = int(infile.read())

    mlflow.log_metric("deploy_flag", int(deploy_flag))

    if deploy_flag == 1:

        print("Registering ", args.model_name)

        # load model
        model = mlflow.sklearn.load_model(args.model_path)

        # log model using mlflow, with the pinned requirements and the signature train.py saved with it
        # (no-code deployment needs the signature to name the columns of a request sent as a list of rows)
        requirements = Path(args.model_path) / "requirements.txt"
        mlflow.sklearn.log_model(
            model,
            name=args.model_name,
            signature=Model.load(args.model_path).signature,
            pip_requirements=str(requirements) if requirements.exists() else None,
        )

        # register logged model using mlflow
        run_id = mlflow.active_run().info.run_id
        model_uri = f"runs:/{run_id}/{args.model_name}"
        mlflow_model = mlflow.register_model(model_uri, args.model_name)
        model_version = mlflow_model.version

        # write model info
        print("Writing JSON")
        model_info = {"id": f"{args.model_name}:{model_version}", "name": args.model_name, "version": model_version}
        os.makedirs(args.model_info_output_path, exist_ok=True)
        output_path = os.path.join(args.model_info_output_path, "model_info.json")
        with open(output_path, "w") as of:
            json.dump(model_info, fp=of)

    else:
        print("Model will not be registered!")


if __name__ == "__main__":

    mlflow.start_run()

    # ---------- Parse Arguments ----------- #
    args = parse_args()

    lines = [
        f"Model name: {args.model_name}",
        f"Model path: {args.model_path}",
        f"Evaluation output path: {args.evaluation_output}",
    ]

    for line in lines:
        print(line)

    main(args)

    mlflow.end_run()
