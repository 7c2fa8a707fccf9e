"""The attrition example's automation files: the nightly schedule and the two triggers validate as
``mlyard validate`` reads them, and the webhook receiver accepts signed, recent deliveries only."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from click.testing import CliRunner

from mlyard.automation.trigger_rules import EventView, matches, triggered_job
from mlyard.cli.main import cli
from mlyard.specs import load_spec

ROOT = Path(__file__).resolve().parents[2] / "examples" / "attrition" / "mlops"
AUTOMATION = ROOT / "azureml" / "automation"
FILES = {"nightly-training.yml": "Schedule", "retrain-on-drift.yml": "EventTrigger",
         "retrain-on-new-data.yml": "EventTrigger"}


@pytest.mark.parametrize("name", sorted(FILES))
def test_mlyard_validate_accepts_the_example(name: str) -> None:
    result = CliRunner().invoke(cli, ["validate", "-f", str(AUTOMATION / name)])
    assert result.exit_code == 0, result.output
    assert f"valid {FILES[name]}" in result.output


def test_the_schedule_runs_the_training_pipeline_nightly_at_two() -> None:
    spec = load_spec(AUTOMATION / "nightly-training.yml").to_dict()
    assert spec["trigger"]["schedule"] == {"hours": [2], "minutes": [0]}
    assert spec["create_job"]["type"] == "pipeline" and len(spec["create_job"]["jobs"]) == 4


def test_the_drift_trigger_answers_any_signal_of_the_attrition_monitor() -> None:
    spec = load_spec(AUTOMATION / "retrain-on-drift.yml").to_dict()
    alert = EventView(5, 0, "monitor.signal_alerted", "attrition-monitor/data-drift", "mlyard", {})
    assert matches(spec, alert)
    assert not matches(spec, EventView(6, 0, "monitor.signal_alerted", "other-monitor/data-drift", "mlyard", {}))
    assert triggered_job(spec, "attrition-retrain-on-drift", alert)["experiment_name"] == "attrition-retraining"


def test_the_new_data_trigger_trains_on_the_version_that_was_created() -> None:
    spec = load_spec(AUTOMATION / "retrain-on-new-data.yml").to_dict()
    event = EventView(9, 0, "data.version_created", "employee-attrition:2", "alice",
                      {"name": "employee-attrition", "version": "2"})
    job = triggered_job(spec, "attrition-retrain-on-new-data", event)
    assert job["inputs"]["input"] == {"type": "uri_file", "path": "azureml:employee-attrition:2"}


# -- the webhook receiver -----------------------------------------------------------------------------


def _receiver_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("attrition_receiver", ROOT / "webhooks" / "receiver.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _receiver_module().handler("s3cret"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


def _signed(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Mlyard-Timestamp": str(timestamp), "X-Mlyard-Signature": f"v1={digest}",
            "Content-Type": "application/json"}


def test_the_receiver_accepts_a_signed_recent_delivery_only(receiver: str) -> None:
    body = b'{"type": "model.version_created", "subject": "attrition-model:3"}'
    now = int(time.time())
    assert httpx.post(receiver, content=body, headers=_signed(body, "s3cret", now)).status_code == 200
    rotated = _signed(body, "s3cret", now)
    rotated["X-Mlyard-Signature"] = "v1=00ff, " + rotated["X-Mlyard-Signature"]  # during a secret rotation
    assert httpx.post(receiver, content=body, headers=rotated).status_code == 200

    wrong = httpx.post(receiver, content=body, headers=_signed(body, "other", now))
    assert wrong.status_code == 401 and "does not match" in wrong.text
    tampered = httpx.post(receiver, content=body + b" ", headers=_signed(body, "s3cret", now))
    assert tampered.status_code == 401
    replayed = httpx.post(receiver, content=body, headers=_signed(body, "s3cret", now - 301))
    assert replayed.status_code == 401 and "5 minutes" in replayed.text
    assert httpx.post(receiver, content=body).status_code == 401
