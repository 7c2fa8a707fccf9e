"""The studio's doors: no session, no page (a redirect to sign-in) and no JSON (401); CSRF on every post; the
token never in a log or a URL; the API's bearer check unchanged; bad input answered with a page, not a trace."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import APIRoute

from mlyard.server.studio import asset_pages, job_pages, signin, tracking_pages
from tests.studio.seed import log_runs
from tests.support.server import ServerProcess, run_cli

PUBLIC = {"/", "/studio", "/studio/signin"}  # the root only maps MLflow's links; it shows nothing


def studio_routes() -> list[tuple[str, str]]:
    """Every studio route of the app, as (method, path with its parameters filled in)."""
    found = []
    for route in [r for m in (signin, tracking_pages, asset_pages, job_pages) for r in m.router.routes]:
        if isinstance(route, APIRoute):
            for method in sorted(route.methods - {"HEAD"}):
                found.append((method, re.sub(r"\{[^}]+\}", "x", route.path)))
    return found


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as c:
        yield c


def sign_in(client: httpx.Client, token: str) -> str:
    page = client.get("/studio/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    answer = client.post("/studio/signin", data={"csrf": csrf, "token": token, "next": "/studio/jobs"})
    assert answer.status_code == 303, answer.text
    return answer.headers["set-cookie"]


def session_csrf(client: httpx.Client) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/studio/jobs").text).group(1)  # type: ignore[union-attr]


def test_without_a_session_pages_redirect_to_sign_in_and_json_calls_are_401(client: httpx.Client) -> None:
    routes = studio_routes()
    assert len(routes) > 15
    for method, path in routes:
        if path in PUBLIC:
            continue
        answer = client.request(method, path, params={"key": "k", "path": "p", "runs": ["a", "b"]})
        if path.startswith("/studio/api/"):
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "unauthenticated"
        else:
            assert answer.status_code == 303, (method, path, answer.status_code)
            assert answer.headers["location"].startswith("/studio/signin?next="), (method, path)
    # a forged or stale cookie is no session either
    client.cookies.set("mlyard_studio", "forged")
    assert client.get("/studio/experiments").status_code == 303
    assert client.get("/studio/api/jobs/x/log").status_code == 401


def test_the_session_cookie_is_httponly_and_samesite_strict_and_not_an_api_credential(
        client: httpx.Client, server: ServerProcess) -> None:
    cookie = sign_in(client, server.token)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert client.get("/studio/jobs").status_code == 200
    assert client.get("/api/v1/jobs").status_code == 401  # the API still wants its bearer token
    assert httpx.get(f"{server.url}/api/v1/jobs", headers=server.headers()).status_code == 200


def test_posts_need_the_sessions_csrf_token(client: httpx.Client, server: ServerProcess) -> None:
    sign_in(client, server.token)
    for data in ({}, {"csrf": "stale"}):
        refused = client.post("/studio/jobs/nope/cancel", data=data)
        assert refused.status_code == 403 and "CSRF" in refused.text
        refused = client.post("/studio/signout", data=data)
        assert refused.status_code == 403
    csrf = session_csrf(client)
    assert client.post("/studio/jobs/nope/cancel", data={"csrf": csrf}).status_code == 404  # past CSRF: no job
    assert client.post("/studio/jobs/nope/cancel", headers={"X-CSRF-Token": csrf}).status_code == 404  # htmx's way
    # the sign-in form has its own token, tied to a cookie the sign-in page set
    fresh = httpx.post(f"{server.url}/studio/signin", data={"csrf": "guess", "token": server.token})
    assert fresh.status_code == 401 and "mlyard_studio=" not in fresh.headers.get("set-cookie", "")
    # signing out ends the session
    assert client.post("/studio/signout", data={"csrf": csrf}).status_code == 303
    assert client.get("/studio/jobs").status_code == 303


def test_the_token_and_the_sign_in_code_never_land_in_the_server_log(client: httpx.Client,
                                                                     server: ServerProcess) -> None:
    sign_in(client, server.token)
    client.get("/studio/experiments")
    link = run_cli("studio", "--no-browser", env=server.env()).stdout.strip()
    code = link.split("#code=", 1)[1]
    other = httpx.Client(base_url=server.url, follow_redirects=False)
    page = other.get(link.split("#", 1)[0])  # what a browser sends for the link: never the fragment
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert other.post("/studio/signin", data={"csrf": csrf, "code": code}).status_code == 303
    assert other.get("/studio/jobs").status_code == 200
    again = other.post("/studio/signin", data={"csrf": csrf, "code": code})
    assert again.status_code in (303, 401)  # the pre-sign-in cookie is gone: refused either way
    assert "mlyard_studio=" not in again.headers.get("set-cookie", "") or again.status_code == 401
    other.close()
    log = server.log_path.read_text()
    assert "Application startup complete" in log  # the log holds what the server wrote
    assert server.token not in log
    assert code not in log


def test_bad_input_gets_a_page_that_says_what_is_wrong(client: httpx.Client, server: ServerProcess) -> None:
    seeded = log_runs(server, experiment="studio-bad-input", count=1)
    sign_in(client, server.token)
    missing = client.get("/studio/experiments/123456")
    assert missing.status_code == 404 and "no experiment with id" in missing.text
    assert "Traceback" not in missing.text and "<html" in missing.text
    assert client.get("/studio/experiments/not-a-number").status_code == 404
    too_few = client.get("/studio/compare", params={"runs": seeded.run_ids[0]})
    assert too_few.status_code == 400 and "2 to 10 runs" in too_few.text
    escape = client.get(f"/studio/runs/{seeded.run_ids[0]}/artifacts", params={"path": "../../../etc/passwd"})
    assert escape.status_code == 400 and "may not contain" in escape.text
    bad_size = client.get(f"/studio/experiments/{seeded.experiment_id}", params={"size": "0"})
    assert bad_size.status_code == 400 and "size" in bad_size.text
    bad_page = client.get(f"/studio/experiments/{seeded.experiment_id}", params={"page": "!!"})
    assert bad_page.status_code == 400 and "page_token" in bad_page.text
    json_missing = client.get("/studio/api/runs/nope/metrics", params={"key": "loss"})
    assert json_missing.status_code == 404 and json_missing.json()["error"]["code"] == "not_found"
    assert client.get("/studio/models/nope").status_code == 404
    assert client.get("/studio/data/nope/versions/1").status_code == 404
    assert client.get("/studio/jobs/nope").status_code == 404
    assert client.get("/healthz").status_code == 200  # and the server is still up


def test_pages_carry_a_content_security_policy_without_inline_script(client: httpx.Client,
                                                                     server: ServerProcess) -> None:
    sign_in(client, server.token)
    page = client.get("/studio/experiments")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src", 1)[1].split(";")[0]
    assert page.headers["x-frame-options"] == "DENY"
    root = client.get("/")
    assert root.status_code == 200 and "/studio/static/root.js" in root.text
