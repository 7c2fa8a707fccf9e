"""Azure's early termination rules on metric curves."""

from __future__ import annotations

from mlyard.jobs.sweep_policy import Curve, Policy


def _curves(**values: list[float]) -> dict[str, Curve]:
    return {n: Curve(v) for n, v in values.items()}


def test_bandit_slack_factor_maximize_and_minimize() -> None:
    p = Policy({"type": "bandit", "slack_factor": 0.1}, "maximize")
    curves = _curves(good=[0.8, 0.9], ok=[0.7, 0.83], bad=[0.5, 0.6])
    assert p.check("bad", 2, curves) and "below 0.818182" in (p.check("bad", 2, curves) or "")
    assert p.check("ok", 2, curves) is None and p.check("good", 2, curves) is None
    m = Policy({"type": "bandit", "slack_factor": 0.1}, "minimize")
    losses = _curves(best=[1.0, 0.5], close=[0.9, 0.54], far=[2.0, 0.6])
    assert m.check("close", 2, losses) is None and m.check("far", 2, losses)


def test_bandit_slack_amount() -> None:
    p = Policy({"type": "bandit", "slack_amount": 0.2}, "maximize")
    curves = _curves(a=[0.9], b=[0.71], c=[0.69])
    assert p.check("b", 1, curves) is None and p.check("c", 1, curves)


def test_due_follows_interval_and_delay() -> None:
    p = Policy({"type": "bandit", "slack_factor": 0.1, "evaluation_interval": 2, "delay_evaluation": 3}, "maximize")
    assert [k for k in range(1, 10) if p.due(k)] == [4, 6, 8]
    assert [k for k in range(1, 4) if Policy({"type": "median_stopping", "evaluation_interval": 0},
                                             "maximize").due(k)] == [1, 2, 3]


def test_median_stopping_uses_running_averages() -> None:
    p = Policy({"type": "median_stopping"}, "maximize")
    curves = _curves(a=[0.2, 0.9], b=[0.5, 0.6], c=[0.1, 0.3])
    # running averages at interval 2: 0.55, 0.55, 0.2 -> median 0.55; c's best so far 0.3 is below it
    assert p.check("c", 2, curves) and p.check("b", 2, curves) is None
    assert p.check("c", 2, _curves(c=[0.1, 0.3])) is None  # alone: nothing to compare with


def test_truncation_selection_cuts_the_worst_share() -> None:
    p = Policy({"type": "truncation_selection", "truncation_percentage": 50}, "maximize")
    curves = _curves(a=[0.9], b=[0.8], c=[0.4], d=[0.3])
    assert p.check("d", 1, curves) and p.check("c", 1, curves) and p.check("b", 1, curves) is None
    done = {**curves, "a": Curve([0.9], finished=True), "b": Curve([0.8], finished=True)}
    q = Policy({"type": "truncation_selection", "truncation_percentage": 50, "exclude_finished_jobs": True},
               "maximize")
    assert q.check("c", 1, done) is None and q.check("d", 1, done)  # c and d alone: only d is in the worst half


def test_a_trial_behind_counts_with_what_it_logged() -> None:
    p = Policy({"type": "bandit", "slack_factor": 0.1}, "maximize")
    assert p.check("bad", 3, _curves(bad=[0.2, 0.2, 0.2], good=[1.0])) is not None
