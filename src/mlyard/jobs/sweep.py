"""Sweep jobs and sweep steps (reference §4.2, §3.2 form 3, §9.2): trials as child jobs, sampled by Optuna.

A sweep is a job row (``type: sweep``) whose trials are command rows under it (``parent`` = the sweep),
named ``<sweep>_<n>``, each its own MLflow run tagged ``mlflow.parentRunId`` = the sweep's run. A trial is
the sweep's trial step with the sampled values put into ``${{search_space.<h>}}`` of its command (a sweep
job) or given as the trial component's inputs of those names (a sweep step); it runs through the runner's
ordinary step path (environment, code snapshot, inputs, outputs, its executor's slots).

The loop keeps at most ``max_concurrent_trials`` trials running, starts at most ``max_total_trials`` (a grid
stops early when every point ran), and stops starting new ones at ``limits.timeout`` (running trials are then
canceled). The primary metric of a trial is the latest value it logged (MLflow's latest: highest step, then
latest time); every value it logs is one interval for the early termination policy (``sweep_policy``), checked
as values arrive. The best completed trial's outputs become the sweep's, its metrics and hyperparameters are
copied onto the sweep's run, and its run id is the sweep run's ``best_child_run_id`` tag.

State lives in the rows: each trial row keeps its Optuna trial number, raw and rendered values, and at the end
its metric or why it was stopped. A server restart rebuilds the Optuna study from those rows (finished
trials are told to it again, trials the stop interrupted are run again with the same values) and goes on.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlyard.core.errors import InvalidSpecError, MlyardError, SpecIssue
from mlyard.core.timeutil import now_ms
from mlyard.jobs.plan import bind_parent_outputs
from mlyard.jobs.render import literal_text
from mlyard.jobs.resolve import PipelineContext
from mlyard.jobs.sweep_policy import Curve, Policy
from mlyard.jobs.sweep_space import Search, SearchSpace
from mlyard.specs.bindings import find_bindings
from mlyard.store.jobs_schema import TERMINAL, Job
from mlyard.store.tracking_schema import LatestMetric, Metric
from mlyard.tracking.records import metric_point

if TYPE_CHECKING:
    from mlyard.jobs.runner import JobRunner, StepResult

log = logging.getLogger("mlyard.jobs.sweep")

POLL_S = 0.2
SWEEP_KEYS = ("search_space", "sampling_algorithm", "objective", "early_termination", "limits")
TRIAL_FIELDS = ("command", "code", "environment", "environment_variables", "distribution", "resources")


# -- planning ---------------------------------------------------------------------------------------------


def _sweep_config(spec: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    config = {k: spec.get(k) for k in SWEEP_KEYS}
    config["limits"] = dict(config.get("limits") or {})
    config["outputs"] = outputs  # as written: parent bindings and registration apply to the sweep's outputs
    return config


def _trial_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """Each trial writes its outputs under its own job; the sweep takes the best trial's."""
    trial: dict[str, Any] = {}
    for n, value in (outputs or {}).items():
        if isinstance(value, dict):
            trial[n] = {k: v for k, v in value.items() if k in ("type", "mode", "description")}
        else:
            trial[n] = {}
    return trial


def plan_sweep_job(job: dict[str, Any]) -> dict[str, Any]:
    """The trial step of a ``type: sweep`` job (its command still holds ``${{search_space.*}}``)."""
    trial = job.get("trial") or {}
    step = {k: trial[k] for k in TRIAL_FIELDS if trial.get(k) is not None}
    limits = job.get("limits") or {}
    if limits.get("trial_timeout"):
        step["limits"] = {"timeout": int(limits["trial_timeout"])}
    step.update(inputs=job.get("inputs") or {}, outputs=_trial_outputs(job.get("outputs") or {}),
                compute=job.get("compute"), declared_inputs=None, declared_outputs=None, is_deterministic=False,
                display_name=job.get("display_name"), tags=job.get("tags") or {},
                sweep=_sweep_config(job, job.get("outputs") or {}))
    return step


def plan_sweep_step(key: str, raw: dict[str, Any], component_step: Any) -> dict[str, Any]:
    """The trial step of a pipeline's sweep step: the trial component run as a step, the search space
    overriding the component inputs of the same names.

    Args:
        component_step: the planner's ``(key, raw step) -> step`` for a command component step.
    """
    step: dict[str, Any] = component_step(key, {"component": raw.get("trial"), "inputs": raw.get("inputs") or {},
                                                "outputs": _trial_outputs(raw.get("outputs") or {}),
                                                "display_name": raw.get("display_name"),
                                                "tags": raw.get("tags")})
    limits = raw.get("limits") or {}
    if limits.get("trial_timeout"):
        step["limits"] = {**(step.get("limits") or {}), "timeout": int(limits["trial_timeout"])}
    declared = step.get("declared_inputs") or {}
    for name in (raw.get("search_space") or {}):
        if declared and name not in declared:
            raise InvalidSpecError(issues=[SpecIssue(
                message=f"search_space key '{name}' is not an input of the trial component (inputs: "
                        f"{', '.join(sorted(declared))})", field=f"jobs.{key}.search_space.{name}")])
    step.update(is_deterministic=False, sweep=_sweep_config(raw, raw.get("outputs") or {}))
    return step


def trial_step(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """One trial's step: the sampled values in the command and as inputs of those names (a component's)."""
    step = {k: v for k, v in base.items() if k != "sweep"}
    command = str(step.get("command") or "")
    for b in reversed(find_bindings(command)):
        if b.kind == "search_space" and b.name in values:
            command = command[:b.span[0]] + literal_text(values[b.name]) + command[b.span[1]:]
    step["command"] = command
    if base.get("declared_inputs"):
        step["inputs"] = {**(base.get("inputs") or {}),
                          **{n: v for n, v in values.items() if n in base["declared_inputs"]}}
    return step


# -- reading --------------------------------------------------------------------------------------------


def trial_table(runner: JobRunner, sweep: Job) -> list[dict[str, Any]]:
    """The trials of a sweep, best first by the objective (trials without a metric last, by number)."""
    base = sweep.spec.get("step") if sweep.parent is None and "step" in sweep.spec else sweep.spec
    config = (base or {}).get("sweep") or {}
    objective = config.get("objective") or {}
    metric, goal = objective.get("primary_metric"), objective.get("goal", "maximize")
    rows = [r for r in runner.children(sweep.name) if isinstance(r.spec.get("sweep_trial"), dict)]
    live = _latest(runner, [r.name for r in rows if r.status not in TERMINAL], metric) if metric else {}
    best = (sweep.spec.get("sweep_state") or {}).get("best") if isinstance(sweep.spec, dict) else None
    table = []
    for r in rows:
        t = r.spec["sweep_trial"]
        value = t.get("metric") if r.status in TERMINAL else live.get(r.name)
        table.append({"name": r.name, "number": t.get("number"), "params": t.get("params") or {},
                      "metric": value, "status": r.status, "started_at": r.started_at, "ended_at": r.ended_at,
                      "early_terminated": t.get("early_terminated"), "rerun": bool(t.get("interrupted")),
                      "best": r.name == best})

    def order(item: dict[str, Any]) -> tuple[int, float, int]:
        v = item["metric"]
        if v is None or not math.isfinite(v):
            return (1, 0.0, item["number"] or 0)
        return (0, -v if goal == "maximize" else v, item["number"] or 0)

    return sorted(table, key=order)


def _latest(runner: JobRunner, names: list[str], metric: str) -> dict[str, float]:
    if not names:
        return {}
    with runner._db.session() as s:
        got = s.execute(select(LatestMetric.run_id, LatestMetric.value, LatestMetric.is_nan)
                        .where(LatestMetric.run_id.in_(names), LatestMetric.key == metric)).all()
    return {r: (math.nan if nan else float(v)) for r, v, nan in got}


# -- running --------------------------------------------------------------------------------------------


class SweepLoop:
    """Runs one sweep to its end on the calling thread; trials run on threads of their own."""

    def __init__(self, runner: JobRunner, row: Job, ctx: PipelineContext | None, actor: str) -> None:
        self.r = runner
        self.row = row
        self.actor = actor
        self.outer = ctx
        self.base: dict[str, Any] = row.spec["step"] if ctx is None else row.spec
        self.config: dict[str, Any] = self.base["sweep"]
        self.space = SearchSpace(self.config)
        objective = self.config.get("objective") or {}
        self.metric = str(objective.get("primary_metric"))
        self.maximize = str(objective.get("goal", "maximize")).lower() == "maximize"
        limits = self.config.get("limits") or {}
        self.max_total = int(limits.get("max_total_trials") or 1000)
        grid = self.space.grid_size()
        if grid is not None:
            self.max_total = min(self.max_total, grid)
        self.max_concurrent = int(limits.get("max_concurrent_trials") or self.max_total)
        self.timeout_s = float(limits.get("timeout") or 5184000)
        term = self.config.get("early_termination")
        self.policy = Policy(term, "maximize" if self.maximize else "minimize") if term else None
        self.ctx = ctx if ctx is not None else PipelineContext(row, {})
        self.top = self.ctx.root or self.ctx.top.name
        self.key = row.step or row.name
        self.running: dict[str, threading.Thread] = {}
        self.finished: queue.Queue[str] = queue.Queue()
        self.evaluated: dict[str, int] = {}
        self.curves: dict[str, Curve] = {}
        self.numbers: dict[str, int] = {}  # trial row -> Optuna number
        self.next_position = 0
        self.asked = 0

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> StepResult:
        try:
            return self._run()
        except BaseException:
            for name in list(self.running):  # a runner bug: its trials do not run on unattended
                self._stop_trial(name, "the sweep failed in the runner")
            for thread in list(self.running.values()):
                thread.join(timeout=10)
            raise

    def _run(self) -> StepResult:
        act = self.r._active_of(self.top)
        self.r._set_status(self.row.name, "Running", started=True)
        self.search = Search(self.space)
        reruns = self._restore()
        self.r._log(self.row.name, f"sweep {self.row.name}: {self.space.algorithm['type']} sampling, at most "
                                   f"{self.max_total} trials, {self.max_concurrent} at once, objective "
                                   f"{'maximize' if self.maximize else 'minimize'} {self.metric}")
        started = (self.row.started_at or now_ms()) / 1000
        deadline = time.monotonic() + max(0.0, self.timeout_s - (time.time() - started))
        timed_out = False
        last_check = 0.0
        while True:
            if not timed_out and time.monotonic() >= deadline:
                timed_out = True
                why = f"the sweep's limits.timeout ({self.timeout_s:g} s) was reached"
                self.r._note(self.row.name, f"{why}: no new trials; running trials are canceled")
                for name in list(self.running):
                    self._stop_trial(name, why)
            stopping = act.cancel.is_set() or timed_out or self.r._stopping.is_set()
            while not stopping and len(self.running) < self.max_concurrent:
                if reruns:
                    number, raw, values = reruns.pop(0)
                elif self.asked < self.max_total:
                    number, raw, values = self.search.ask()
                    self.asked = max(self.asked, number + 1)
                else:
                    break
                self._start_trial(number, raw, values)
            if not self.running:
                break
            try:
                self._trial_ended(self.finished.get(timeout=POLL_S))
                while True:
                    self._trial_ended(self.finished.get_nowait())
            except queue.Empty:
                pass
            if self.policy is not None and time.monotonic() - last_check >= POLL_S:
                last_check = time.monotonic()
                self._apply_policy()
        return self._finish(act, timed_out)

    def _restore(self) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
        """Trials of an earlier run of this sweep (a server restart): told to the study again; the ones the
        stop interrupted come back to be run again with the same values."""
        rows = [r for r in self.r.children(self.row.name) if isinstance(r.spec.get("sweep_trial"), dict)]
        if not rows:
            return []
        self.next_position = max(r.position for r in rows) + 1
        latest: dict[int, Job] = {}
        for r in sorted(rows, key=lambda r: r.position):
            latest[int(r.spec["sweep_trial"]["number"])] = r
        restored, reruns = [], []
        for number in sorted(latest):
            r = latest[number]
            t = r.spec["sweep_trial"]
            if t.get("interrupted") or r.status not in TERMINAL:
                state = "running"
                reruns.append((number, dict(t["raw"]), dict(t["params"])))
            elif r.status == "Completed" and t.get("metric") is not None:
                state = "complete"
            elif t.get("early_terminated"):
                state = "pruned"
            else:
                state = "fail"
            restored.append((number, dict(t["raw"]), state, t.get("metric"), dict(t.get("attrs") or {})))
        newest = max(rows, key=lambda r: r.position).spec["sweep_trial"]
        self.search.restore(restored, newest.get("study") or {})
        self.asked = len(restored)
        self.r._log(self.row.name, f"resuming: {len(restored) - len(reruns)} finished trial(s) kept, "
                                   f"{len(reruns)} interrupted trial(s) run again with the same values")
        return reruns

    def _start_trial(self, number: int, raw: dict[str, Any], values: dict[str, Any]) -> None:
        position = self.next_position
        self.next_position += 1
        name = f"{self.row.name}_{position}"
        step = trial_step(self.base, values)
        step["sweep_trial"] = {"number": number, "position": position, "params": values, "raw": raw,
                               "attrs": self.search.system_attrs(number), "study": self.search.study_attrs()}
        shown = ", ".join(f"{k}={literal_text(v)}" for k, v in values.items())
        row = Job(name=name, parent=self.row.name, step=f"trial_{number}", position=position, type="command",
                  status="NotStarted", display_name=f"{self.row.display_name or self.row.name}_trial_{number}",
                  experiment_name=self.row.experiment_name, experiment_id=self.row.experiment_id,
                  compute=step.get("compute") or self.row.compute, env_mode=self.row.env_mode, spec=step, inputs={},
                  outputs={}, depends_on=[], force_rerun=False, notes=[], created_at=now_ms(),
                  created_by=self.row.created_by, actor_role=self.row.actor_role)
        try:
            self.r._db.run_in_transaction(lambda s: s.add(row))
            tags = {**{k: str(v) for k, v in (step.get("tags") or {}).items()},
                    "mlflow.source.type": "JOB", "mlflow.user": self.row.created_by, "mlyard.job": name,
                    "mlflow.parentRunId": self.row.name, "mlyard.trial": str(number),
                    "mlyard.hyperparameters": json.dumps(values, default=str)}
            self.r._runs.create(str(row.experiment_id), self.row.created_by, row.display_name, None, tags,
                                self.row.created_by, run_id=name, status="SCHEDULED")
        except MlyardError as exc:
            self.r._log(self.row.name, f"trial {number} could not be created: {exc.message}")
            self.search.tell(number, None, "fail")
            return
        self.numbers[name] = number
        self.curves[name] = Curve()
        self.r._log(self.row.name, f"trial {number} ({name}) started: {shown}")

        def work() -> None:
            try:
                self.r._run_step(self.r.get(name), self.ctx, self.actor)
            except Exception as exc:  # noqa: BLE001 - a runner bug must not leave the sweep waiting
                log.exception("trial %s failed in the runner", name)
                self.r._finish_row(name, "Failed", f"mlyard could not run the trial: {exc}")
            finally:
                self.finished.put(name)

        thread = threading.Thread(target=work, name=f"trial-{name}", daemon=True)
        self.running[name] = thread
        thread.start()

    def _trial_ended(self, name: str) -> None:
        self.running.pop(name).join()
        row = self.r.get(name)
        number = self.numbers[name]
        act = self.r._active_of(self.top)
        stopped = act.stops.pop(name, None)
        value = _latest(self.r, [name], self.metric).get(name)
        if value is not None and not math.isfinite(value):
            value = None
        update: dict[str, Any] = {"metric": value}
        if row.status == "Canceled" and self.r._stopping.is_set():
            update["interrupted"] = True  # the server is stopping: run it again when it is back
        if stopped and row.status == "Canceled" and stopped.startswith(("bandit", "median", "truncation")):
            update["early_terminated"] = stopped
        self.r._update(name, spec={**row.spec, "sweep_trial": {**row.spec["sweep_trial"], **update}})
        if update.get("interrupted"):
            return
        self.curves[name].finished = True
        if row.status == "Completed" and value is None:
            self.r._note(name, f"the trial logged no '{self.metric}' (the sweep's primary metric): it cannot be "
                               "compared; log it with mlflow.log_metric")
        state = ("complete" if row.status == "Completed" and value is not None
                 else "pruned" if update.get("early_terminated") else "fail")
        self.search.tell(number, value, state)
        shown = "" if value is None else f", {self.metric}={value:.6g}"
        how = "early terminated" if update.get("early_terminated") else row.status
        self.r._log(self.row.name, f"trial {number} ({name}) {how}{shown}")

    def _stop_trial(self, name: str, reason: str) -> None:
        act = self.r._active_of(self.top)
        act.stops[name] = reason
        held = act.handles.get(name)
        if held is not None:
            executor, handle = held
            threading.Thread(target=executor.cancel, args=(handle,), name=f"stop-{name}", daemon=True).start()

    # -- early termination --------------------------------------------------------------------------

    def _apply_policy(self) -> None:
        assert self.policy is not None
        live = [n for n in self.running if n not in self.r._active_of(self.top).stops]
        if not live:
            return
        with self.r._db.session() as s:
            points = s.execute(select(Metric.run_id, Metric.value, Metric.is_nan)
                               .where(Metric.run_id.in_(live), Metric.key == self.metric)
                               .order_by(Metric.run_id, Metric.step, Metric.timestamp, Metric.id)).all()
        fresh: dict[str, list[float]] = {n: [] for n in live}
        for run_id, value, nan in points:
            fresh[run_id].append(math.nan if nan else float(value))
        for n, values in fresh.items():
            self.curves[n].values = values
        act = self.r._active_of(self.top)
        for n in live:
            if n not in act.handles:
                continue  # not running its process (yet, or any more)
            upto = len(self.curves[n].values)
            for k in range(self.evaluated.get(n, 0) + 1, upto + 1):
                self.evaluated[n] = k
                if not self.policy.due(k):
                    continue
                reason = self.policy.check(n, k, self.curves)
                if reason:
                    self.r._log(self.row.name, f"trial {self.numbers[n]} ({n}): early terminated by the {reason}")
                    self._stop_trial(n, reason)
                    break

    # -- the end ----------------------------------------------------------------------------------------

    def _finish(self, act: Any, timed_out: bool) -> StepResult:
        from mlyard.jobs.runner import StepResult as result

        if self.r._stopping.is_set():
            self.r._log(self.row.name, "the server is stopping: the sweep resumes when it is back")
            return result(self.key, "Canceled", "the server stopped")
        trials = [r for r in self.r.children(self.row.name) if isinstance(r.spec.get("sweep_trial"), dict)]
        scored = [(r.spec["sweep_trial"]["metric"], r.spec["sweep_trial"]["number"], r) for r in trials
                  if r.status == "Completed" and r.spec["sweep_trial"].get("metric") is not None]
        best = None
        if scored:
            best = sorted(scored, key=lambda x: ((-x[0] if self.maximize else x[0]), x[1]))[0][2]
        if act.cancel.is_set():
            self.r._finish_row(self.row.name, "Canceled", act.reason)
            return result(self.key, "Canceled")
        if best is None:
            failed = [r for r in trials if r.status == "Failed"]
            error = (f"no trial completed with a '{self.metric}' metric ({len(trials)} trial(s) ran)"
                     + (f"; trial {failed[0].name} failed: {failed[0].error}" if failed else ""))
            if timed_out:
                error += f"; the sweep's limits.timeout ({self.timeout_s:g} s) was reached"
            self.r._finish_row(self.row.name, "Failed", error)
            return result(self.key, "Failed", error)
        self._take_best(best)
        self.r._finish_row(self.row.name, "Completed", None)
        return result(self.key, "Completed")

    def _take_best(self, best: Job) -> None:
        t = best.spec["sweep_trial"]
        value = t["metric"]
        self.r._log(self.row.name, f"best trial: {t['number']} ({best.name}), {self.metric}={value:.6g}, "
                                   + ", ".join(f"{k}={literal_text(v)}" for k, v in t["params"].items()))
        records = dict(best.outputs or {})
        spec = dict(self.row.spec if self.outer is None else self.r.get(self.row.name).spec)
        self.r._update(self.row.name, spec={**spec, "sweep_state": {"best": best.name, "metric": value}})
        if self.outer is not None:
            bind_parent_outputs(self.config.get("outputs") or {}, records, self.outer)
        self.r._set_outputs(self.row.name, records)
        if self.outer is None:
            self.r._register_pipeline_outputs(self.r.get(self.row.name), records, self.actor)
        try:
            view = self.r._runs.get(best.name)
            metrics = [metric_point(m.key, m.value, m.timestamp, m.step) for m in view.metrics]
            params = {k: literal_text(v)[:6000] for k, v in t["params"].items()}
            self.r._run_logger.log_batch(self.row.name, metrics, params,
                                         {"best_child_run_id": best.name, "mlyard.bestTrial": best.name})
        except MlyardError as exc:
            self.r._log(self.row.name, f"could not copy the best trial's metrics: {exc.message}")
