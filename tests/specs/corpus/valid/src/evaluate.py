"""Evaluate a trained model (corpus support file)."""

import argparse


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_name", type=str)
    parser.add_argument("--model_input", type=str)
    parser.add_argument("--prepared_data", type=str)
    parser.add_argument("--deploy_flag", type=str)
    parser.parse_known_args()


if __name__ == "__main__":
    main()
