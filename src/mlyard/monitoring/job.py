"""``python -m mlyard.monitoring.job``: what a monitor run's job executes (the server builds the command).

1. reads the resolved monitor schedule from ``MLYARD_MONITOR_DEFINITION`` (or ``--definition``) and puts the local
   paths of the job's inputs (``--input d0=PATH``) where it says ``${{inputs.d0}}``, into ``OUTPUT/definition.json``;
2. runs the engine on it (``OUTPUT/signals.json``, histogram files, the terminal table in the job's log);
3. logs each metric and each signal's status into the job's MLflow run (``tracking.py``);
4. writes ``OUTPUT/report.html``, with the history of each metric read from the monitor's earlier runs;
5. posts the alerted signals to the server (``MLYARD_URL``/``MLYARD_TOKEN``/``MLYARD_JOB_NAME``), which records
   ``monitor.signal_alerted`` events and sends the alert e-mail; its answer is printed.

Exit codes: 0 computed (alerted or not; a signal that could not be computed has status "error" in the results, the
report and the MLflow tags, and the others still count), 2 invalid definition, 4 no signal could be computed, 5 the
server did not record the alerts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mlyard.core.errors import InvalidSpecError, MlyardError

ENV = "MLYARD_MONITOR_DEFINITION"
EXIT_OK, EXIT_INVALID, EXIT_SIGNAL_ERROR, EXIT_NOT_RECORDED = 0, 2, 4, 5
_PLACEHOLDER = re.compile(r"^\$\{\{\s*inputs\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlyard.monitoring.job", description=(
        "Run one monitor run inside its job: engine, MLflow logging, HTML report, alerts to the server."))
    parser.add_argument("--monitor", required=True, help="the monitor's name")
    parser.add_argument("--output", required=True, type=Path, help="the job's output folder")
    parser.add_argument("--now", help="the due instant (ISO-8601, or YYYYMMDDThhmmssZ); default: now")
    parser.add_argument("--input", action="append", default=[], metavar="NAME=PATH",
                        help="the local path of a job input the definition names as ${{inputs.NAME}}")
    parser.add_argument("--definition", type=Path, help=f"the resolved monitor schedule (default: ${ENV})")
    return parser


def substitute(value: Any, paths: dict[str, str]) -> Any:
    """``value`` with every ``${{inputs.NAME}}`` string replaced by the local path of that input."""
    if isinstance(value, dict):
        return {k: substitute(v, paths) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, paths) for v in value]
    if isinstance(value, str) and (m := _PLACEHOLDER.match(value)):
        if m.group(1) not in paths:
            raise KeyError(m.group(1))
        return paths[m.group(1)]
    return value


def _now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    if re.fullmatch(r"\d{8}T\d{6}Z", text):
        return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    from mlyard.monitoring.windows import parse_time

    return parse_time(text, "--now")


def _load(args: argparse.Namespace) -> dict[str, Any]:
    text = args.definition.read_text(encoding="utf-8") if args.definition else os.environ.get(ENV)
    if not text:
        raise ValueError(f"no definition: give --definition or set {ENV}")
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("the definition is not a JSON object")
    return value


def report_alerts(monitor: str, result: dict[str, Any]) -> tuple[bool, str]:
    """Post the alerted signals to the server; (recorded or nothing to record, what to print)."""
    alerted = [{"signal": s["signalName"], "breaches": s.get("breaches") or []}
               for s in result.get("signals") or [] if s.get("status") == "alerted"]
    if not alerted:
        return True, "no signal alerted"
    url, token, job = (os.environ.get(k) for k in ("MLYARD_URL", "MLYARD_TOKEN", "MLYARD_JOB_NAME"))
    if not (url and token and job):
        return True, "alerts not reported: MLYARD_URL/MLYARD_TOKEN/MLYARD_JOB_NAME are not set (not an mlyard job)"
    import httpx

    target = f"{url.rstrip('/')}/api/v1/monitors/{quote(monitor, safe='')}/runs/{quote(job, safe='')}/alerts"
    last = ""
    for attempt in range(4):
        try:
            answer = httpx.post(target, json={"signals": alerted}, headers={"Authorization": f"Bearer {token}"},
                                timeout=60)
        except httpx.HTTPError as exc:
            last = f"{exc.__class__.__name__}: {exc}"
        else:
            if answer.status_code == 200:
                body = answer.json()
                return True, (f"alerts recorded: {', '.join(body.get('recorded') or []) or 'none new'} "
                              f"(events {body.get('events')}); e-mail: {body.get('email')}")
            last = f"HTTP {answer.status_code}: {answer.text[:500]}"
            if answer.status_code < 500:
                break
        time.sleep(0.5 * 2 ** attempt)
    return False, f"the server did not record the alerts: {last}"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from mlyard.monitoring import report, tracking
    from mlyard.monitoring.definition import load_definition
    from mlyard.monitoring.engine import run_monitor
    from mlyard.monitoring.output import print_table, write_results

    paths = {}
    for item in args.input:
        name, sep, path = item.partition("=")
        if not sep or not name:
            print(f"error: --input {item!r}: expected NAME=PATH", file=sys.stderr)
            return EXIT_INVALID
        paths[name] = path
    output: Path = args.output
    output.mkdir(parents=True, exist_ok=True)
    try:
        now = _now(args.now)
        definition = substitute(_load(args), paths)
        resolved = output / "definition.json"
        resolved.write_text(json.dumps(definition, indent=2) + "\n", encoding="utf-8")
        loaded = load_definition(resolved)
        result = run_monitor(loaded.definition, now=now, trigger=loaded.trigger, base_path=output)
    except KeyError as exc:
        print(f"error: the definition names ${{{{inputs.{exc.args[0]}}}}}, which no --input gives", file=sys.stderr)
        return EXIT_INVALID
    except InvalidSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except (MlyardError, ValueError) as exc:
        print(f"error: {exc.message if isinstance(exc, MlyardError) else exc}", file=sys.stderr)
        return EXIT_INVALID
    write_results(result, output)
    print_table(result)
    data = result.to_dict()
    print(tracking.log_results(args.monitor, data), flush=True)
    path = report.write_report(data, output, monitor=args.monitor, job=os.environ.get("MLYARD_JOB_NAME"),
                               history=tracking.history())
    print(f"wrote {output / 'signals.json'} and {path}", flush=True)
    recorded, message = report_alerts(args.monitor, data)
    print(message, flush=True)
    if not recorded:
        return EXIT_NOT_RECORDED
    errors = [s for s in result.signals if s.status == "error"]
    for signal in errors:
        print(f"signal {signal.name} could not be computed: {signal.error}", flush=True)
    if errors and len(errors) == len(result.signals):
        return EXIT_SIGNAL_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
