"""
Prepares raw data and provides training and test datasets.

Runs unchanged on Azure ML and on mlyard: it logs with the standard mlflow client, which attaches to the
job's run through MLFLOW_RUN_ID (or starts a run of its own when run by hand).
"""

import argparse
from pathlib import Path

import mlflow
import pandas as pd
from sklearn.model_selection import train_test_split

TARGET_COL = "Attrition"


def parse_args():
    """Parse input arguments"""

    parser = argparse.ArgumentParser("prep")
    parser.add_argument("--raw_data", type=str, help="Path to raw data: a CSV file or a folder of CSV files")
    parser.add_argument("--train_data", type=str, help="Path to train dataset (a folder)")
    parser.add_argument("--test_data", type=str, help="Path to test dataset (a folder)")
    parser.add_argument("--test_size", type=float, default=0.2, help="Share of rows held out for testing")
    parser.add_argument("--random_state", type=int, default=42, help="Seed of the split")

    args = parser.parse_args()

    return args


def read_raw(raw_data):
    """A uri_file input is one CSV; a uri_folder input is a folder of them."""
    path = Path(raw_data)
    if path.is_dir():
        files = sorted(path.glob("*.csv"))
        if not files:
            raise FileNotFoundError(f"no .csv file in {path}")
        return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    return pd.read_csv(path)


def main(args):
    """Read, split, and save datasets"""

    # ------------ Reading Data ------------ #
    data = read_raw(args.raw_data)
    data = data.dropna(subset=[TARGET_COL])

    # ------------- Split Data ------------- #
    # Stratified, so both sets keep the attrition rate of the raw data
    train, test = train_test_split(
        data, test_size=args.test_size, stratify=data[TARGET_COL], random_state=args.random_state
    )

    mlflow.log_metric("raw_rows", data.shape[0])
    mlflow.log_metric("train_rows", train.shape[0])
    mlflow.log_metric("test_rows", test.shape[0])
    mlflow.log_metric("attrition_rate", float((data[TARGET_COL] == "Yes").mean()))

    for frame, folder, name in ((train, args.train_data, "train.csv"), (test, args.test_data, "test.csv")):
        Path(folder).mkdir(parents=True, exist_ok=True)
        frame.to_csv(Path(folder) / name, index=False)


if __name__ == "__main__":

    # ---------- Parse Arguments ----------- #
    args = parse_args()

    lines = [
        f"Raw data path: {args.raw_data}",
        f"Train dataset output path: {args.train_data}",
        f"Test dataset output path: {args.test_data}",
    ]

    for line in lines:
        print(line)

    main(args)
