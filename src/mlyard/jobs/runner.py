"""The job runner: submits, runs, reuses, cancels and recovers command and pipeline jobs.

One runner lives in the server process. A submitted job gets a row per step and an MLflow run per
row (the run id is the job name, as on Azure ML), then runs on a thread of its own: a command job
is one step; a pipeline starts every step whose upstream steps have completed, up to the bound of
each step's executor. A step goes NotStarted -> Queued (waiting for a slot) -> Preparing
(environment, code snapshot, inputs) -> Running (the user's process) -> Finalizing (outputs to
the datastore, run artifacts, named outputs registered) -> Completed, Failed or Canceled.

A deterministic step whose cache key matches a completed earlier step is not run: its outputs
and metrics are taken over at once (reference §3.5). At start-up the runner fails every job the
previous server left unfinished and kills any process of theirs still running.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mlyard.assets.service import AssetService
from mlyard.core.errors import (
    AlreadyExistsError,
    InvalidRequestError,
    MlyardError,
    NotFoundError,
    ServerUnavailableError,
)
from mlyard.core.ids import friendly_name
from mlyard.core.timeutil import now_ms
from mlyard.jobs.conda import environment_identity
from mlyard.jobs.data import JobData
from mlyard.jobs.distribution import distributed_command
from mlyard.jobs.environments import ENV_MODES, EnvironmentCache, mlyard_only_path
from mlyard.jobs.executors import Executor, Handle, Launch, LocalExecutor, kill_group, leftover_processes
from mlyard.jobs.extras import missing_module_hint
from mlyard.jobs.outputs import StepOutputs
from mlyard.jobs.plan import (
    StepPlan,
    bind_parent_outputs,
    check_job_name,
    plan_pipeline,
    refuse_local_paths,
    step_from_command_job,
    step_type,
    unwrap_pipeline_component,
)
from mlyard.jobs.ray_executor import RayExecutor
from mlyard.jobs.ray_executor import disconnect as ray_disconnect
from mlyard.jobs.ray_instances import spreads
from mlyard.jobs.records import JobTokens
from mlyard.jobs.render import path_text, render_command
from mlyard.jobs.resolve import PipelineContext, StepResolver
from mlyard.jobs.sweep import SweepLoop, plan_sweep_job
from mlyard.jobs.sweep_space import import_optuna
from mlyard.specs import load_spec_dict
from mlyard.store.blobs import DatastoreRegistry
from mlyard.store.db import Database
from mlyard.store.jobs_schema import TERMINAL, Compute, Job
from mlyard.tracking.experiments import ExperimentService
from mlyard.tracking.records import RunLogger, metric_point
from mlyard.tracking.runs import RunService

log = logging.getLogger("mlyard.jobs")


@dataclass
class Active:
    """What the runner holds in memory for a job that is running."""

    cancel: threading.Event = field(default_factory=threading.Event)
    handles: dict[str, tuple[Executor, Handle]] = field(default_factory=dict)
    thread: threading.Thread | None = None
    reason: str = "canceled"  # what a canceled job's error says
    stops: dict[str, str] = field(default_factory=dict)  # one step (a sweep trial) to stop, and why


@dataclass
class StepResult:
    key: str
    status: str
    error: str | None = None


class JobRunner(StepOutputs, StepResolver):
    """Submits and runs jobs. Rows and logs (``JobRecords``), resolving a step (``StepResolver``) and
    finishing it (``StepOutputs``) live in their own modules."""

    def __init__(self, db: Database, datastores: DatastoreRegistry, assets: AssetService, runs: RunService,
                 run_logger: RunLogger, experiments: ExperimentService, tokens: JobTokens, *, state_dir: Path,
                 server_url: str, default_env_mode: str = "inherit") -> None:
        self._db = db
        self._datastores = datastores
        self._assets = assets
        self._runs = runs
        self._run_logger = run_logger
        self._experiments = experiments
        self._data = JobData(db, datastores, assets)
        self.jobs_dir = state_dir / "jobs"
        self.envs = EnvironmentCache(state_dir / "envs")
        self.server_url = server_url
        self.default_env_mode = default_env_mode
        self._local = LocalExecutor()
        self._executors: dict[str, LocalExecutor | RayExecutor] = {}
        self._active: dict[str, Active] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._tokens = tokens
        self._resume: list[str] = []  # sweeps the previous server left running, resumed by start()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Fail what the previous server left unfinished; resume its sweeps."""
        self.recover()
        for name in self._resume:
            act = Active()
            with self._lock:
                self._active[name] = act
            owner = self.get(name).created_by  # what the sweep registers stays the submitter's
            act.thread = threading.Thread(target=self._run_top, args=(name, owner), name=f"job-{name}",
                                          daemon=True)
            act.thread.start()

    def stop(self, grace_s: float = 10.0) -> None:
        """Cancel every running job (the server is stopping) and wait for the runner threads."""
        self._stopping.set()
        with self._lock:
            active = list(self._active.items())
        for name, _ in active:
            self._cancel_active(name, "the mlyard server was stopped while the job ran; run it again "
                                      "(completed steps are reused)")
        deadline = time.monotonic() + grace_s
        for _, act in active:
            if act.thread is not None:
                act.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(isinstance(ex, RayExecutor) for ex in self._executors.values()):
            ray_disconnect()  # a local Ray started for these steps stops with the server

    def recover(self) -> list[str]:
        """Mark jobs left unfinished by a stopped server as failed and kill their leftover processes."""
        with self._db.session() as s:
            rows = list(s.scalars(select(Job).where(Job.status.not_in(TERMINAL))))
        if not rows:
            return []
        names = {r.name for r in rows}
        # a sweep job resumes: its interrupted trials are run again with the same values (jobs/sweep.py)
        self._resume = sorted(r.name for r in rows if r.type == "sweep" and r.parent is None)
        trials = [r for r in rows if r.parent in self._resume]
        rows = [r for r in rows if r.name not in self._resume and r.parent not in self._resume]
        for pid in leftover_processes(names):
            kill_group(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        reason = ("the mlyard server stopped while this job was {status}; nothing of it is running any more: "
                  "run it again (completed steps are reused)")
        for row in rows:
            status = "Canceled" if row.status in ("NotStarted", "Queued") and row.parent else "Failed"
            self._finish_row(row.name, status, reason.format(status=row.status))
        for row in trials:
            self._finish_row(row.name, "Canceled", f"the mlyard server stopped while this trial was {row.status}; "
                                                   "the sweep runs it again with the same values")
            trial = {**(row.spec.get("sweep_trial") or {}), "interrupted": True}
            self._update(row.name, spec={**row.spec, "sweep_trial": trial})
        if self._resume:
            log.warning("resuming %d sweep job(s) from a previous server", len(self._resume))
        log.warning("marked %d unfinished job(s) from a previous server as failed", len(rows))
        return sorted(names)

    # -- submit ------------------------------------------------------------------------------

    def submit(self, spec: dict[str, Any], *, actor: str, role: str = "admin", name: str | None = None,
               experiment_name: str | None = None, display_name: str | None = None,
               env_mode: str | None = None) -> Job:
        """Validate, plan and start a job; returns its row right after it was queued."""
        if self._stopping.is_set():
            raise ServerUnavailableError("the mlyard server is stopping; submit the job again once it is back")
        loaded = load_spec_dict(spec, "job")
        job = loaded.to_dict()
        kind = job.get("type", "command")
        refuse_local_paths(job)
        name = check_job_name(name or job.get("name") or friendly_name())
        mode = env_mode or self.default_env_mode
        if mode not in ENV_MODES:
            raise InvalidRequestError(f"env mode {mode!r} is not one of {', '.join(ENV_MODES)}")
        experiment = (experiment_name or job.get("experiment_name") or "Default").strip() or "Default"
        settings = job.get("settings") or {}
        force = bool(settings.get("force_rerun"))
        if kind == "pipeline":
            if job.get("component") is not None:  # a pipeline job wrapping a pipeline component
                job = unwrap_pipeline_component(job, self._resolve_component)
            plans = plan_pipeline(job, self._resolve_component, mlyard_only_path(self.jobs_dir.parent))
        elif kind == "sweep":
            plans = [StepPlan(name, plan_sweep_job(job))]
        else:
            plans = [StepPlan(name, step_from_command_job(job))]
        if kind == "sweep" or any("sweep" in p.spec for p in plans):
            import_optuna()  # a server without the sweep extra says so before creating anything
        experiment_id = self._experiment_id(experiment)
        now = now_ms()
        top = Job(name=name, parent=None, step=None, position=0, type=kind, status="NotStarted",
                  display_name=display_name or job.get("display_name") or name, experiment_name=experiment,
                  experiment_id=int(experiment_id), compute=job.get("compute"), env_mode=mode,
                  spec=job if kind == "pipeline" else {**job, "step": plans[0].spec}, inputs={}, outputs={},
                  depends_on=[], force_rerun=force, notes=[w for w in loaded.warnings], created_at=now,
                  created_by=actor, actor_role=role)
        def rows_of(parent: str, plans: list[StepPlan]) -> list[Job]:
            rows = []
            for i, p in enumerate(plans):
                row = Job(name=_step_job_name(parent, p.key), parent=parent, step=p.key, position=i,
                          type=step_type(p.spec), status="NotStarted", display_name=p.spec.get("display_name"),
                          experiment_name=experiment, experiment_id=int(experiment_id),
                          compute=p.spec.get("compute"), env_mode=mode, spec=p.spec, inputs={}, outputs={},
                          depends_on=p.depends_on, force_rerun=force, notes=[], created_at=now, created_by=actor,
                          actor_role=role)
                rows += [row, *rows_of(row.name, p.children)]  # a pipeline-component step's own steps
            return rows

        steps = rows_of(name, plans) if kind == "pipeline" else []

        def insert(s: Any) -> None:
            for row in [top, *steps]:
                if s.get(Job, row.name) is not None:
                    raise AlreadyExistsError(f"a job named {row.name!r} already exists; job names are unique: "
                                             "leave the name out to get a fresh one")
            s.add_all([top, *steps])

        self._db.run_in_transaction(insert)
        try:
            self._create_runs(top, steps, job, actor)
        except BaseException:
            def undo(s: Any) -> None:
                for r in s.scalars(select(Job).where((Job.name == name) | (Job.parent == name))):
                    s.delete(r)

            self._db.run_in_transaction(undo)
            raise
        act = Active()
        with self._lock:
            self._active[name] = act
        self._set_status(name, "Queued", actor=actor)  # its event, the job's first, names who submitted it
        act.thread = threading.Thread(target=self._run_top, args=(name, actor), name=f"job-{name}", daemon=True)
        act.thread.start()
        return self.get(name)

    def _experiment_id(self, name: str) -> str:
        try:
            return str(self._experiments.get_by_name(name).row.id)
        except NotFoundError:
            try:
                return self._experiments.create(name)
            except AlreadyExistsError:
                return str(self._experiments.get_by_name(name).row.id)

    def _create_runs(self, top: Job, steps: list[Job], job: dict[str, Any], actor: str) -> None:
        base = {"mlflow.source.type": "JOB", "mlflow.user": actor, "mlyard.job": top.name}
        tags = {**{k: str(v) for k, v in (job.get("tags") or {}).items()}, **base}
        self._runs.create(str(top.experiment_id), actor, top.display_name, None, tags, actor, run_id=top.name,
                          status="SCHEDULED")
        for step in steps:
            step_tags = {**{k: str(v) for k, v in (step.spec.get("tags") or {}).items()}, **base,
                         "mlflow.parentRunId": step.parent or top.name, "mlyard.step": step.step or ""}
            self._runs.create(str(step.experiment_id), actor, step.display_name or step.step, None, step_tags, actor,
                              run_id=step.name, status="SCHEDULED")

    def _resolve_component(self, reference: str) -> dict[str, Any]:
        asset = self._assets.resolve("component", reference)
        return dict(asset.spec)

    # -- queries ---------------------------------------------------------------------------

    # -- cancel ----------------------------------------------------------------------------

    def cancel(self, name: str, actor: str) -> Job:
        row = self.get(name)
        top = row.name
        while (up := self.get(top).parent) is not None:  # steps of pipeline-component steps: the top job's
            top = up
        if row.status in TERMINAL:
            raise InvalidRequestError(f"job {name} is already {row.status}; there is nothing to cancel")
        if isinstance(row.spec.get("sweep_trial"), dict) and self._stop_trial(row, f"canceled by {actor}"):
            return self.get(name)  # one trial of a sweep: the sweep goes on
        if not self._cancel_active(top, f"canceled by {actor}"):
            self._finish_row(name, "Canceled", f"canceled by {actor}", actor)
        return self.get(name)

    def _stop_trial(self, row: Job, reason: str) -> bool:
        top = row.parent or row.name
        while (up := self.get(top).parent) is not None:  # a sweep step's trial: its pipeline holds the state
            top = up
        with self._lock:
            act = self._active.get(top)
        if act is None:
            return False
        act.stops[row.name] = reason
        held = act.handles.get(row.name)
        if held is not None:
            held[0].cancel(held[1])
        return True

    def _cancel_active(self, top: str, reason: str) -> bool:
        with self._lock:
            act = self._active.get(top)
        if act is None:
            return False
        act.reason = reason
        act.cancel.set()
        for executor, handle in list(act.handles.values()):
            executor.cancel(handle)
        return True

    # -- running ---------------------------------------------------------------------------

    def _run_top(self, name: str, actor: str) -> None:
        try:
            row = self.get(name)
            if row.type == "pipeline":
                self._run_pipeline(row, actor)
            elif row.type == "sweep":
                SweepLoop(self, row, None, actor).run()
            else:
                self._run_step(row, None, actor)
        except Exception as exc:  # noqa: BLE001 - a runner bug must not leave the job hanging
            log.exception("job %s failed in the runner", name)
            self._finish_row(name, "Failed", f"mlyard could not run the job: {exc}")
        finally:
            with self._lock:
                self._active.pop(name, None)

    def _run_pipeline(self, top: Job, actor: str, outer: PipelineContext | None = None) -> StepResult:
        """A pipeline job, or (``outer`` given) a pipeline-component step of one, with its own child steps."""
        root = (outer.root or outer.top.name) if outer is not None else top.name
        key = top.step or top.name
        act = self._active_of(root)
        self._set_status(top.name, "Running", started=True)
        self._log(top.name, f"pipeline {top.name}: {len(self.children(top.name))} steps")
        settings = top.spec.get("settings") or {}
        keep_going = bool(settings.get("continue_on_step_failure"))
        try:
            if outer is None:
                parent_inputs = {k: self._resolve_value(v, None, f"inputs.{k}") for k, v in
                                 (top.spec.get("inputs") or {}).items()}
            else:  # the component's inputs, bound in the pipeline around it
                parent_inputs = {k: v for k, v in self._step_inputs(top.spec, outer).items() if v is not None}
        except MlyardError as exc:
            self._finish_descendants(top.name, "not run: the pipeline's inputs could not be resolved")
            self._finish_row(top.name, "Failed", f"pipeline inputs: {exc.message}")
            return StepResult(key, "Failed", exc.message)
        self._update(top.name, inputs=parent_inputs)  # with the content identity each input had now
        ctx = PipelineContext(top, parent_inputs, root=root if outer is not None else None)
        steps = {r.step or "": r for r in self.children(top.name)}
        pending = dict(steps)
        running: dict[str, threading.Thread] = {}
        finished: queue.Queue[StepResult] = queue.Queue()
        results: dict[str, StepResult] = {}
        while pending or running:
            if act.cancel.is_set():
                for key in list(pending):
                    self._finish_row(pending.pop(key).name, "Canceled", f"not started: {act.reason}")
                    results[key] = StepResult(key, "Canceled")
            for key, row in list(pending.items()):
                blockers = [d for d in row.depends_on if d in results and results[d].status != "Completed"]
                if blockers:
                    pending.pop(key)
                    self._finish_row(row.name, "Canceled", f"not run: step '{blockers[0]}' did not complete")
                    self._log(top.name, f"step {key}: Canceled (step '{blockers[0]}' did not complete)")
                    results[key] = StepResult(key, "Canceled")
                    continue
                if all(d in results for d in row.depends_on):
                    pending.pop(key)

                    def work(row: Job = row, key: str = key) -> None:
                        try:
                            res = self._run_step(self.get(row.name), ctx, actor)
                        except Exception as exc:  # noqa: BLE001
                            log.exception("step %s failed in the runner", row.name)
                            self._finish_row(row.name, "Failed", f"mlyard could not run the step: {exc}")
                            res = StepResult(key, "Failed", str(exc))
                        finished.put(StepResult(key, res.status, res.error))

                    thread = threading.Thread(target=work, name=f"step-{row.name}", daemon=True)
                    running[key] = thread
                    thread.start()
            if not running:
                for key in list(pending):  # unreachable for a valid graph; never spin on a broken one
                    self._finish_row(pending.pop(key).name, "Canceled", "not run: its upstream steps never ended")
                    results[key] = StepResult(key, "Canceled")
                continue
            res = finished.get()
            running.pop(res.key).join()
            results[res.key] = res
            done_row = self.get(steps[res.key].name)
            ctx.done[res.key] = done_row
            reused = f" (reused {done_row.reused_from})" if done_row.reused_from else ""
            self._log(top.name, f"step {res.key}: {res.status}{reused}")
            if res.status == "Failed" and not keep_going and not act.cancel.is_set():
                self._log(top.name, f"step {res.key} failed; canceling the other steps "
                                    "(settings.continue_on_step_failure is false)")
                self._cancel_active(root, f"canceled: step '{res.key}' failed")
        failed = [k for k, r in results.items() if r.status == "Failed"]
        outputs = {z: rec for z, rec in ctx.pipeline_outputs.items()}
        self._set_outputs(top.name, outputs)
        if failed:
            first = steps[failed[0]]
            error = self._failure_message(first)
            self._finish_row(top.name, "Failed", error)
            result = StepResult(key, "Failed", error)
        elif any(r.status == "Canceled" for r in results.values()) or act.cancel.is_set():
            self._finish_row(top.name, "Canceled", act.reason if act.cancel.is_set() else "a step was canceled")
            result = StepResult(key, "Canceled")
        else:
            if outer is None:
                self._register_pipeline_outputs(top, outputs, actor)
            else:
                bind_parent_outputs(top.spec.get("bound_outputs") or {}, outputs, outer)
            self._finish_row(top.name, "Completed", None)
            result = StepResult(key, "Completed")
        self._finish_descendants(top.name, "not run: the pipeline ended first")
        return result

    def _finish_descendants(self, name: str, reason: str) -> None:
        """Steps under ``name`` (and under its pipeline-component steps) that never ran: Canceled."""
        for child in self.children(name):
            if child.type == "pipeline":
                self._finish_descendants(child.name, reason)
            if child.status not in TERMINAL:
                self._finish_row(child.name, "Canceled", reason)

    def _failure_message(self, step: Job) -> str:
        row = self.get(step.name)
        tail = self.log_tail(step.name)
        reason = row.error or "failed"
        return f"step '{step.step}' failed: {reason}" + (f"\n--- last lines of its log ---\n{tail}" if tail else "")

    def _active_of(self, top: str) -> Active:
        with self._lock:
            return self._active.setdefault(top, Active())

    # -- one step ------------------------------------------------------------------------------

    def _run_step(self, row: Job, ctx: PipelineContext | None, actor: str) -> StepResult:
        top = (ctx.root or ctx.top.name) if ctx else row.name
        act = self._active_of(top)
        key = row.step or row.name
        if row.type == "sweep":
            return SweepLoop(self, row, ctx, actor).run()
        if row.type == "pipeline" and ctx is not None:
            if act.cancel.is_set():
                self._finish_descendants(row.name, f"not started: {act.reason}")
                self._finish_row(row.name, "Canceled", f"not started: {act.reason}")
                return StepResult(key, "Canceled")
            return self._run_pipeline(row, actor, ctx)
        step = row.spec if ctx else row.spec["step"]
        if act.cancel.is_set() or row.name in act.stops:
            self._finish_row(row.name, "Canceled", f"not started: {act.stops.get(row.name) or act.reason}")
            return StepResult(key, "Canceled")
        jobdir = self.jobs_dir / row.name
        jobdir.mkdir(parents=True, exist_ok=True)
        try:
            inputs = self._step_inputs(step, ctx)
            outputs = self._step_outputs(row, step, ctx)
            env_spec, env_note = self._environment(step.get("environment"))
            identity = environment_identity(env_spec)
            cache_key = None
            # reuse is a pipeline-step rule (reference §3.5): a command job runs each time it is submitted
            if ctx is not None and step.get("is_deterministic", True) and not row.force_rerun:
                cache_key = self._cache_key(step, inputs, outputs, identity, row.env_mode)
        except MlyardError as exc:
            self._set_status(row.name, "Preparing", started=True)
            self._log(row.name, f"preparing failed: {exc.message}")
            self._finish_row(row.name, "Failed", f"Preparing: {exc.message}")
            return StepResult(key, "Failed", exc.message)
        self._update(row.name, inputs=inputs, cache_key=cache_key)
        if cache_key and (original := self._reusable(cache_key, row.name)) is not None:
            self._reuse(row, original, outputs, ctx, actor)
            return StepResult(key, "Completed")
        executor = self._executor(row.compute)
        if executor.name == "local" and row.compute and row.compute not in ("local", "serverless"):
            self._note(row.name, f"compute {row.compute} is not registered here: ran on the local executor "
                                 "('mlyard compute create' maps a name to an executor)")
        self._set_status(row.name, "Queued")
        acquired = False
        while not acquired:
            if act.cancel.is_set() or row.name in act.stops:
                self._finish_row(row.name, "Canceled", f"not started: {act.stops.get(row.name) or act.reason}")
                return StepResult(key, "Canceled")
            acquired = executor.slots.acquire(timeout=0.2)
        try:
            return self._execute(row, step, ctx, act, executor, inputs, outputs, env_spec, env_note, jobdir)
        finally:
            executor.slots.release()

    def _execute(self, row: Job, step: dict[str, Any], ctx: PipelineContext | None, act: Active, executor: Executor,
                 inputs: dict[str, Any], outputs: dict[str, Any], env_spec: dict[str, Any] | None,
                 env_note: str | None, jobdir: Path) -> StepResult:
        key = row.step or row.name
        self._set_status(row.name, "Preparing", started=True)
        try:
            if env_note:
                self._log(row.name, env_note)
            mode = "inherit" if env_spec is None else row.env_mode  # curated or no environment: the server's Python
            env = self.envs.prepare(env_spec, mode, lambda line: self._log(row.name, line))  # type: ignore[arg-type]
            for note in env.notes:
                self._log(row.name, note)
            wd = self._snapshot(step.get("code"), jobdir)
            rendered_in = {n: self._input_text(n, v, jobdir) for n, v in inputs.items()}
            rendered_out = {}
            for n, plan in outputs.items():
                local = jobdir / "outputs" / n
                local.mkdir(parents=True, exist_ok=True)
                target = local / plan["filename"] if plan["is_file"] else local
                rendered_out[n] = str(target)
            command = render_command(step["command"], {n: (None if t is None else t) for n, t in rendered_in.items()},
                                     {n: path_text(p) for n, p in rendered_out.items()})
            # on a Ray compute a distributed step's instances go to nodes of their own, started by the executor
            spread = isinstance(executor, RayExecutor) and spreads(step.get("distribution"), step.get("resources"))
            if not spread:
                command = distributed_command(command, step.get("distribution"), step.get("resources"))
            secret, token_hash = self._tokens.issue(row.created_by, row.actor_role)
            self._update(row.name, token_hash=token_hash)
            launch_env = self._process_env(row, step, env, rendered_in, rendered_out, secret)
        except MlyardError as exc:
            self._log(row.name, f"preparing failed: {exc.message}")
            self._finish_row(row.name, "Failed", f"Preparing: {exc.message}")
            return StepResult(key, "Failed", exc.message)
        except OSError as exc:
            self._finish_row(row.name, "Failed", f"Preparing: {exc}")
            return StepResult(key, "Failed", str(exc))
        if act.cancel.is_set() or row.name in act.stops:
            self._finish_row(row.name, "Canceled", act.stops.get(row.name) or act.reason)
            return StepResult(key, "Canceled")
        timeout = (step.get("limits") or {}).get("timeout")
        self._log(row.name, f"running: {command}")
        try:
            handle = executor.start(Launch(row.name, command, wd, launch_env, self.log_path(row.name), timeout,
                                           step.get("resources"), step.get("distribution") if spread else None))
        except MlyardError as exc:  # a compute that cannot take the step (no Ray, an unreachable cluster, ...)
            self._log(row.name, f"could not start: {exc.message}")
            self._finish_row(row.name, "Failed", exc.message)
            return StepResult(key, "Failed", exc.message)
        act.handles[row.name] = (executor, handle)
        if act.cancel.is_set() or row.name in act.stops:  # canceled while the process was starting
            executor.cancel(handle)
        self._update(row.name, pid=handle.pid)
        self._set_status(row.name, "Running")
        try:
            outcome = executor.wait(handle, timeout)
        finally:
            act.handles.pop(row.name, None)
        if outcome.timed_out:
            message = f"timed out after {timeout} s (limits.timeout); the process tree was killed"
            self._log(row.name, message)
            self._collect_artifacts(row, wd)
            self._finish_row(row.name, "Canceled", message)
            return StepResult(key, "Canceled", message)
        if outcome.canceled or act.cancel.is_set():
            self._log(row.name, "canceled; the process tree was killed")
            self._collect_artifacts(row, wd)
            self._finish_row(row.name, "Canceled", act.stops.get(row.name) or act.reason)
            return StepResult(key, "Canceled")
        if outcome.exit_code != 0:
            message = outcome.reason or f"the command exited with code {outcome.exit_code}"
            if hint := missing_module_hint(self.log_tail(row.name), env.mode):
                message += f"; {hint}"
            self._log(row.name, message)
            self._collect_artifacts(row, wd)
            self._finish_row(row.name, "Failed", message)
            return StepResult(key, "Failed", message)
        self._set_status(row.name, "Finalizing")
        try:
            records = self._finalise_outputs(row, outputs, jobdir, ctx)
            self._collect_artifacts(row, wd)
        except MlyardError as exc:
            self._finish_row(row.name, "Failed", f"Finalizing: {exc.message}")
            return StepResult(key, "Failed", exc.message)
        self._set_outputs(row.name, records)
        self._finish_row(row.name, "Completed", None)
        shutil.rmtree(jobdir / "wd", ignore_errors=True)
        shutil.rmtree(jobdir / "outputs", ignore_errors=True)
        shutil.rmtree(jobdir / "inputs", ignore_errors=True)
        return StepResult(key, "Completed")

    # -- step parts -------------------------------------------------------------------------

    def _reusable(self, cache_key: str, current: str) -> Job | None:
        with self._db.session() as s:
            rows = list(s.scalars(select(Job).where(Job.cache_key == cache_key, Job.status == "Completed",
                                                    Job.force_rerun.is_(False), Job.name != current)
                                  .order_by(Job.ended_at.desc()).limit(5)))
        for row in rows:
            if all(self._data.exists(rec["uri"]) for rec in (row.outputs or {}).values() if rec.get("files")):
                return row
        return None

    def _reuse(self, row: Job, original: Job, outputs: dict[str, Any], ctx: PipelineContext | None,
               actor: str) -> None:
        source = original.reused_from or original.name
        self._log(row.name, f"reused: step outputs, metrics and logs come from job {source} (same command, code, "
                            "environment and inputs); set settings.force_rerun to run it again")
        records = dict(original.outputs or {})
        if ctx is not None:
            for n, plan in outputs.items():
                if plan["parent_output"] and n in records:
                    ctx.pipeline_outputs[plan["parent_output"]] = records[n]
        self._update(row.name, reused_from=source, started_at=now_ms())
        self._set_outputs(row.name, records)
        try:
            view = self._runs.get(source)
            metrics = [metric_point(m.key, m.value, m.timestamp, m.step) for m in view.metrics]
            params = dict(view.params)
            tags = {k: v for k, v in view.tags.items() if not k.startswith(("mlflow.", "mlyard."))}
            self._run_logger.log_batch(row.name, metrics, params, {**tags, "mlyard.reusedFrom": source})
        except MlyardError as exc:
            self._log(row.name, f"could not copy the metrics of {source}: {exc.message}")
        original_log = self.log_path(source)
        if original_log.exists():
            target = self.log_path(row.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("ab") as out:
                out.write(original_log.read_bytes())
        self._finish_row(row.name, "Completed", None)

    def _executor(self, compute: str | None) -> Executor:
        if not compute:
            return self._local
        name = compute.removeprefix("azureml:")
        if name in ("local", "serverless"):
            return self._local
        with self._db.session() as s:
            row = s.get(Compute, name)
        if row is None:
            return self._local
        limit = int(row.spec.get("max_instances") or 1)
        ray_address = str(row.spec.get("address") or "") if row.spec.get("type") == "ray" else None
        with self._lock:
            ex = self._executors.get(name)
            if ex is None or ex.max_parallel != limit or getattr(ex, "address", None) != ray_address:
                ex = self._executors[name] = (RayExecutor(name, ray_address, limit) if ray_address is not None
                                              else LocalExecutor(name, limit))
        return ex


def _step_job_name(pipeline: str, key: str) -> str:
    """``<pipeline>_<step>``: readable, and a valid MLflow run id."""
    name = f"{pipeline}_{re.sub(r'[^A-Za-z0-9_-]', '-', key)}"
    return name if len(name) <= 255 else f"{pipeline[:200]}_{friendly_name()}"


def server_url(host: str, port: int) -> str:
    """The URL a job process uses to reach this server."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{port}"

