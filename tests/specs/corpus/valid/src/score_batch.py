"""Batch scoring step of the scoring pipeline component (corpus support file)."""

import argparse


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=str)
    parser.add_argument("--mode", type=str)
    parser.add_argument("--scores", type=str)
    parser.parse_known_args()


if __name__ == "__main__":
    main()
