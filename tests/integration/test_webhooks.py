"""mlyard's webhooks against a real server and a real local receiver.

Signed deliveries verify with the secret; a receiver that fails twice then succeeds gets the event
once, after three attempts in the delivery log; a disabled webhook gets nothing; filters pick the
model; bad input creates nothing; the secret is never shown; a pending retry survives a restart.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlyard.automation.delivery import Sender
from mlyard.automation.dispatcher import WebhookDispatcher
from mlyard.automation.signatures import verify_signature
from mlyard.automation.webhooks import WebhookService, pending_count
from mlyard.client import MlyardClient
from mlyard.core.errors import InvalidRequestError, NotFoundError
from mlyard.store.db import Database
from mlyard.store.events import append_event
from tests.support.receiver import Receiver
from tests.support.server import ServerProcess, free_port, run_cli

SECRET = "whsec-do-not-print-7f3a9c"


def _start(ws: Path, **env: str) -> ServerProcess:
    proc = ServerProcess(ws, free_port()).init()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        return proc.start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Retries come after 50 ms (doubled each time), so the retry test waits well under a second."""
    proc = _start(tmp_path_factory.mktemp("hooks") / "workspace", MLYARD_WEBHOOK_BACKOFF_S="0.05")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def client(server: ServerProcess) -> Iterator[MlyardClient]:
    with MlyardClient(server.url, server.token) as c:
        yield c


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _model_version(client: MlyardClient, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.bin").write_bytes(uuid.uuid4().bytes)
    client.models.create({"name": name, "type": "custom_model", "path": str(folder)})


def _settled(client: MlyardClient, hook: str) -> list[dict[str, Any]]:
    """The delivery log once no attempt is pending (the last result is written just after the answer)."""
    while True:
        attempts = client.webhooks.deliveries(hook, limit=1000)
        if not any(a["state"] == "pending" for a in attempts):
            return attempts
        time.sleep(0.02)


def _body(received: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(received.body)
    return result


def test_deliveries_are_signed_and_verify(client: MlyardClient, receiver: Receiver, tmp_path: Path) -> None:
    model = _name("signed")
    hook = client.webhooks.create(name=_name("signed"), url=receiver.url("/signed"), events=["model.version_created"],
                                  filters={"model_name": model}, secret=SECRET)
    _model_version(client, tmp_path / "m", model)

    [got] = receiver.wait_for("/signed", lambda rs: len(rs) == 1)
    body = _body(got)
    assert body["type"] == "model.version_created" and body["subject"] == f"{model}:1"
    assert body["webhook"] == hook["id"] and body["actor"] == "admin"
    assert got.header("X-Mlyard-Event") == "model.version_created"
    timestamp, signature = got.header("X-Mlyard-Timestamp"), got.header("X-Mlyard-Signature")
    assert signature is not None and signature.startswith("v1=")
    assert verify_signature(SECRET, got.body, timestamp, signature)
    assert not verify_signature("another-secret", got.body, timestamp, signature)
    assert not verify_signature(SECRET, got.body + b" ", timestamp, signature)  # a changed body
    assert not verify_signature(SECRET, got.body, timestamp, signature, now=int(timestamp or 0) + 301)  # a replay

    [attempt] = _settled(client, hook["id"])
    assert attempt["delivery_id"] == got.header("X-Mlyard-Delivery")
    assert (attempt["state"], attempt["status_code"], attempt["attempt"]) == ("succeeded", 200, 1)


def test_failing_twice_then_succeeding_is_acknowledged_once_after_three_attempts(
        client: MlyardClient, receiver: Receiver, tmp_path: Path) -> None:
    model = _name("flaky")
    receiver.script("/flaky", 500, 503)
    hook = client.webhooks.create(name=_name("flaky"), url=receiver.url("/flaky"), events=["model.version_created"],
                                  filters={"model_name": model}, secret=SECRET)
    _model_version(client, tmp_path / "m", model)

    got = receiver.wait_for("/flaky", lambda rs: any(r.status == 200 for r in rs))
    attempts = _settled(client, hook["id"])
    assert [r.status for r in got] == [500, 503, 200]
    assert len({r.header("X-Mlyard-Delivery") for r in got}) == 1  # one delivery, three attempts
    assert len({r.body for r in got}) == 1
    assert all(verify_signature(SECRET, r.body, r.header("X-Mlyard-Timestamp"), r.header("X-Mlyard-Signature"))
               for r in got)
    log = [(a["attempt"], a["state"], a["status_code"]) for a in reversed(attempts)]
    assert log == [(1, "failed", 500), (2, "failed", 503), (3, "succeeded", 200)]
    assert "HTTP 500" in (attempts[-1]["error"] or "")
    assert len(receiver.on("/flaky")) == 3  # nothing pending: no fourth attempt will come


def test_a_client_error_is_not_retried(client: MlyardClient, receiver: Receiver, tmp_path: Path) -> None:
    model = _name("refused")
    receiver.script("/refused", 410)
    hook = client.webhooks.create(name=_name("refused"), url=receiver.url("/refused"),
                                  events=["model.version_created"], filters={"model_name": model})
    _model_version(client, tmp_path / "m", model)
    receiver.wait_for("/refused", lambda rs: len(rs) == 1)
    attempts = _settled(client, hook["id"])
    assert [(a["state"], a["status_code"]) for a in attempts] == [("gave_up", 410)]


def test_disabled_webhooks_get_nothing_and_filters_pick_the_model(
        client: MlyardClient, receiver: Receiver, tmp_path: Path) -> None:
    wanted, other = _name("wanted"), _name("other")
    disabled = client.webhooks.create(name=_name("off"), url=receiver.url("/off"), events=["*"], status="DISABLED")
    client.webhooks.create(name=_name("filtered"), url=receiver.url("/filtered"), events=["model.*"],
                           filters={"model_name": wanted})
    _model_version(client, tmp_path / "o", other)
    _model_version(client, tmp_path / "w", wanted)

    # model.* brings the new model and its first version; the other model's events are filtered out
    got = receiver.wait_for("/filtered", lambda rs: any(_body(r)["type"] == "model.version_created" for r in rs))
    assert [(_body(r)["type"], _body(r)["subject"]) for r in got] == [
        ("model.created", wanted), ("model.version_created", f"{wanted}:1")]
    # the same pass read the events for every webhook: a disabled one was given none
    assert receiver.on("/off") == []
    assert client.webhooks.deliveries(disabled["id"]) == []

    # enabled again, it receives what happens from then on, not what it missed
    client.webhooks.update(disabled["id"], status="ACTIVE", events=["model.version_created"])
    _model_version(client, tmp_path / "w2", wanted)
    [got_later] = receiver.wait_for("/off", lambda rs: len(rs) == 1)
    assert _body(got_later)["subject"] == f"{wanted}:2"


@pytest.mark.parametrize(("url", "says"), [
    ("ftp://example.com/hook", "must start with http:// or https://"),
    ("file:///etc/passwd", "must start with http:// or https://"),
    ("example.com/hook", "must start with http:// or https://"),
    ("http:///no-host", "has no host name"),
    ("http://example.com/a b", "without spaces"),
    ("http://example.com:99999/", "not a valid address"),
])
def test_a_url_that_is_not_http_is_refused_and_nothing_is_created(client: MlyardClient, url: str, says: str) -> None:
    name = _name("bad-url")
    with pytest.raises(InvalidRequestError) as caught:
        client.webhooks.create(name=name, url=url, events=["model.version_created"])
    assert says in caught.value.message and caught.value.details.get("field") == "url"
    assert name not in [h["name"] for h in client.webhooks.list()]


@pytest.mark.parametrize(("fields", "field"), [
    ({"events": ["model.nope"]}, "events"),
    ({"events": []}, "events"),
    ({"filters": {"colour": "red"}}, "filters.colour"),
    ({"name": "bad name!"}, "name"),
])
def test_other_bad_input_names_its_field(client: MlyardClient, fields: dict[str, Any], field: str) -> None:
    spec: dict[str, Any] = {"name": _name("bad"), "url": "http://127.0.0.1:9/x", "events": ["model.*"], **fields}
    with pytest.raises(InvalidRequestError) as caught:
        client.webhooks.create(**spec)
    assert caught.value.details.get("field") == field
    assert spec["name"] not in [h["name"] for h in client.webhooks.list()]


def test_the_secret_is_never_shown(server: ServerProcess, client: MlyardClient, receiver: Receiver) -> None:
    name = _name("secret")
    created = client.webhooks.create(name=name, url=receiver.url("/secret"), events=["model.*"], secret=SECRET)
    assert created["signed"] is True
    env = server.env() | {"HOOK_SECRET": SECRET}
    outputs = [json.dumps(created), json.dumps(client.webhooks.get(name)), json.dumps(client.webhooks.list())]
    for args in (["list"], ["list", "-o", "json"], ["show", "-n", name], ["show", "-n", name, "-o", "json"],
                 ["test", "-n", name], ["deliveries", "-n", name, "-o", "json"]):
        outputs.append(run_cli("webhook", *args, env=env).stdout)
    refused = run_cli("webhook", "update", "-n", name, "--url", "gopher://x", "--secret-env", "HOOK_SECRET", env=env,
                      check=False)
    assert refused.returncode == 1 and "gopher" in refused.stderr
    outputs += [refused.stdout, refused.stderr, server.log_path.read_text()]
    assert not [o for o in outputs if SECRET in o]
    # a test delivery is signed with it all the same
    sent = receiver.on("/secret")[-1]
    assert verify_signature(SECRET, sent.body, sent.header("X-Mlyard-Timestamp"), sent.header("X-Mlyard-Signature"))


def test_cli_create_test_deliveries_delete(server: ServerProcess, receiver: Receiver) -> None:
    name = _name("cli")
    env = server.env() | {"HOOK_SECRET": SECRET}
    created = run_cli("webhook", "create", "-n", name, "--url", receiver.url("/cli"),
                      "--event", "model.version_created", "--event", "job.*", "--filter", "model_name=x",
                      "--secret-env", "HOOK_SECRET", "--description", "CI", "-o", "json", env=env)
    hook = json.loads(created.stdout)
    assert (hook["events"], hook["filters"], hook["signed"]) == (["model.version_created", "job.*"],
                                                                 {"model_name": "x"}, True)
    tested = run_cli("webhook", "test", "-n", name, "-o", "json", env=env)
    assert json.loads(tested.stdout)["success"] is True
    sent = receiver.on("/cli")[-1]
    assert _body(sent)["test"] is True and _body(sent)["type"] == "model.version_created"
    table = run_cli("webhook", "deliveries", "--id", hook["id"], env=env).stdout
    assert "succeeded" in table and "test" in table and "200" in table
    unsigned = run_cli("webhook", "create", "-n", _name("unsigned"), "--url", receiver.url("/u"), "--event", "*",
                       env=env)
    assert "not signed" in unsigned.stderr
    run_cli("webhook", "delete", "-n", name, "-y", env=env)
    gone = run_cli("webhook", "show", "-n", name, env=env, check=False)
    assert gone.returncode == 1 and "not found" in gone.stderr and "Traceback" not in gone.stderr


def test_a_test_delivery_to_an_unreachable_receiver_says_why(client: MlyardClient) -> None:
    hook = client.webhooks.create(name=_name("down"), url=f"http://127.0.0.1:{free_port()}/x", events=["*"])
    result = client.webhooks.test(hook["id"])
    assert result["success"] is False and "cannot reach the receiver" in (result["error"] or "")
    with pytest.raises(NotFoundError):
        client.webhooks.test("no-such-webhook")


def test_a_pending_retry_survives_a_restart(tmp_path: Path) -> None:
    """The receiver is down when the event happens and the server stops; the restarted server delivers it."""
    proc = _start(tmp_path / "workspace", MLYARD_WEBHOOK_BACKOFF_S="0.2", MLYARD_WEBHOOK_MAX_ATTEMPTS="30")
    try:
        with Receiver() as receiver, MlyardClient(proc.url, proc.token) as client:
            receiver.script("/later", *[503] * 1000)
            hook = client.webhooks.create(name="later", url=receiver.url("/later"), events=["model.version_created"],
                                          secret=SECRET)
            _model_version(client, tmp_path / "m", "restarted")
            receiver.wait_for("/later", lambda rs: len(rs) >= 2)
            proc.stop()
            receiver.script("/later")  # back up while the server is down
            before = len(receiver.on("/later"))
            proc.start()
            got = receiver.wait_for("/later", lambda rs: any(r.status == 200 for r in rs))
            assert all(r.status == 503 for r in got[:before]) and got[-1].status == 200
            assert len({r.header("X-Mlyard-Delivery") for r in got}) == 1
            assert _body(got[-1])["subject"] == "restarted:1"
            attempts = _settled(client, hook["id"])
            assert attempts[0]["state"] == "succeeded" and attempts[0]["attempt"] == len(got)
    finally:
        proc.stop()


def test_the_api_refuses_unknown_fields(server: ServerProcess) -> None:
    r = httpx.post(f"{server.url}/api/v1/webhooks", headers=server.headers(),
                   json={"name": "x", "url": "http://a/", "events": ["*"], "colour": "red"})
    assert r.status_code == 400 and "colour" in r.json()["error"]["message"]


class _NoRegistry:
    def model(self, name: str) -> None:
        return None

    def version(self, name: str, version: str) -> None:
        return None


def test_two_servers_on_one_store_deliver_each_event_once(db: Database) -> None:
    """Two dispatchers (as two servers on one PostgreSQL store would run) share the work, never a delivery;
    the receiver fails its first three answers, so retries are claimed and recorded on both backends too."""
    senders = [Sender(timeout_s=5, backoff_s=0.05, max_attempts=5) for _ in range(2)]
    dispatchers = [WebhookDispatcher(db, sender, _NoRegistry()) for sender in senders]
    with Receiver() as receiver:
        receiver.script("/two", 503, 500, 429)
        hook = WebhookService(db, senders[0]).create(name="two", url=receiver.url("/two"), events=["model.*"],
                                                     secret=SECRET, actor="test")
        for dispatcher in dispatchers:
            dispatcher.start()
        try:
            for first in range(0, 300, 10):
                db.run_in_transaction(lambda s, first=first: [
                    append_event(s, "model.version_created", f"m:{i}", "test") for i in range(first, first + 10)])
            receiver.wait_for("/two", lambda rs: len([r for r in rs if r.status == 200]) >= 300)
            while pending_count(db, hook.id):
                time.sleep(0.02)
        finally:
            for dispatcher in dispatchers:
                dispatcher.stop()
            for sender in senders:
                sender.close()
    acknowledged = [r for r in receiver.on("/two") if r.status == 200]
    subjects = [_body(r)["subject"] for r in acknowledged]
    assert sorted(subjects, key=lambda x: int(x[2:])) == [f"m:{i}" for i in range(300)]  # each once
    assert len({r.header("X-Mlyard-Delivery") for r in acknowledged}) == 300
    assert len(receiver.on("/two")) == 303
    log = WebhookService(db, senders[0]).deliveries(hook.id, limit=1000)
    assert sorted(a.state for a in log if a.state != "succeeded") == ["failed"] * 3
    assert len([a for a in log if a.state == "succeeded"]) == 300
