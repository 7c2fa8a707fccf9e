"""Send the rows of CSV files to an online endpoint, as production traffic: a few requests of many rows.

    python examples/attrition/mlops/monitoring/send_traffic.py --scoring-uri URI --key KEY \
        examples/attrition/data/production/*.csv

Each request is Azure's split frame ``{"input_data": {"columns", "index", "data"}}`` with the model's 30 input
columns (read from ../../data/attrition-request.json), so the deployment's data collector records exactly what
the model saw. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import urllib.request
from pathlib import Path

REQUEST = Path(__file__).resolve().parents[2] / "data" / "attrition-request.json"


def _value(text: str) -> int | float | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def rows(files: list[Path], columns: list[str]) -> list[list[int | float | str]]:
    out = []
    for path in files:
        with path.open(newline="") as handle:
            for record in csv.DictReader(handle):
                out.append([_value(record[c]) for c in columns])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="CSV files with (at least) the model's input columns")
    parser.add_argument("--scoring-uri", required=True, help="the endpoint's scoring URI")
    parser.add_argument("--key", required=True, help="the endpoint's key (online-endpoint get-credentials)")
    parser.add_argument("--batch-size", type=int, default=100, help="rows per request (default 100)")
    args = parser.parse_args(argv)
    columns = json.loads(REQUEST.read_text())["input_data"]["columns"]
    data = rows(args.files, columns)
    leaving = 0
    for start in range(0, len(data), args.batch_size):
        chunk = data[start:start + args.batch_size]
        body = json.dumps({"input_data": {"columns": columns, "index": list(range(start, start + len(chunk))),
                                          "data": chunk}}).encode()
        request = urllib.request.Request(args.scoring_uri, data=body, method="POST", headers={
            "Authorization": f"Bearer {args.key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            leaving += sum(1 for p in json.loads(answer.read()) if p == 1)
    print(f"sent {len(data)} rows in {-(-len(data) // args.batch_size)} requests; predicted to leave: {leaving}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
