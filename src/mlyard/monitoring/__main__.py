"""``python -m mlyard.monitoring --definition monitor.json --output DIR [--now ISO]``: what a monitor job runs.

Exit codes:
    0  every signal was computed (alerted or not: see DIR/signals.json)
    2  the definition or an option is invalid: nothing was written
    3  a signal alerted and --fail-on-alert was given
    4  at least one signal could not be computed (status "error" in DIR/signals.json)
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from mlyard.core.errors import InvalidSpecError, MlyardError

EXIT_OK, EXIT_INVALID, EXIT_ALERT, EXIT_SIGNAL_ERROR = 0, 2, 3, 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlyard.monitoring", description=(
        "Compute a monitor's signals (data drift, prediction drift, data quality, model performance, feature "
        "attribution drift) on local data and write DIR/signals.json in Azure ML's signal output shape."))
    parser.add_argument("--definition", required=True, type=Path,
                        help="a monitor definition (create_monitor mapping) or a monitor schedule, YAML or JSON, "
                             "whose data inputs are local paths (relative ones start from its folder)")
    parser.add_argument("--output", required=True, type=Path, help="folder for signals.json and histograms")
    parser.add_argument("--now", help="the run time, ISO-8601 (default: the current UTC time); windows end here")
    parser.add_argument("--null-policy", choices=("row", "column"), default="row",
                        help="row: drop rows with a null in any compared feature, as Azure does (default); "
                             "column: drop nulls per feature, as Evidently does")
    parser.add_argument("--ks-mode", choices=("asymptotic", "azure_strict"), default="asymptotic",
                        help="KS at 10,000 rows or more: asymptotic p-value (default), or an error as in Azure")
    parser.add_argument("--workers", type=int, default=2, help="threads computing column batches (default 2)")
    parser.add_argument("--batch-columns", type=int, default=2, help="columns read per batch (default 2)")
    parser.add_argument("--fail-on-alert", action="store_true", help="exit 3 when a signal alerted")
    parser.add_argument("--quiet", action="store_true", help="do not print the table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from mlyard.monitoring.definition import load_definition
    from mlyard.monitoring.drift import DriftOptions
    from mlyard.monitoring.engine import EngineOptions, run_monitor
    from mlyard.monitoring.output import print_table, write_results
    from mlyard.monitoring.windows import parse_time

    if args.workers < 1 or args.batch_columns < 1:
        print("error: --workers and --batch-columns are at least 1", file=sys.stderr)
        return EXIT_INVALID
    try:
        now = parse_time(args.now, "--now") if args.now else datetime.now(UTC)
        loaded = load_definition(args.definition)
        options = EngineOptions(DriftOptions(null_policy=args.null_policy, ks_mode=args.ks_mode,
                                             workers=args.workers, batch_columns=args.batch_columns))
        result = run_monitor(loaded.definition, now=now, trigger=loaded.trigger, options=options,
                             base_path=args.definition.resolve().parent)
    except InvalidSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except MlyardError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_INVALID
    path = write_results(result, args.output)
    if not args.quiet:
        print_table(result)
        print(f"wrote {path}")
    if any(s.status == "error" for s in result.signals):
        return EXIT_SIGNAL_ERROR
    if args.fail_on_alert and result.status == "alerted":
        return EXIT_ALERT
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
