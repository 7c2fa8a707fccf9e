"""The studio in a real headless Chromium against a real server: sign in, filter runs, a run's charts and
artifacts, compare, a model's lineage to its job, a pipeline's live steps and log, MLflow's printed links."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.studio.conftest import sign_in
from tests.studio.seed import EVIL, MODEL, Seeded, log_runs, submit_pipeline
from tests.support.jobs import TERMINAL, wait_until
from tests.support.server import ServerProcess, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def seeded(server: ServerProcess) -> Seeded:
    return log_runs(server)


@pytest.fixture(scope="module")
def pipeline(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A finished run of the tiny pipeline (its train step registered studio-model version 1)."""
    import httpx

    job = submit_pipeline(server, tmp_path_factory.mktemp("pipeline"), lines=2, step=0.05)

    def done() -> bool:
        status = httpx.get(f"{server.url}/api/v1/jobs/{job['name']}", headers=server.headers()).json()["status"]
        return status in TERMINAL

    wait_until(done, f"pipeline {job['name']} ends", 180)
    shown: dict[str, Any] = httpx.get(f"{server.url}/api/v1/jobs/{job['name']}", headers=server.headers()).json()
    assert shown["status"] == "Completed", shown
    return shown


def until(page: Any, expression: str, timeout: float = 30) -> None:
    """Wait until a script expression is true on the page (evaluated by the devtools protocol: the studio's
    Content-Security-Policy forbids the eval that Playwright's wait_for_function polls with)."""
    wait_until(lambda: bool(page.evaluate(expression)), expression, timeout)


def rows(page: Any) -> list[str]:
    return [r.inner_text() for r in page.query_selector_all("#runs-table tbody tr")]


def test_sign_in_then_filter_runs_with_a_search_expression(page: Any, server: ServerProcess, seeded: Seeded) -> None:
    page.goto(f"{server.url}/studio/experiments/{seeded.experiment_id}")
    assert "/studio/signin" in page.url  # no session: the sign-in page, which comes back here after
    page.fill("#token", "not-the-token")
    page.click("#signin-form button[type=submit]")
    assert "not valid" in page.inner_text("[role=alert]")
    page.fill("#token", server.token)
    page.click("#signin-form button[type=submit]")
    page.wait_for_url(re.compile(rf"/studio/experiments/{seeded.experiment_id}$"))
    assert len(rows(page)) == 5

    page.fill("#filter", "params.model = 'rf' and metrics.accuracy > 0.5")
    page.press("#filter", "Enter")
    page.wait_for_url(re.compile(r"filter="))
    shown = rows(page)
    assert len(shown) == 2 and all("rf" in r for r in shown), shown
    assert page.input_value("#filter") == "params.model = 'rf' and metrics.accuracy > 0.5"

    page.fill("#filter", "params.model >> 'rf'")
    page.press("#filter", "Enter")
    assert "Invalid comparator '>>'" in page.inner_text("#filter-error")  # the grammar's own message

    # sorting on a metric column, on the server: ascending loss puts the lowest first
    page.goto(f"{server.url}/studio/experiments/{seeded.experiment_id}?sort=metrics.loss&asc=true")
    first = page.query_selector("#runs-table tbody tr td:nth-child(2)").inner_text()
    assert first == "rf-depth-2"


def test_a_run_page_draws_its_metric_charts_and_previews_artifacts(page: Any, server: ServerProcess,
                                                                   seeded: Seeded) -> None:
    sign_in(page, server, f"/studio/runs/{seeded.run_ids[0]}")
    chart = page.wait_for_selector("figure.chart[data-metric=loss][data-points] canvas")
    assert chart.bounding_box()["width"] > 100
    assert page.get_attribute("figure.chart[data-metric=loss]", "data-points") == "20"
    page.select_option("#xaxis", "time")
    page.wait_for_selector("figure.chart[data-metric=accuracy][data-points] canvas")
    page.fill("#smoothing", "0.8")
    page.dispatch_event("#smoothing", "input")
    page.wait_for_selector("figure.chart[data-metric=loss] canvas")

    page.click("#artifact-list >> text=config.json")
    page.wait_for_selector("#artifact-preview pre.file-text")
    assert '"max_depth": 2' in page.inner_text("#artifact-preview")
    page.click("#artifact-list >> text=data/")
    page.click("#artifact-list >> text=sample.csv")
    page.wait_for_selector("#artifact-preview table.preview-table")
    assert page.inner_text("#artifact-preview th:first-child") == "age"
    page.click("#artifact-list >> text=..")
    page.click("#artifact-list >> text=curves/")
    page.click("#artifact-list >> text=preview.png")
    image = page.wait_for_selector("#artifact-preview img")
    until(page, "document.querySelector('#artifact-preview img')?.naturalWidth > 0")
    assert image.evaluate("img => img.naturalWidth") == 64


def test_compare_two_runs(page: Any, server: ServerProcess, seeded: Seeded) -> None:
    sign_in(page, server, f"/studio/experiments/{seeded.experiment_id}")
    page.check(f"input[name=runs][value='{seeded.run_ids[0]}']")
    page.check(f"input[name=runs][value='{seeded.run_ids[1]}']")
    page.click("#compare-button")
    page.wait_for_url(re.compile(r"/studio/compare\?"))
    params = page.inner_text("#compare-params")
    assert "rf-depth-2" in params and "rf-depth-3" in params
    assert page.query_selector("#compare-params tr.differs td:text-is('max_depth')") is not None
    assert page.query_selector("#compare-params tr.same td:text-is('n_estimators')") is None  # they differ too
    page.wait_for_selector("figure.chart[data-metric=loss][data-points] canvas")
    legend = page.inner_text("figure.chart[data-metric=loss] .u-legend")
    assert "rf-depth-2" in legend and "rf-depth-3" in legend  # both runs' curves, overlaid
    lines = page.query_selector_all("#parallel svg polyline")  # parallel coordinates: a line per run
    assert sorted(line.get_attribute("data-run") for line in lines) == sorted(seeded.run_ids[:2])
    assert "max_depth" in page.inner_text("#parallel") and "accuracy" in page.inner_text("#parallel")
    page.check("#only-diff")
    assert page.is_visible("#compare-params tr.differs")


def test_a_param_holding_html_is_shown_not_run(page: Any, server: ServerProcess, seeded: Seeded) -> None:
    sign_in(page, server, f"/studio/runs/{seeded.evil_run_id}")
    assert EVIL in page.inner_text("#params")
    assert page.evaluate("window.__studio_pwned") is None
    page.goto(f"{server.url}/studio/experiments/{seeded.experiment_id}")
    assert page.evaluate("window.__studio_pwned") is None


def test_a_models_lineage_leads_to_its_job_and_pipeline(page: Any, server: ServerProcess,
                                                       pipeline: dict[str, Any]) -> None:
    sign_in(page, server, "/studio/models")
    page.click(f"text={MODEL}")
    page.click("text=v1")
    page.wait_for_selector("#lineage")
    train = next(s for s in pipeline["steps"] if s["step"] == "train")
    assert page.inner_text("#lineage-pipeline") == "studio-pipeline"
    page.click("#lineage-job")
    page.wait_for_url(re.compile(rf"/studio/jobs/{train['name']}$"))
    assert "Completed" in page.inner_text("#job-state")
    until(page, "document.querySelector('#job-log')?.dataset?.done === 'true'")
    assert "train: registered" in page.inner_text("#job-log")
    page.click(f"#job-status a[href='/studio/runs/{train['name']}']")  # the job's run, with the loss it logged
    page.wait_for_url(re.compile(rf"/studio/runs/{train['name']}$"))
    page.wait_for_selector("figure.chart[data-metric=loss][data-points] canvas")


def test_a_running_pipelines_steps_change_status_and_its_log_grows(page: Any, server: ServerProcess,
                                                                    tmp_path: Path) -> None:
    import httpx

    job = submit_pipeline(server, tmp_path, lines=40, step=0.25)

    def steps() -> dict[str, dict[str, Any]]:
        shown = httpx.get(f"{server.url}/api/v1/jobs/{job['name']}", headers=server.headers()).json()
        return {s["step"]: s for s in shown["steps"]}

    wait_until(lambda: steps()["prep"]["status"] == "Running", "the prep step runs", 120)
    sign_in(page, server, f"/studio/jobs/{job['name']}")
    page.evaluate("window.__same_page = true")  # to see that nothing below reloads the page
    assert "Running" in page.inner_text("[data-step=prep] .status")
    assert "Completed" not in page.inner_text("[data-step=train] .status")

    log_page = page.context.new_page()
    log_page.goto(f"{server.url}/studio/jobs/{steps()['prep']['name']}")
    until(log_page, "document.querySelector('#job-log')?.textContent?.includes('line 2 of')")
    before = len(log_page.inner_text("#job-log"))
    until(log_page, f"document.querySelector('#job-log')?.textContent?.length > {before}")
    until(log_page, "document.querySelector('#job-log')?.textContent?.includes('prep: done')", 120)
    log_page.close()

    until(page, "document.querySelector('[data-step=train] .status')?.textContent === 'Completed'", 180)
    assert "Completed" in page.inner_text("[data-step=prep] .status")
    assert page.evaluate("window.__same_page") is True
    until(page, "document.querySelector('#job-state')?.textContent?.includes('Completed')")


def test_an_mlflow_view_run_link_lands_on_the_run(page: Any, server: ServerProcess, seeded: Seeded) -> None:
    script = (f"import mlflow; mlflow.set_tracking_uri({server.url!r}); mlflow.set_experiment('studio-links')\n"
              "with mlflow.start_run(run_name='linked') as r:\n    mlflow.log_metric('m', 1)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**server.env(), "MLFLOW_TRACKING_TOKEN": server.token, "PATH": "/usr/bin:/bin"})
    printed = out.stdout + out.stderr
    link = re.search(r"View run linked at: (\S+)", printed)
    assert link, printed
    sign_in(page, server)
    page.goto(link.group(1))
    page.wait_for_url(re.compile(r"/studio/runs/\w+$"))
    assert "linked" in page.inner_text("h1")
    experiment = re.search(r"View experiment at: (\S+)", printed)
    assert experiment
    page.goto(experiment.group(1))
    page.wait_for_url(re.compile(r"/studio/experiments/\d+$"))
    assert "studio-links" in page.inner_text("h1")


def test_mlyard_studio_opens_signed_in_with_a_one_time_link(page: Any, server: ServerProcess,
                                                            seeded: Seeded) -> None:
    link = run_cli("studio", "--no-browser", "/studio/jobs", env=server.env()).stdout.strip()
    assert server.token not in link and "#code=" in link
    page.goto(link)
    page.wait_for_url(re.compile(r"/studio/jobs$"))
    assert page.is_visible("#jobs-table")
    other = page.context.browser.new_context()
    try:  # the link signed in once; a second browser gets the sign-in page, saying why
        again = other.new_page()
        again.goto(link)
        again.wait_for_selector("[role=alert]")
        assert "used or expired" in again.inner_text("[role=alert]")
    finally:
        other.close()


def test_cancel_a_running_pipeline_from_its_page(page: Any, server: ServerProcess, tmp_path: Path) -> None:
    import httpx

    job = submit_pipeline(server, tmp_path, lines=600, step=0.2)
    url = f"{server.url}/api/v1/jobs/{job['name']}"
    wait_until(lambda: httpx.get(url, headers=server.headers()).json()["steps"][0]["status"] == "Running",
               "the prep step runs", 120)
    sign_in(page, server, f"/studio/jobs/{job['name']}")
    page.click("#cancel-job")
    page.wait_for_url(re.compile(rf"/studio/jobs/{job['name']}$"))
    until(page, "document.querySelector('#job-state')?.textContent?.includes('Canceled')", 60)
    assert page.query_selector("#cancel-job") is None
    assert httpx.get(url, headers=server.headers()).json()["status"] == "Canceled"
