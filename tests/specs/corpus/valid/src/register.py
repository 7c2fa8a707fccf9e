"""Register the trained model with MLflow (corpus support file)."""

import argparse

import mlflow


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_name", type=str)
    parser.add_argument("--model_path", type=str)
    parser.add_argument("--deploy_flag", type=str)
    args, _ = parser.parse_known_args()
    mlflow.end_run()


if __name__ == "__main__":
    main()
