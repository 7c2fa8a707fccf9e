"""``make screenshots``: the studio's main pages as PNG files (a real server, seeded runs and a pipeline, and
Debian's headless Chromium). Usage: ``python -m tests.studio.screenshots docs/images``."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx

from mlyard.client import MlyardClient
from tests.studio.conftest import CHROMIUM_ARGS, chromium_path
from tests.studio.seed import MODEL, log_runs, submit_pipeline
from tests.support.jobs import TERMINAL, wait_until
from tests.support.server import ServerProcess, free_port


def main(out: Path) -> int:
    executable = chromium_path()
    if executable is None:
        print("screenshots: no Chromium; run 'make browser' first", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = ServerProcess(root / "workspace", free_port()).init().start()
        try:
            seeded = log_runs(server, experiment="attrition-training", count=6)
            csv = root / "employees.csv"
            csv.write_text("Age,MonthlyIncome,OverTime,Attrition\n" + "".join(
                f"{22 + i % 40},{2500 + 137 * i},{'Yes' if i % 3 == 0 else 'No'},{'Yes' if i % 5 == 0 else 'No'}\n"
                for i in range(60)))
            with MlyardClient(server.url, server.token) as client:
                client.data.create({"name": "employees", "version": "1", "type": "uri_file", "path": str(csv),
                                    "description": "HR attrition sample"})
            job = submit_pipeline(server, root / "pipeline", lines=3, step=0.05)
            url = f"{server.url}/api/v1/jobs/{job['name']}"
            wait_until(lambda: httpx.get(url, headers=server.headers()).json()["status"] in TERMINAL,
                       "the pipeline ends", 180)
            pages = {
                "studio-runs.png": f"/studio/experiments/{seeded.experiment_id}",
                "studio-run.png": f"/studio/runs/{seeded.run_ids[2]}",
                "studio-compare.png": "/studio/compare?" + "&".join(f"runs={r}" for r in seeded.run_ids[:3]),
                "studio-model-lineage.png": f"/studio/models/{MODEL}/versions/1",
                "studio-pipeline.png": f"/studio/jobs/{job['name']}",
                "studio-data.png": "/studio/data/employees/versions/1",
            }
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(f"{server.url}/studio/signin")
                page.fill("#token", server.token)
                page.click("#signin-form button[type=submit]")
                page.wait_for_load_state()
                for name, path in pages.items():
                    page.goto(server.url + path)
                    page.wait_for_load_state("networkidle")
                    if page.query_selector("#charts"):
                        page.wait_for_selector("figure.chart[data-points] canvas")
                    if name == "studio-run.png":
                        page.click("#artifact-list >> text=config.json")
                        page.wait_for_selector("#artifact-preview pre")
                    time.sleep(0.3)  # the last frame painted
                    page.screenshot(path=str(out / name))
                    print(f"screenshots: {out / name}")
                browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images")))
