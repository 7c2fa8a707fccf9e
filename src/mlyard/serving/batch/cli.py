"""``python -m mlyard.serving.batch``: score a file or a folder of files with a scoring script or an MLflow model.

The command line is a contract: batch endpoint invocations and pipeline ``type: parallel`` steps launch exactly
this. Exit status 0 when the run completes (failures within the thresholds), 1 when it fails, with one paragraph on
stderr that says what went wrong and what to do. Progress lines and the final summary go to stdout (the job log).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from mlyard.serving.batch.engine import Engine, Settings
from mlyard.serving.batch.inputs import InputError, check_nocode_types, list_files, mini_batches
from mlyard.serving.batch.launch import Launch, worker_launch
from mlyard.serving.batch.outputs import Parts
from mlyard.serving.batch.pool import LocalProcessPool, WorkerPool
from mlyard.serving.batch.progress import Reporter, RunState

RAY_ADDRESS = "MLYARD_RAY_ADDRESS"  # set by the Ray executor: the cluster a step on a Ray compute runs on


class BatchError(Exception):
    """The run cannot start or failed; the message is the paragraph shown to the user."""


class Cancelled(BaseException):
    """SIGTERM: the job is being cancelled."""


def _cancel(signum: int, frame: object) -> None:
    raise Cancelled


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # a bad argument is a failed run (status 1), not argparse's 2
        self.exit(1, f"batch scoring: {message}. Run `python -m mlyard.serving.batch --help` for the options.\n")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _threshold(text: str) -> int:
    value = int(text)
    if value < -1:
        raise argparse.ArgumentTypeError(f"must be -1 (tolerate every failure) or at least 0, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m mlyard.serving.batch",
                description="Score a file or a folder of files in mini-batches (Azure ML batch deployments).")
    p.add_argument("--input", type=Path, required=True, help="a file, or a folder whose files (not sub-folders) "
                   "are scored, sorted by name; hidden files are skipped")
    p.add_argument("--output", type=Path, required=True, help="the score output folder (created if missing)")
    p.add_argument("--model", type=Path, help="the model folder (MLflow: holds MLmodel) or file")
    p.add_argument("--code", type=Path, help="the scoring script's code folder")
    p.add_argument("--scoring-script", help="the scoring script, relative to --code; absent: no-code MLflow scoring")
    p.add_argument("--mini-batch-size", type=_positive, default=10, help="files per run() call (10)")
    p.add_argument("--instance-count", type=_positive, default=1, help="instances (1)")
    p.add_argument("--max-concurrency-per-instance", type=_positive, default=1, help="workers per instance (1)")
    p.add_argument("--max-retries", type=int, default=3, help="retries of a failed or timed-out mini-batch (3)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per mini-batch attempt (30)")
    p.add_argument("--error-threshold", type=_threshold, default=-1, help="failed files tolerated (-1: all)")
    p.add_argument("--mini-batch-error-threshold", type=_threshold, default=-1,
                   help="failed mini-batches tolerated (-1: all)")
    p.add_argument("--output-action", choices=("append_row", "summary_only"), default="append_row")
    p.add_argument("--output-file-name", default="predictions.csv")
    p.add_argument("--logging-level", type=str.lower, choices=("warning", "info", "debug"), default="info")
    p.add_argument("--progress", type=Path, help="a JSON file rewritten as mini-batches finish")
    p.add_argument("--report", type=Path, help="the per-file error report, written at the end (JSON)")
    p.add_argument("script_args", nargs="*", metavar="-- ARGUMENTS",
                   help="after --: the scoring script's sys.argv[1:] (a parallel step's program_arguments)")
    return p


@dataclass(frozen=True)
class Plan:
    """What a run will do, checked before any worker starts."""

    files: list[str]
    batches: list[tuple[str, ...]]
    workers: int
    model: Path | None
    code: Path | None


def check(args: argparse.Namespace) -> Plan:
    """Check the options and the input; raise :class:`BatchError` or :class:`InputError` with what to fix."""
    if args.max_retries < 0 or args.timeout <= 0:
        raise BatchError("--max-retries must be 0 or more and --timeout more than 0 seconds")
    if "/" in args.output_file_name or args.output_file_name in ("", ".", ".."):
        raise BatchError(f"--output-file-name {args.output_file_name!r} must be a file name, without a folder")
    model = args.model.resolve() if args.model is not None else None
    if model is not None and not model.exists():
        raise BatchError(f"the model {args.model} does not exist: give the model's folder or file with --model")
    code = None
    if args.scoring_script is not None:
        if args.code is None or not args.code.is_dir():
            raise BatchError(f"--scoring-script {args.scoring_script} needs --code, the folder that holds it"
                             + (f" ({args.code} is not a folder)" if args.code is not None else ""))
        code = args.code.resolve()
        if not (code / args.scoring_script).is_file():
            raise BatchError(f"the scoring script {args.scoring_script} is not in the code folder {code}")
    elif args.script_args:
        raise BatchError(f"arguments after -- ({' '.join(args.script_args)}) are for a scoring script, and none is "
                         "given: add --code and --scoring-script, or drop them")
    elif args.code is not None:
        raise BatchError("--code is given without --scoring-script: name the script, or drop --code for no-code "
                         "MLflow scoring")
    elif model is None:
        raise BatchError("no model and no scoring script: give --model (an MLflow model folder) for no-code scoring, "
                         "or --code and --scoring-script")
    elif not (model / "MLmodel").is_file():
        raise BatchError(f"the model {args.model} is not an MLflow model (no MLmodel file in it): no-code batch "
                         "scoring needs one; for other models give --code and --scoring-script")
    listing = list_files(args.input)
    if code is None:
        check_nocode_types(listing.files)
    batches = mini_batches(listing.files, args.mini_batch_size)
    workers = min(args.instance_count * args.max_concurrency_per_instance, max(1, len(batches)))
    return Plan(listing.files, batches, workers, model, code)


def run(args: argparse.Namespace) -> int:
    """Run the batch scoring the options describe; return the exit status."""
    plan = check(args)
    args.output = args.output.resolve()  # workers run in another working directory
    args.output.mkdir(parents=True, exist_ok=True)
    for path in (args.progress, args.report):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    state = RunState(total_batches=len(plan.batches), total_files=len(plan.files), workers=plan.workers)
    reporter = Reporter(state, args.progress, args.report, quiet=args.logging_level == "warning")
    append_row = args.output_action == "append_row"
    target = args.output / args.output_file_name
    what = f"scoring script {args.scoring_script}" if plan.code else f"MLflow model {plan.model} (no code)"
    reporter.say(f"batch scoring {len(plan.files)} file(s) from {args.input} in {len(plan.batches)} mini-batch(es) "
                 f"of {args.mini_batch_size} with {plan.workers} worker(s), {what}")
    if not plan.files:
        reporter.say(f"the input {args.input} holds no files to score (sub-folders and hidden files are skipped)"
                     + (f"; writing an empty {target}" if append_row else ""))
        if append_row:
            target.write_bytes(b"")
        state.state = "completed"
        reporter.finish()
        return 0
    private = Path(tempfile.mkdtemp(prefix="mlyard-batch-"))
    parts = Parts(args.output) if append_row else None
    try:
        launch = worker_launch(private, args.output, plan.model, plan.code, args.scoring_script,
                               args.logging_level, args.script_args)
        if parts is not None:
            parts.create()
        sys.stdout.flush()
        pool: WorkerPool = LocalProcessPool(plan.workers, launch.command, launch.env, launch.cwd, log=_log_fd())
        if address := os.environ.get(RAY_ADDRESS):  # a step on a Ray compute: workers over the cluster's nodes
            pool = _ray_pool(plan.workers, launch, address, args.instance_count, reporter) or pool
        settings = Settings(max_retries=args.max_retries, timeout=args.timeout, error_threshold=args.error_threshold,
                            mini_batch_error_threshold=args.mini_batch_error_threshold, append_row=append_row,
                            nocode=plan.code is None)
        try:
            Engine(pool, settings, parts, reporter).run(plan.batches)
        except (Cancelled, KeyboardInterrupt):
            state.state, state.reason = "cancelled", "cancelled (SIGTERM or Ctrl-C) before the end"
            reporter.finish()
            raise
        if state.state == "completed" and parts is not None:
            size = parts.assemble(target)
            reporter.say(f"wrote {target} ({size:,} bytes)")
    finally:
        if parts is not None:
            parts.remove()
        shutil.rmtree(private, ignore_errors=True)
    reporter.finish()
    if state.state != "completed":
        raise BatchError(f"batch scoring failed: {state.reason}")
    return 0


def _ray_pool(size: int, launch: Launch, address: str, instances: int, reporter: Reporter) -> WorkerPool | None:
    """Workers as Ray actors on the cluster at ``address``; None (workers on this node) where Ray is not installed."""
    if importlib.util.find_spec("ray") is None:
        reporter.say("this step runs on a Ray compute, and its environment has no Ray: the batch workers run on "
                     "the step's node")
        return None
    from mlyard.serving.batch.ray_pool import RayWorkerPool

    pool = RayWorkerPool(size, launch.command, launch.env, launch.cwd, _log_fd(), address, instances)
    try:
        pool.connect()
    except (RuntimeError, ConnectionError, ValueError) as exc:
        raise BatchError(f"the batch workers cannot be placed on the Ray cluster at {address}: {exc}") from None
    return pool


def _log_fd() -> int:
    try:
        return sys.stdout.fileno()
    except (OSError, ValueError):  # no real stdout (embedded): the workers share the engine's stderr
        return 2


def main(argv: list[str] | None = None) -> int:
    """The command line's entry point."""
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _cancel)
    try:
        return run(args)
    except (Cancelled, KeyboardInterrupt):
        sys.stdout.flush()
        sys.stderr.write("batch scoring cancelled: the workers were stopped and no output file was written.\n")
        return 143
    except (BatchError, InputError) as exc:
        sys.stdout.flush()
        message = str(exc)
        prefix = "" if message.startswith("batch scoring failed") else "batch scoring failed: "
        sys.stderr.write(prefix + message + "\n")
        return 1
