"""Prepare raw taxi data for training (corpus support file)."""

import argparse
import os
import shutil


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw_data", type=str)
    parser.add_argument("--prepared_data", type=str)
    args = parser.parse_args()
    os.makedirs(args.prepared_data, exist_ok=True)
    for name in os.listdir(args.raw_data):
        shutil.copy(os.path.join(args.raw_data, name), args.prepared_data)


if __name__ == "__main__":
    main()
