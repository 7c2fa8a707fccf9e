"""The trigger engine on a real store (SQLite and PostgreSQL): events appended with ``append_event``, firings,
cool-downs, input binding, restarts and two engines on one store.

Jobs are handed to a recording submitter (the edge here; ``tests/integration/test_triggers.py`` runs real jobs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from mlyard.automation.triggers import TriggerEngine, TriggerService
from mlyard.core.errors import AlreadyExistsError, InvalidRequestError, InvalidSpecError, NotFoundError
from mlyard.store.automation_schema import TriggerFiringRow, TriggerRow
from mlyard.store.db import Database
from mlyard.store.events import append_event, read_events


@dataclass
class Submitted:
    name: str


@dataclass
class RecordingSubmitter:
    """Stands in for ``JobRunner.submit``: records each job; refuses a name twice, as the runner does."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_with: Exception | None = None

    def submit(self, spec: dict[str, Any], *, actor: str, role: str = "admin", name: str | None = None,
               experiment_name: str | None = None, display_name: str | None = None,
               env_mode: str | None = None) -> Submitted:
        if self.fail_with is not None:
            raise self.fail_with
        if any(c["name"] == name for c in self.calls):
            raise AlreadyExistsError(f"a job named {name!r} already exists")
        self.calls.append({"spec": spec, "actor": actor, "role": role, "name": name, "display_name": display_name})
        return Submitted(str(name))


JOB = {"command": "echo ${{inputs.model_version}}", "inputs": {"model_version": "0"},
       "environment": "azureml:env@latest", "experiment_name": "evaluations"}


def _trigger(name: str = "eval", cool_down: str = "PT1H", **event: Any) -> dict[str, Any]:
    return {"name": name, "event": {"type": "model.version_created", "subject": "attrition-model", **event},
            "cool_down": cool_down, "create_job": dict(JOB),
            "inputs": {"model_version": "${{event.payload.version}}"}}


def _version(db: Database, version: str, name: str = "attrition-model") -> None:
    db.run_in_transaction(lambda s: append_event(s, "model.version_created", f"{name}:{version}", "bob",
                                                 name=name, version=version))


def _firings(db: Database, trigger: str) -> list[tuple[str, str | None, str | None]]:
    with db.session() as s:
        rows = s.scalars(select(TriggerFiringRow).where(TriggerFiringRow.trigger == trigger)
                         .order_by(TriggerFiringRow.event))
        return [(r.outcome, r.job, r.error) for r in rows]


@pytest.fixture
def jobs() -> RecordingSubmitter:
    return RecordingSubmitter()


@pytest.fixture
def service(db: Database) -> TriggerService:
    return TriggerService(db)


@pytest.fixture
def engine(db: Database, jobs: RecordingSubmitter) -> TriggerEngine:
    return TriggerEngine(db, jobs)


def test_two_versions_within_the_cool_down_start_one_job_with_the_first_version(
        db: Database, service: TriggerService, engine: TriggerEngine, jobs: RecordingSubmitter) -> None:
    service.create(_trigger(), actor="alice", role="contributor")
    _version(db, "1")
    _version(db, "2")
    _version(db, "1", name="other-model")  # another model: not this trigger's subject

    assert engine.run_once() == 1
    [call] = jobs.calls
    assert call["spec"]["inputs"]["model_version"] == "1"
    assert (call["actor"], call["role"], call["spec"]["experiment_name"]) == ("alice", "contributor", "evaluations")
    first, second = _firings(db, "eval")
    assert first[:2] == ("started", call["name"]) and second == ("cooling_down", None, None)
    assert call["name"] == call["display_name"] and call["name"].startswith("eval-")
    assert call["spec"]["tags"]["mlyard.trigger"] == "eval"
    # the firing is announced in the log, naming the job and the event that caused it
    with db.session() as s:
        [fired] = read_events(s, types=["trigger.fired"])
    assert fired.subject == "eval" and fired.payload["job"] == call["name"]
    assert fired.payload["event_subject"] == "attrition-model:1"
    assert engine.run_once() == 0 and len(jobs.calls) == 1  # nothing is matched twice


def test_without_a_cool_down_every_event_starts_a_job(db: Database, service: TriggerService, engine: TriggerEngine,
                                                     jobs: RecordingSubmitter) -> None:
    service.create(_trigger(cool_down="PT0S"), actor="alice", role="admin")
    for version in ("1", "2", "3"):
        _version(db, version)
    assert engine.run_once() == 3
    assert [c["spec"]["inputs"]["model_version"] for c in jobs.calls] == ["1", "2", "3"]


def test_a_new_trigger_does_not_replay_the_past(db: Database, service: TriggerService, engine: TriggerEngine,
                                               jobs: RecordingSubmitter) -> None:
    _version(db, "1")
    service.create(_trigger(), actor="alice", role="admin")
    assert engine.run_once() == 0 and jobs.calls == []
    _version(db, "2")
    assert engine.run_once() == 1 and jobs.calls[0]["spec"]["inputs"]["model_version"] == "2"


def test_a_disabled_trigger_skips_what_happens_while_it_is_off(db: Database, service: TriggerService,
                                                              engine: TriggerEngine, jobs: RecordingSubmitter) -> None:
    service.create(_trigger(), actor="alice", role="admin")
    service.set_enabled("eval", False)
    _version(db, "1")
    assert engine.run_once() == 0
    service.set_enabled("eval", True)
    assert engine.run_once() == 0 and _firings(db, "eval") == []
    _version(db, "2")
    assert engine.run_once() == 1


def test_filters_narrow_the_events(db: Database, service: TriggerService, engine: TriggerEngine,
                                   jobs: RecordingSubmitter) -> None:
    service.create(_trigger(cool_down="PT0S", filter={"version": 2}), actor="alice", role="admin")
    _version(db, "1")
    _version(db, "2")
    assert engine.run_once() == 1 and jobs.calls[0]["spec"]["inputs"]["model_version"] == "2"


def test_a_job_that_cannot_start_is_a_failed_firing_and_takes_no_cool_down(
        db: Database, service: TriggerService, engine: TriggerEngine, jobs: RecordingSubmitter) -> None:
    service.create(_trigger(), actor="alice", role="admin")
    jobs.fail_with = InvalidRequestError("environment 'env' is not registered")
    _version(db, "1")
    assert engine.run_once() == 0
    [(outcome, job, error)] = _firings(db, "eval")
    assert (outcome, job, error) == ("failed", None, "environment 'env' is not registered")
    jobs.fail_with = None
    _version(db, "2")  # within the hour, yet no job was started: this one starts
    assert engine.run_once() == 1


def test_an_event_without_the_bound_field_fails_its_firing_with_the_reason(
        db: Database, service: TriggerService, engine: TriggerEngine) -> None:
    service.create(_trigger(), actor="alice", role="admin")
    db.run_in_transaction(lambda s: append_event(s, "model.version_created", "attrition-model:9", "bob", name="x"))
    engine.run_once()
    [(outcome, _, error)] = _firings(db, "eval")
    assert outcome == "failed" and "has no field event.payload.version" in str(error)


def test_a_firing_claimed_before_a_crash_is_completed_once_at_start_up(
        db: Database, service: TriggerService, jobs: RecordingSubmitter) -> None:
    service.create(_trigger(), actor="alice", role="admin")
    _version(db, "1")
    # the server claimed the event, then died before submitting the job
    crashing = TriggerEngine(db, RecordingSubmitter(fail_with=KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        crashing.run_once()
    assert _firings(db, "eval") == [("started", None, None)]

    restarted = TriggerEngine(db, jobs)
    assert restarted.recover() == 1
    [(outcome, job, _)] = _firings(db, "eval")
    assert outcome == "started" and job == jobs.calls[0]["name"] and len(jobs.calls) == 1
    assert restarted.recover() == 0 and restarted.run_once() == 0 and len(jobs.calls) == 1


def test_two_engines_on_one_store_start_one_job(db: Database, service: TriggerService,
                                               jobs: RecordingSubmitter) -> None:
    service.create(_trigger(cool_down="PT0S"), actor="alice", role="admin")
    first, second = TriggerEngine(db, jobs), TriggerEngine(db, jobs)
    _version(db, "1")
    assert first.run_once() + second.run_once() == 1
    assert len(jobs.calls) == 1 and len(_firings(db, "eval")) == 1


def test_a_trigger_on_job_events_ignores_its_own_jobs(db: Database, service: TriggerService, engine: TriggerEngine,
                                                     jobs: RecordingSubmitter) -> None:
    spec = {**_trigger(cool_down="PT0S"), "event": {"type": "job.*"}, "inputs": {}}
    service.create(spec, actor="alice", role="admin")
    for subject in ("eval-99", "eval-99_step", "someone-elses-job"):
        db.run_in_transaction(lambda s, subject=subject: append_event(
            s, "job.status_changed", subject, "alice", name=subject, parent=None, status="Completed"))
    assert engine.run_once() == 1


def test_bad_triggers_are_refused_and_create_nothing(db: Database, service: TriggerService) -> None:
    with pytest.raises(InvalidSpecError, match="unknown event type"):
        service.create({**_trigger(), "event": {"type": "model.made"}}, actor="alice", role="admin")
    with pytest.raises(InvalidSpecError, match="local job file"):
        service.create({**_trigger(), "create_job": "./train.yml"}, actor="alice", role="admin")
    with pytest.raises(NotFoundError, match="no job named 'nope'"):
        service.create({**_trigger(), "create_job": "azureml:nope"}, actor="alice", role="admin")
    with pytest.raises(InvalidSpecError, match=r"create_job.limits.timeout: expected an integer"):
        service.create({**_trigger(), "create_job": {**JOB, "limits": {"timeout": "soon"}}}, actor="alice",
                       role="admin")
    with pytest.raises(InvalidSpecError, match="local path"):
        service.create({**_trigger(), "create_job": {**JOB, "code": "/tmp/src"}}, actor="alice", role="admin")
    with db.session() as s:
        assert list(s.scalars(select(TriggerRow))) == []
    service.create(_trigger(), actor="alice", role="admin")
    with pytest.raises(AlreadyExistsError, match="already exists"):
        service.create(_trigger(), actor="alice", role="admin")


def test_delete_removes_the_trigger_and_its_firings(db: Database, service: TriggerService, engine: TriggerEngine,
                                                   jobs: RecordingSubmitter) -> None:
    service.create(_trigger(), actor="alice", role="admin")
    _version(db, "1")
    engine.run_once()
    assert [f.outcome for f in service.firings("eval")] == ["started"]
    service.delete("eval")
    assert service.list() == [] and _firings(db, "eval") == []
    with pytest.raises(NotFoundError, match="no trigger named 'eval'"):
        service.get("eval")
