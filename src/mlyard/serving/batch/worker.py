"""A batch worker: ``python -m mlyard.serving.batch.worker``, one process that loads once and scores mini-batches.

The engine starts it (see ``pool.LocalProcessPool``) and talks to it in JSON lines: tasks arrive on stdin, answers
leave on stdout. At start the worker moves both to private descriptors and points its stdout at its stderr (the
job log), so what a scoring script prints never mixes with the protocol.

Worker to engine, one line each::

    {"event": "ready", "pid": 123}                      after init() or the model load
    {"event": "init_failed", "error": "..."}            then it exits 1
    {"event": "done", "task": 7, "rows": 10000, "failed": [["/data/x.csv", "reason"], ...]}
    {"event": "error", "task": 7, "error": "ValueError: ..."}      run() raised: the attempt failed

Engine to worker: ``{"task": 7, "files": ["/abs/a.csv", ...], "part": "/out/.parts/p.csv", "label": "mini-batch 3"}``
(``part`` null with summary_only; ``label`` names the work in the log). End of stdin ends the worker. It dies with
its parent (``PR_SET_PDEATHSIG``), and imports only the standard library at module top (see the package's docstring).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import IO

from mlyard.serving.batch.scorers import REASON_MAX, MlflowScorer, Scorer, ScriptScorer

log = logging.getLogger("mlyard.serving.batch.worker")
LEVELS = {"warning": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlyard.serving.batch.worker",
                                     description="A batch scoring worker; started by the batch engine.")
    parser.add_argument("--worker-id", type=int, default=0)
    parser.add_argument("--code", type=Path)
    parser.add_argument("--scoring-script")
    parser.add_argument("--script-args", default="[]", help="the script's sys.argv[1:], as a JSON list")
    parser.add_argument("--model", type=Path, help="the MLflow model folder (no-code scoring)")
    parser.add_argument("--logging-level", choices=sorted(LEVELS), default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The protocol moves to private descriptors: print() in a scoring script goes to the job log, and a process the
    # script starts can neither write into the answers nor read the tasks.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    tasks = os.fdopen(os.dup(0), "r", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", encoding="utf-8", buffering=1, closefd=False)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    logging.basicConfig(level=LEVELS[args.logging_level], stream=sys.stderr, force=True,
                        format=f"%(asctime)s %(levelname)s [worker {args.worker_id}] %(name)s: %(message)s")
    die_with_parent()
    scorer: Scorer
    if args.scoring_script:
        scorer = ScriptScorer(args.code or Path.cwd(), args.scoring_script, json.loads(args.script_args))
    else:
        scorer = MlflowScorer(args.model, check_requirements=args.worker_id == 0)
    try:
        scorer.load()
    except BaseException as exc:  # SystemExit in init() too: the engine must hear why
        log.error("init failed", exc_info=exc)
        _send(protocol, {"event": "init_failed", "error": _reason(exc)})
        return 1
    _send(protocol, {"event": "ready", "pid": os.getpid()})
    for line in tasks:
        if not line.strip():
            continue
        task = json.loads(line)
        try:
            outcome = scorer.score(task["files"], task["part"])
        except Exception as exc:
            log.error("run() failed on %s (%d file(s) from %s)", task.get("label") or f"task {task['task']}",
                      len(task["files"]), task["files"][0] if task["files"] else "-", exc_info=exc)
            _send(protocol, {"event": "error", "task": task["task"], "error": _reason(exc)})
            continue
        _send(protocol, {"event": "done", "task": task["task"], "rows": outcome.rows,
                         "failed": [list(item) for item in outcome.failed]})
    return 0


def _reason(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text[:REASON_MAX]


def _send(protocol: IO[str], message: dict[str, object]) -> None:
    protocol.write(json.dumps(message) + "\n")
    protocol.flush()


def die_with_parent() -> None:
    """Ask Linux to kill this process when the engine dies, so a killed engine leaves no worker behind."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent:  # the engine died before the request took effect
        os._exit(1)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # the engine finished (or stopped) before this worker had anything to say
        os._exit(0)
