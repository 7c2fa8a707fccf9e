"""Score test data with the best sweep model (corpus support file)."""

import argparse


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=str)
    parser.add_argument("--test_data", type=str)
    parser.add_argument("--predict_result", type=str)
    parser.parse_known_args()


if __name__ == "__main__":
    main()
