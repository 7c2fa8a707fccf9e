"""``make bench``: run the benchmarks against their peers and print one table.

    .venv/bin/python benchmarks/run.py                      # all of them
    .venv/bin/python benchmarks/run.py --only cli --rounds 5

Results also go to benchmarks/.results/latest.json and latest.md (git-ignored).
See docs/benchmarks.md for what each benchmark measures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import bench_cli  # the benchmarks/ folder is on sys.path: this file runs as a script
import bench_pipeline
import bench_server
import bench_tracking
import bench_upload
import serving
from harness import Comparison, markdown_table, print_table
from machine import describe, summary_line
from rich.console import Console
from rich.markup import escape

HERE = Path(__file__).resolve().parent
Progress = Callable[[str], None]
Bench = Callable[[int, Progress, argparse.Namespace], Comparison | list[Comparison]]

# name -> (benchmark(rounds, progress, options), default rounds)
BENCHMARKS: dict[str, tuple[Bench, int]] = {
    "server": (lambda rounds, progress, _: bench_server.run(rounds, progress), 7),
    "cli": (lambda rounds, progress, _: bench_cli.run(rounds, progress), 20),
    "upload": (lambda rounds, progress, opts: bench_upload.run(rounds, progress, size_mb=opts.size_mb), 5),
    "tracking": (lambda rounds, progress, opts: bench_tracking.run(
        rounds, progress, calls=opts.tracking_calls, runs=opts.tracking_runs, points=opts.tracking_points), 5),
    "pipeline": (lambda rounds, progress, _: bench_pipeline.pipeline(rounds, progress), 5),
    "submit": (lambda rounds, progress, _: bench_pipeline.latency(rounds, progress), 20),
    "serving": (serving.run, 5),
}
MIN_ROUNDS = {"server": 5, "cli": 10, "upload": 5, "tracking": 5, "pipeline": 5, "submit": 10, "serving": 5}
BUSY_LOAD = 0.5  # 1-minute load average above which the run is flagged as noisy


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run mlyard's benchmarks against their peers; print one table.")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--rounds", type=int, help="counted rounds for every benchmark (default: "
                        + ", ".join(f"{k} {v[1]}" for k, v in BENCHMARKS.items()) + ")")
    parser.add_argument("--size-mb", type=int, default=200, help="file size of the upload benchmark (default 200)")
    parser.add_argument("--tracking-calls", type=int, default=1000,
                        help="tracking: log_metric calls per server per round (default 1000)")
    parser.add_argument("--tracking-runs", type=int, default=10_000,
                        help="tracking: runs seeded for search_runs (default 10000)")
    parser.add_argument("--tracking-points", type=int, default=100_000,
                        help="tracking: points of the metric whose history is read (default 100000)")
    serving.add_options(parser)
    parser.add_argument("--results", type=Path, default=HERE / ".results",
                        help="folder for latest.json and latest.md (default benchmarks/.results)")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=max(Console().width, 160), stderr=False)
    info = describe()
    console.print(f"[bold]mlyard benchmarks[/bold] · {escape(summary_line(info))}")
    if info["loadavg_1m_at_start"] > BUSY_LOAD:
        console.print(f"[yellow]load average {info['loadavg_1m_at_start']}: something else is running; the ratios "
                      "hold up better than the absolute figures, but a quiet machine is better[/yellow]")
    results: list[Comparison] = []
    failed: list[str] = []
    for name in args.only or list(BENCHMARKS):
        bench, default_rounds = BENCHMARKS[name]
        rounds = args.rounds or default_rounds
        if rounds < MIN_ROUNDS[name]:
            console.print(f"[yellow]{name}: {rounds} rounds is fewer than the {MIN_ROUNDS[name]} "
                          "BENCHMARKS.md asks for; fine for a check, not for docs/benchmarks.md[/yellow]")
        console.print(f"[bold]{name}[/bold]: 1 warm-up + {rounds} alternating rounds")

        def progress(line: str, _name: str = name) -> None:
            console.print(f"  {_name} {escape(line)}", highlight=False)

        try:
            outcome = bench(rounds, progress, args)
            results.extend(outcome if isinstance(outcome, list) else [outcome])
        except Exception as exc:  # report it, run the others, fail at the end
            failed.append(name)
            console.print(f"[red]{name} failed: {exc.__class__.__name__}: {escape(str(exc))}[/red]", highlight=False)
            if os.environ.get("MLYARD_DEBUG"):
                traceback.print_exc()
    if results:
        print_table(console, results, title=f"mlyard vs peers · {info['date']} · commit {info['commit']}")
        for c in results:
            note = "; ".join([f"• {c.name}: mlyard = {c.subject}", f"peer = {c.peer}", c.workload, *c.notes])
            console.print(escape(note), highlight=False)
        args.results.mkdir(parents=True, exist_ok=True)
        payload = {"machine": info, "results": [c.to_dict() for c in results], "failed": failed}
        (args.results / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
        (args.results / "latest.md").write_text(f"{summary_line(info)}\n\n{markdown_table(results)}\n")
        console.print(f"written: {args.results / 'latest.json'}, {args.results / 'latest.md'}")
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
