"""Train a taxi fare model (corpus support file)."""

import argparse

import mlflow


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--training_data", "--prepared_data", "--data", dest="data", type=str)
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--max_epochs", type=int, default=10)
    parser.add_argument("--model_output", type=str)
    args, _ = parser.parse_known_args()
    mlflow.log_param("learning_rate", args.learning_rate)
    mlflow.log_metric("training_f1_score", 0.5)


if __name__ == "__main__":
    main()
