"""The studio's automation pages in a real browser and over plain HTTP: re-run a job from its page; a schedule's
list, next firings, catch-up rule and enable/disable; the event log filling live; a monitor run's alerts, job and
sandboxed report; no session, no page; CSRF on every post; user text escaped."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from mlyard.server.studio import automation_pages, batch_pages, monitor_pages, trigger_pages
from tests.integration.test_monitors import MONITOR
from tests.studio.conftest import sign_in
from tests.studio.seed import EVIL
from tests.support.jobs import CURATED, TERMINAL, JobYard, wait_until, write
from tests.support.server import ServerProcess

SCHEDULE = "studio-nightly"


def api(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers(), timeout=60)


@pytest.fixture(scope="module")
def schedule(server: ServerProcess) -> dict[str, Any]:
    """A daily schedule (it never fires during the tests) whose description holds HTML."""
    spec = {"name": SCHEDULE, "description": EVIL,
            "trigger": {"type": "recurrence", "frequency": "day", "interval": 1,
                        "schedule": {"hours": [3], "minutes": [30]}, "time_zone": "Europe/Paris"},
            "create_job": {"type": "command", "command": "echo nightly", "environment": CURATED}}
    with api(server) as c:
        answer = c.post("/api/v1/schedules", json={"spec": spec})
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_rerun_a_job_from_its_page_submits_its_spec_as_a_new_job(page: Any, server: ServerProcess) -> None:
    with api(server) as c:
        first = c.post("/api/v1/jobs", json={"spec": {"command": "echo again", "environment": CURATED},
                                             "display_name": "studio-rerun", "experiment_name": "studio-rerun"})
        assert first.status_code == 201, first.text
        name = first.json()["name"]
        wait_until(lambda: c.get(f"/api/v1/jobs/{name}").json()["status"] in TERMINAL, "the first job ends", 120)
        sign_in(page, server, f"/studio/jobs/{name}")
        page.click("#rerun-job")
        page.wait_for_url(re.compile(r"/studio/jobs/(?!" + re.escape(name) + r"$)[^/]+$"))
        new = page.url.rsplit("/", 1)[1]
        again = c.get(f"/api/v1/jobs/{new}").json()
        assert again["display_name"] == "studio-rerun" and again["experiment_name"] == "studio-rerun"
        assert again["created_by"] != "" and new != name
        wait_until(lambda: c.get(f"/api/v1/jobs/{new}").json()["status"] in TERMINAL, "the re-run ends", 120)
        assert c.get(f"/api/v1/jobs/{new}").json()["status"] == "Completed"


def test_schedules_list_and_page_with_next_firings_and_enable_disable(page: Any, server: ServerProcess,
                                                                      schedule: dict[str, Any]) -> None:
    sign_in(page, server, "/studio/schedules")
    row = page.inner_text(f"#schedules-table tr:has(a:text-is('{SCHEDULE}'))")
    assert "yes" in row and "every 1 day" in row and "Europe/Paris" in row
    page.click(f"text={SCHEDULE}")
    page.wait_for_url(re.compile(rf"/studio/schedules/{SCHEDULE}$"))
    assert page.locator("#next-firings tbody tr").count() == 5
    first = page.inner_text("#next-firings tbody tr >> nth=0")
    assert "03:30:00 CE" in first  # the zone's clock: CET or CEST
    assert "at most one catch-up" in page.inner_text("#catch-up-rule")
    assert EVIL in page.inner_text("main") and page.evaluate("window.__studio_pwned") is None
    page.click("#toggle-schedule")
    page.wait_for_url(re.compile(rf"/studio/schedules/{SCHEDULE}$"))
    assert page.inner_text("#schedule-enabled") == "no"
    assert "None while disabled" in page.inner_text("#next-firings")
    page.click("#toggle-schedule")
    page.wait_for_url(re.compile(rf"/studio/schedules/{SCHEDULE}$"))
    assert page.inner_text("#schedule-enabled") == "yes"
    with api(server) as c:
        assert c.get(f"/api/v1/schedules/{SCHEDULE}").json()["is_enabled"] is True


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as c:
        yield c


def test_without_a_session_the_new_pages_redirect_and_posts_need_csrf(client: httpx.Client,
                                                                      server: ServerProcess,
                                                                      schedule: dict[str, Any]) -> None:
    routes = [(m, re.sub(r"\{[^}]+\}", SCHEDULE, r.path))
              for r in [*automation_pages.router.routes, *monitor_pages.router.routes, *batch_pages.router.routes,
                        *trigger_pages.router.routes]
              if isinstance(r, APIRoute) for m in r.methods - {"HEAD"}]
    assert len(routes) >= 16
    for method, path in routes:
        answer = client.request(method, path)
        assert answer.status_code == 303, (method, path, answer.status_code)
        assert answer.headers["location"].startswith("/studio/signin?next="), (method, path)
    signin = client.get("/studio/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', signin.text).group(1)  # type: ignore[union-attr]
    signed = client.post("/studio/signin", data={"csrf": csrf, "token": server.token, "next": "/studio/"})
    assert signed.status_code == 303
    for method, path in routes:
        if method == "POST":
            answer = client.post(path, data={"csrf": "stale"})
            assert answer.status_code == 403, (path, answer.text)
            assert "CSRF" in answer.text and "Traceback" not in answer.text
    missing = client.get("/studio/schedules/no-such-schedule")
    assert missing.status_code == 404 and "no-such-schedule" in missing.text
    with api(server) as c:
        assert c.get(f"/api/v1/schedules/{SCHEDULE}").json()["is_enabled"] is True


def test_events_filtered_newest_first_and_new_ones_appended_live(page: Any, server: ServerProcess) -> None:
    job = "studio-live-events"
    sign_in(page, server, f"/studio/events?type=job.*&subject={job}")
    assert page.locator("#events-table tr[data-event]").count() == 0
    with api(server) as c:
        answer = c.post("/api/v1/jobs", json={"name": job, "spec": {"command": "echo live", "environment": CURATED}})
        assert answer.status_code == 201, answer.text
        wait_until(lambda: c.get(f"/api/v1/jobs/{job}").json()["status"] in TERMINAL, "the job ends", 120)
    wait_until(lambda: "Completed" in page.inner_text("#events-table"), "the events appear on the page", 30)
    ids = [int(x) for x in page.eval_on_selector_all("#events-table tr[data-event]",
                                                     "rows => rows.map(r => r.dataset.event)")]
    assert len(ids) >= 2 and ids == sorted(ids, reverse=True)  # newest first, each once
    assert len(set(ids)) == len(ids)
    assert page.inner_text("#events-table tr[data-event] >> nth=0").count("job.status_changed") == 1
    page.reload()
    assert [int(x) for x in page.eval_on_selector_all("#events-table tr[data-event]",
                                                      "rows => rows.map(r => r.dataset.event)")] == ids
    page.goto(f"{server.url}/studio/events?type=no.such")
    assert "not an event type" in page.inner_text("main")


def test_a_monitor_run_shows_its_alerts_job_and_a_sandboxed_report(page: Any, server: ServerProcess,
                                                                   tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"income": rng.normal(5000, 1200, 300).round(0),
                              "travel": rng.choice(["rarely", "often"], 300, p=[0.8, 0.2])})
    drifted = pd.DataFrame({"income": rng.normal(3000, 1200, 200).round(0),
                            "travel": rng.choice(["rarely", "often"], 200, p=[0.2, 0.8])})
    reference.to_csv(tmp_path / "reference.csv", index=False)
    drifted.to_csv(tmp_path / "production.csv", index=False)
    yard = JobYard(server, tmp_path)
    yard.cli("data", "create", "--name", "mon-reference", "--version", "1", "--type", "uri_file",
             "--path", "reference.csv")
    spec = MONITOR.replace("@NAME@", "studio-monitor").replace("@PRODUCTION@", "./production.csv")
    write(tmp_path / "monitor.yml", spec.replace("  alert_notification: {emails: [ops@example.com]}\n", ""))
    assert json.loads(yard.cli("monitor", "run", "-f", "monitor.yml", "-o", "json").stdout)["status"] == "alerted"
    job = json.loads(yard.cli("monitor", "show", "-n", "studio-monitor", "-o", "json").stdout)["runs"][0]["job"]
    sign_in(page, server, "/studio/monitors")
    row = page.inner_text("#monitors-table tr:has(a:text-is('studio-monitor'))")
    assert "features-drift" in row and "Completed" in row
    page.click("#monitors-table a:text-is('studio-monitor')")
    page.click(f"#monitor-runs a[href$='/runs/{job}']")
    page.wait_for_url(re.compile(rf"/studio/monitors/studio-monitor/runs/{job}$"))
    assert "features-drift" in page.inner_text("#run-alerts")
    assert page.get_attribute("#run-job", "href") == f"/studio/jobs/{job}"
    assert page.get_attribute("#report", "sandbox") == ""
    frame = page.frame_locator("#report")
    assert "income" in frame.locator("body").inner_text()
    report = page.context.request.get(f"{server.url}/studio/monitors/studio-monitor/runs/{job}/report.html")
    assert report.status == 200 and report.headers["content-security-policy"].startswith("sandbox; default-src 'none'")


def signed_client(client: httpx.Client, server: ServerProcess) -> httpx.Client:
    signin = client.get("/studio/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', signin.text).group(1)  # type: ignore[union-attr]
    assert client.post("/studio/signin", data={"csrf": csrf, "token": server.token, "next": "/"}).status_code == 303
    return client


def test_batch_endpoints_and_a_batch_jobs_progress_with_failed_files(client: httpx.Client,
                                                                     server: ServerProcess) -> None:
    with api(server) as c:
        made = c.post("/api/v1/batch-endpoints", json={"spec": {"name": "studio-batch", "description": EVIL}})
        assert made.status_code in (200, 201), made.text
        job = c.post("/api/v1/jobs", json={"spec": {"command": "echo scored", "environment": CURATED}}).json()["name"]
        wait_until(lambda: c.get(f"/api/v1/jobs/{job}").json()["status"] in TERMINAL, "the job ends", 120)
    progress = {"state": "completed", "reason": None, "workers": 2,
                "mini_batches": {"total": 4, "done": 3, "failed": 1, "retried": 1},
                "files": {"total": 2, "done": 1, "failed": 1}, "rows": 1234, "rows_per_s": 99.5, "elapsed_s": 1.0,
                "failed_files": [{"file": "bad.csv", "reason": "<b>unparsable</b>", "attempts": 3}]}
    (server.workspace / ".mlyard" / "jobs" / job / "batch-progress.json").write_text(json.dumps(progress))
    signed = signed_client(client, server)
    listing = signed.get("/studio/batch-endpoints")
    assert listing.status_code == 200 and "/studio/batch-endpoints/studio-batch" in listing.text
    page = signed.get("/studio/batch-endpoints/studio-batch")
    assert page.status_code == 200 and "&lt;script&gt;" in page.text and EVIL not in page.text
    shown = signed.get(f"/studio/jobs/{job}")
    assert "3 of 4 done, 1 failed, 1 retried" in shown.text and "1 of 2 done, 1 failed" in shown.text
    assert "bad.csv" in shown.text and "&lt;b&gt;unparsable&lt;/b&gt;" in shown.text
    assert signed.get("/studio/batch-endpoints/nope").status_code == 404


def test_triggers_and_webhooks_are_listed_and_a_secret_is_never_shown(client: httpx.Client,
                                                                       server: ServerProcess) -> None:
    secret = "studio-secret-never-shown-9f2"
    with api(server) as c:
        hook = c.post("/api/v1/webhooks", json={"name": "studio-hook", "url": "http://127.0.0.1:9/hook",
                                                "events": ["model.version_created"], "secret": secret,
                                                "description": EVIL})
        assert hook.status_code == 201, hook.text
        made = c.post("/api/v1/triggers", json={"spec": {
            "name": "studio-trigger", "description": EVIL,
            "event": {"type": "model.version_created", "subject": "no-such-model"},
            "create_job": {"command": "echo triggered", "environment": CURATED}}})
        assert made.status_code == 201, made.text
    signed = signed_client(client, server)
    listing = signed.get("/studio/triggers")
    assert "/studio/triggers/studio-trigger" in listing.text and "studio-hook" in listing.text
    page = signed.get("/studio/triggers/studio-trigger")
    assert page.status_code == 200 and "Not fired yet" in page.text and EVIL not in page.text
    shown = signed.get(f"/studio/webhooks/{hook.json()['id']}")
    assert shown.status_code == 200 and "set (never shown)" in shown.text and EVIL not in shown.text
    for text in (listing.text, page.text, shown.text):
        assert secret not in text
    assert signed.get("/studio/triggers/nope").status_code == 404
