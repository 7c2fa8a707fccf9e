"""The studio's runs page against MLflow's own UI: time to first render with 10,000 runs in the experiment.

    .venv/bin/python benchmarks/studio.py --quick     # a check: 1,000 runs, 2 rounds
    .venv/bin/python benchmarks/studio.py             # 10,000 runs, 5 rounds (make bench)

Both servers get the same runs through the MLflow client (``bench_tracking_load.seed_runs``: create_run, then one
log_batch of 2 metrics, 2 params and 1 tag each), seeded at the same time and not timed. One headless Chromium
(Debian's, driven by Playwright) opens each UI in a fresh browser context every round (a cold cache: the page's
scripts and styles are fetched too), alternating mlyard and MLflow after an uncounted warm-up round of each.
Timed: from the navigation's start until the newest run's name is drawn in the runs table (``newest-run``, logged
after the others, so first in both UIs' default order, start time descending). mlyard: ``/studio/experiments/<id>``
after signing in (once per context, untimed, by setting the session cookie); MLflow: ``/#/experiments/<id>/runs``
(its "Training runs" tab) on a stock ``mlflow server`` (SQLite, one worker, as in the tracking benchmarks).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_tracking_load as load
import httpx
from harness import Comparison, alternate, markdown_table, print_table, seconds
from procs import package_version, stop

HERE = Path(__file__).resolve().parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"]
RENDER_TIMEOUT_MS = 120_000


def studio_cookie(url: str, token: str) -> dict[str, Any]:
    """A signed-in session, opened through the sign-in form (as a browser would), as a Playwright cookie."""
    with httpx.Client(base_url=url, follow_redirects=False) as http:
        page = http.get("/studio/signin")
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match, page.text[:300]
        answer = http.post("/studio/signin", data={"csrf": match.group(1), "token": token})
        if answer.status_code != 303:
            raise RuntimeError(f"studio sign-in failed: {answer.status_code} {answer.text[:300]}")
        sid = http.cookies["mlyard_studio"]
    return {"name": "mlyard_studio", "value": sid, "url": url, "httpOnly": True, "sameSite": "Strict"}


def first_render(browser: Any, url: str, newest: str, cookie: dict[str, Any] | None) -> float:
    """Seconds from navigation until ``newest`` is visible in a fresh context (cold cache)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        if cookie is not None:
            context.add_cookies([cookie])
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url, wait_until="commit", timeout=RENDER_TIMEOUT_MS)
        page.get_by_text(newest, exact=True).first.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
        return time.perf_counter() - start
    finally:
        context.close()


def run(runs: int, rounds: int, progress: Any) -> list[Comparison]:
    from mlflow import MlflowClient
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    base = Path(tempfile.mkdtemp(prefix="mlyard-bench-studio-"))
    servers: list[load.Server] = []
    big: list[float] = []
    try:
        mlyard, token = load.start_mlyard(base / "mlyard")
        servers.append(mlyard)
        mlflow = load.start_mlflow(base / "mlflow")
        servers.append(mlflow)
        os.environ.update({**load.MLFLOW_ENV, "MLFLOW_TRACKING_TOKEN": token})
        clients = {s.name: MlflowClient(tracking_uri=s.url) for s in servers}
        experiments = {name: c.create_experiment("studio-bench") for name, c in clients.items()}
        load.on_both({name: (lambda n=name: load.seed_runs(clients[n], experiments[n], runs - 1, 4))
                      for name in clients},
                     progress)
        newest = "newest-run"  # logged after the seeding's threads: first in both UIs' default order
        for client, experiment in ((clients[n], experiments[n]) for n in clients):
            client.set_terminated(client.create_run(experiment, run_name=newest).info.run_id)
        cookie = studio_cookie(mlyard.url, token)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                ours = f"{mlyard.url}/studio/experiments/{experiments['mlyard']}"
                theirs = f"{mlflow.url}/#/experiments/{experiments['mlflow']}/runs"  # MLflow 3's "Training runs"
                subject, peer = alternate(rounds, lambda: first_render(browser, ours, newest, cookie),
                                          lambda: first_render(browser, theirs, newest, None), progress=progress)
                # the issue's own bar: a page of 1,000 runs (mlyard only: MLflow's UI has no such page size)
                big = [first_render(browser, f"{ours}?size=1000", newest, cookie) for _ in range(rounds + 1)][1:]
                progress("mlyard, 1,000 rows a page: " + ", ".join(seconds(b) for b in big))
            finally:
                browser.close()
    finally:
        for server in servers:
            stop(server.proc)
        shutil.rmtree(base, ignore_errors=True)
    return [Comparison(
        name=f"Runs page, first render, {runs:,} runs",
        subject="mlyard studio (server-rendered, 100 rows a page)",
        peer=f"MLflow {package_version('mlflow')} UI (mlflow server)",
        workload=f"fresh browser context each round (cold cache), headless Chromium, navigation start until the "
                 f"newest run's name is visible; {runs:,} runs with 2 params, 2 metrics, 1 tag each",
        subject_s=subject, peer_s=peer,
        notes=[f"mlyard with 1,000 rows on the page (?size=1000), same measure, {rounds} rounds after a warm-up: "
               f"median {seconds(statistics.median(big))} [{seconds(min(big))} - {seconds(max(big))}]"])]


def main(argv: list[str] | None = None) -> int:
    from machine import describe, summary_line
    from rich.console import Console

    parser = argparse.ArgumentParser(description="The studio's runs page against MLflow's UI: first render.")
    parser.add_argument("--quick", action="store_true", help="1,000 runs, 2 rounds")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--results", type=Path, default=HERE / ".results")
    args = parser.parse_args(argv)
    runs, rounds = (1_000, 2) if args.quick else (args.runs, args.rounds)
    console = Console(width=max(Console().width, 160))
    info = describe()
    console.print(f"[bold]studio[/bold]: 1 warm-up + alternating rounds · {summary_line(info)}")
    results = run(runs, rounds, lambda line: console.print(f"  studio {line}", highlight=False, markup=False))
    print_table(console, results, title=f"mlyard studio vs MLflow UI · {info['date']} · commit {info['commit']}")
    for c in results:
        console.print("; ".join([f"• {c.name}: mlyard = {c.subject}", f"peer = {c.peer}", c.workload, *c.notes]),
                      highlight=False, markup=False)
    args.results.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "results": [c.to_dict() for c in results]}
    (args.results / "studio.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.results / "studio.md").write_text(f"{summary_line(info)}\n\n{markdown_table(results)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
