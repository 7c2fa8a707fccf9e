"""A parallel step as the command step that runs mlyard's batch engine (``python -m mlyard.serving.batch``).

The step's own settings become the engine's options; the entry script runs in the step's code folder and
environment like any step's command, so inputs, outputs, reuse, logs and cancel work as for command steps.
``append_row_to`` names an output: a ``uri_file`` output is the appended file itself, a folder output holds
``parallel_run_step.txt`` (the name Azure's parallel run step uses). Without it the run is ``summary_only``: the
script writes its own outputs, usually to paths in ``program_arguments``. ``program_arguments`` reach the entry
script as its ``sys.argv``; of Azure's predefined arguments, ``--error_threshold`` sets the engine's threshold of
failed files, and the rest (timeouts of Azure's own agents, metrics and log copies) have no meaning here.
"""

from __future__ import annotations

import os
import shlex
from typing import Any

APPEND_FILE = "parallel_run_step.txt"
ENGINE = "mlyard.serving.batch"
PROGRESS_FILE = "batch-progress.json"  # in the job's folder, beside its working directory; job show reads it
REPORT_FILE = "batch-report.json"


def _error_threshold(arguments: list[str]) -> int:
    for i, word in enumerate(arguments):
        value = None
        if word == "--error_threshold" and i + 1 < len(arguments):
            value = arguments[i + 1]
        elif word.startswith("--error_threshold="):
            value = word.split("=", 1)[1]
        if value is not None and value.lstrip("-").isdigit():
            return max(-1, int(value))
    return -1


def parallel_command(raw: dict[str, Any], pythonpath: str) -> dict[str, Any]:
    """The command step's fields (command, code, environment, environment variables) for a parallel step."""
    task = raw["task"]
    data = raw["input_data"].strip()
    arguments = task.get("program_arguments") or ""
    words = shlex.split(arguments)
    retry = raw.get("retry_settings") or {}
    resources = raw.get("resources") or {}
    concurrency = raw.get("max_concurrency_per_instance") or os.cpu_count() or 1
    options: list[tuple[str, Any]] = [
        ("--mini-batch-size", raw.get("mini_batch_size", 1)), ("--instance-count", resources.get("instance_count", 1)),
        ("--max-concurrency-per-instance", concurrency), ("--max-retries", retry.get("max_retries", 2)),
        ("--timeout", retry.get("timeout", 60)), ("--error-threshold", _error_threshold(words)),
        ("--mini-batch-error-threshold", raw.get("mini_batch_error_threshold", -1)),
        ("--logging-level", str(raw.get("logging_level", "INFO")).lower())]
    # the command runs in <job folder>/wd
    files = ["--progress", f'"$PWD/../{PROGRESS_FILE}"', "--report", f'"$PWD/../{REPORT_FILE}"']
    script = shlex.quote(str(task["entry_script"]))
    engine = ["python", "-m", ENGINE, "--input", data, "--code", ".", "--scoring-script", script,
              *(w for option, value in options for w in (option, shlex.quote(str(value)))), *files]
    append = task.get("append_row_to")
    if append:
        # a uri_file output renders as the file's path, a folder output as the folder: decided when it runs
        prelude = (f"out={append.strip()}; if [ -d \"$out\" ]; then dir=\"$out\"; name={APPEND_FILE}; "
                   "else dir=$(dirname \"$out\"); name=$(basename \"$out\"); fi; ")
        engine += ["--output", '"$dir"', "--output-file-name", '"$name"', "--output-action", "append_row"]
    else:
        prelude = "dir=$(mktemp -d); "
        engine += ["--output", '"$dir"', "--output-action", "summary_only"]
    command = prelude + "exec " + " ".join(engine) + (f" -- {arguments}" if arguments.strip() else "")
    variables = {**(raw.get("environment_variables") or {}), **(task.get("environment_variables") or {})}
    variables["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, variables.get("PYTHONPATH")) if p)
    step: dict[str, Any] = {"command": command, "environment": task["environment"],
                            "environment_variables": {str(k): str(v) for k, v in variables.items()}}
    if task.get("code") is not None:
        step["code"] = task["code"]
    if resources:
        step["resources"] = resources
    return step
