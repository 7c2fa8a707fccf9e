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
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from mlyard.assets.service import AssetService, FileEntry
from mlyard.core.errors import (
    AlreadyExistsError,
    InvalidRequestError,
    MlyardError,
    NotFoundError,
    ServerUnavailableError,
)
from mlyard.core.hashing import sha256_json
from mlyard.core.ids import friendly_name
from mlyard.core.timeutil import now_ms
from mlyard.jobs.data import MODEL_TYPES, DataRef, JobData
from mlyard.jobs.environments import ENV_MODES, EnvironmentCache, PreparedEnvironment, environment_identity
from mlyard.jobs.executors import Executor, Handle, Launch, LocalExecutor, kill_group, leftover_processes
from mlyard.jobs.plan import StepPlan, check_job_name, plan_pipeline, refuse_local_paths, step_from_command_job
from mlyard.jobs.render import literal_text, path_text, render_command
from mlyard.specs import load_spec_dict
from mlyard.specs.bindings import find_bindings, single_binding
from mlyard.specs.references import classify_path, parse_asset_reference, parse_datastore_uri
from mlyard.store.blobs import DatastoreRegistry
from mlyard.store.datastores import datastore_uri
from mlyard.store.db import Database
from mlyard.store.jobs_schema import TERMINAL, Compute, Job
from mlyard.tracking.artifacts import artifact_path
from mlyard.tracking.experiments import ExperimentService
from mlyard.tracking.records import RunLogger, metric_point
from mlyard.tracking.runs import RunService

log = logging.getLogger("mlyard.jobs")

MLFLOW_STATUS = {"NotStarted": "SCHEDULED", "Queued": "SCHEDULED", "Preparing": "SCHEDULED", "Running": "RUNNING",
                 "Finalizing": "RUNNING", "Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}
LOG_FILE = "user_logs/std_log.txt"
TAIL_LINES = 20
RUNNER = "mlyard-job-runner"  # the actor of status changes the runner makes


class JobTokens(Protocol):
    """Issues each running step an API token of its own, acting as the user who submitted the job."""

    def issue(self, actor: str, role: str) -> tuple[str, str]:
        """A new token for ``actor``: (secret, hash)."""
        ...

    def revoke(self, token_hash: str) -> None: ...
CURATED_PREFIXES = ("azureml-", "azureml://registries/azureml/")


class StepFailed(MlyardError):
    """A step could not be prepared or finalised; the message is the reason shown on the job."""

    code = "step_failed"
    status_code = 500


@dataclass
class Active:
    """What the runner holds in memory for a job that is running."""

    cancel: threading.Event = field(default_factory=threading.Event)
    handles: dict[str, tuple[Executor, Handle]] = field(default_factory=dict)
    thread: threading.Thread | None = None
    reason: str = "canceled"  # what a canceled job's error says


@dataclass
class StepResult:
    key: str
    status: str
    error: str | None = None


class JobRunner:
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
        self._executors: dict[str, LocalExecutor] = {}
        self._active: dict[str, Active] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._tokens = tokens

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Fail what the previous server left unfinished."""
        self.recover()

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

    def recover(self) -> list[str]:
        """Mark jobs left unfinished by a stopped server as failed and kill their leftover processes."""
        with self._db.session() as s:
            rows = list(s.scalars(select(Job).where(Job.status.not_in(TERMINAL))))
        if not rows:
            return []
        names = {r.name for r in rows}
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
        if kind == "sweep":
            raise InvalidRequestError("sweep jobs are not run by mlyard yet; run the trial as a command job")
        refuse_local_paths(job)
        name = check_job_name(name or job.get("name") or friendly_name())
        mode = env_mode or self.default_env_mode
        if mode not in ENV_MODES:
            raise InvalidRequestError(f"env mode {mode!r} is not one of {', '.join(ENV_MODES)}")
        experiment = (experiment_name or job.get("experiment_name") or "Default").strip() or "Default"
        settings = job.get("settings") or {}
        force = bool(settings.get("force_rerun"))
        if kind == "pipeline":
            plans = plan_pipeline(job, self._resolve_component)
        else:
            plans = [StepPlan(name, step_from_command_job(job))]
        experiment_id = self._experiment_id(experiment)
        now = now_ms()
        top = Job(name=name, parent=None, step=None, position=0, type=kind, status="NotStarted",
                  display_name=display_name or job.get("display_name") or name, experiment_name=experiment,
                  experiment_id=int(experiment_id), compute=job.get("compute"), env_mode=mode,
                  spec=job if kind == "pipeline" else {**job, "step": plans[0].spec}, inputs={}, outputs={},
                  depends_on=[], force_rerun=force, notes=[w for w in loaded.warnings], created_at=now,
                  created_by=actor, actor_role=role)
        steps = [] if kind != "pipeline" else [
            Job(name=_step_job_name(name, p.key), parent=name,
                step=p.key, position=i, type="command", status="NotStarted", display_name=p.spec.get("display_name"),
                experiment_name=experiment, experiment_id=int(experiment_id), compute=p.spec.get("compute"),
                env_mode=mode, spec=p.spec, inputs={}, outputs={}, depends_on=p.depends_on, force_rerun=force,
                notes=[], created_at=now, created_by=actor, actor_role=role)
            for i, p in enumerate(plans)]

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
        self._set_status(name, "Queued")
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
                         "mlflow.parentRunId": top.name, "mlyard.step": step.step or ""}
            self._runs.create(str(step.experiment_id), actor, step.display_name or step.step, None, step_tags, actor,
                              run_id=step.name, status="SCHEDULED")

    def _resolve_component(self, reference: str) -> dict[str, Any]:
        asset = self._assets.resolve("component", reference)
        return dict(asset.spec)

    # -- queries ---------------------------------------------------------------------------

    def get(self, name: str) -> Job:
        with self._db.session() as s:
            row = s.get(Job, name)
        if row is None:
            raise NotFoundError(f"job {name!r} not found; 'mlyard job list' shows the jobs")
        return row

    def children(self, name: str) -> list[Job]:
        with self._db.session() as s:
            return list(s.scalars(select(Job).where(Job.parent == name).order_by(Job.position)))

    def list(self, parent: str | None = None, max_results: int = 50) -> list[Job]:
        with self._db.session() as s:
            q = select(Job).where(Job.parent == parent) if parent else select(Job).where(Job.parent.is_(None))
            return list(s.scalars(q.order_by(Job.created_at.desc(), Job.name).limit(max_results)))

    def log_path(self, name: str) -> Path:
        return self.jobs_dir / name / LOG_FILE

    def read_log(self, name: str, offset: int = 0, limit: int = 1 << 20) -> tuple[bytes, int]:
        """Log bytes of a job from ``offset`` (the pipeline's own log for a pipeline)."""
        self.get(name)
        path = self.log_path(name)
        if not path.exists():
            return b"", offset
        with path.open("rb") as f:
            f.seek(max(0, offset))
            data = f.read(limit)
        return data, max(0, offset) + len(data)

    # -- cancel ----------------------------------------------------------------------------

    def cancel(self, name: str, actor: str) -> Job:
        row = self.get(name)
        top = row.parent or row.name
        if row.status in TERMINAL:
            raise InvalidRequestError(f"job {name} is already {row.status}; there is nothing to cancel")
        if not self._cancel_active(top, f"canceled by {actor}"):
            self._finish_row(name, "Canceled", f"canceled by {actor}")
        return self.get(name)

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
            else:
                self._run_step(row, None, actor)
        except Exception as exc:  # noqa: BLE001 - a runner bug must not leave the job hanging
            log.exception("job %s failed in the runner", name)
            self._finish_row(name, "Failed", f"mlyard could not run the job: {exc}")
        finally:
            with self._lock:
                self._active.pop(name, None)

    def _run_pipeline(self, top: Job, actor: str) -> None:
        act = self._active_of(top.name)
        self._set_status(top.name, "Running", started=True)
        self._log(top.name, f"pipeline {top.name}: {len(self.children(top.name))} steps")
        settings = top.spec.get("settings") or {}
        keep_going = bool(settings.get("continue_on_step_failure"))
        try:
            parent_inputs = {k: self._resolve_value(v, None, "pipeline input") for k, v in
                             (top.spec.get("inputs") or {}).items()}
        except MlyardError as exc:
            self._finish_children(top.name, "Canceled", "not run: the pipeline's inputs could not be resolved")
            self._finish_row(top.name, "Failed", f"pipeline inputs: {exc.message}")
            return
        ctx = PipelineContext(top, parent_inputs)
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
                self._cancel_active(top.name, f"canceled: step '{res.key}' failed")
        failed = [k for k, r in results.items() if r.status == "Failed"]
        outputs = {z: rec for z, rec in ctx.pipeline_outputs.items()}
        self._set_outputs(top.name, outputs)
        if failed:
            first = steps[failed[0]]
            error = self._failure_message(first)
            self._finish_row(top.name, "Failed", error)
        elif any(r.status == "Canceled" for r in results.values()) or act.cancel.is_set():
            self._finish_row(top.name, "Canceled", act.reason if act.cancel.is_set() else "a step was canceled")
        else:
            self._register_pipeline_outputs(top, outputs, actor)
            self._finish_row(top.name, "Completed", None)

    def _failure_message(self, step: Job) -> str:
        row = self.get(step.name)
        tail = self.log_tail(step.name)
        reason = row.error or "failed"
        return f"step '{step.step}' failed: {reason}" + (f"\n--- last lines of its log ---\n{tail}" if tail else "")

    def log_tail(self, name: str, lines: int = TAIL_LINES) -> str:
        path = self.log_path(name)
        if not path.exists():
            return ""
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 64 * 1024))
            text = f.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _active_of(self, top: str) -> Active:
        with self._lock:
            return self._active.setdefault(top, Active())

    # -- one step ------------------------------------------------------------------------------

    def _run_step(self, row: Job, ctx: PipelineContext | None, actor: str) -> StepResult:
        top = ctx.top.name if ctx else row.name
        act = self._active_of(top)
        key = row.step or row.name
        step = row.spec if ctx else row.spec["step"]
        if act.cancel.is_set():
            self._finish_row(row.name, "Canceled", f"not started: {act.reason}")
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
            if act.cancel.is_set():
                self._finish_row(row.name, "Canceled", f"not started: {act.reason}")
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
        if act.cancel.is_set():
            self._finish_row(row.name, "Canceled", act.reason)
            return StepResult(key, "Canceled")
        timeout = (step.get("limits") or {}).get("timeout")
        self._log(row.name, f"running: {command}")
        handle = executor.start(Launch(row.name, command, wd, launch_env, self.log_path(row.name), timeout))
        act.handles[row.name] = (executor, handle)
        if act.cancel.is_set():  # canceled while the process was starting
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
            self._finish_row(row.name, "Canceled", act.reason)
            return StepResult(key, "Canceled")
        if outcome.exit_code != 0:
            message = f"the command exited with code {outcome.exit_code}"
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

    def _resolve_value(self, value: Any, ctx: PipelineContext | None, what: str,
                       declared: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """A step or pipeline input value, bindings resolved: ``{"kind": "literal"|"data", ...}`` or None."""
        if value is None:
            return None
        if isinstance(value, dict) and "path" not in value and "value" in value:
            return self._resolve_value(value["value"], ctx, what, declared)
        if isinstance(value, dict):
            path = value["path"]
            type_ = value.get("type")
            mode = value.get("mode") or (declared or {}).get("mode")
            bound = self._binding(path, ctx) if "${{" in path else None
            if bound is not None:
                if bound.get("kind") != "data":
                    raise InvalidRequestError(f"{what}: {path} is a literal, not data")
                return {**bound, "type": type_ or bound["type"], "mode": mode or bound.get("mode")}
            ref = self._data.resolve(path, type_ or "uri_folder")
            return {**ref.to_json(), "mode": mode}
        if isinstance(value, str) and "${{" in value:
            single = single_binding(value)
            if single is not None:
                bound = self._binding(value, ctx)
                if bound is not None and bound.get("kind") == "data" and (declared or {}).get("mode") \
                        and not bound.get("mode"):
                    bound = {**bound, "mode": declared["mode"]}  # type: ignore[index]
                return bound
            text = value
            for b in reversed(find_bindings(value)):
                part = self._binding(b.text, ctx)
                shown = "" if part is None else (literal_text(part["value"]) if part["kind"] == "literal"
                                                 else part["uri"])
                text = text[:b.span[0]] + shown + text[b.span[1]:]
            return {"kind": "literal", "value": text}
        return {"kind": "literal", "value": value}

    def _binding(self, text: str, ctx: PipelineContext | None) -> dict[str, Any] | None:
        b = single_binding(text)
        if b is None or ctx is None:
            raise InvalidRequestError(f"{text} cannot be resolved here")
        if b.kind == "parent_inputs":
            return ctx.inputs.get(b.name or "")
        if b.kind == "parent_job_outputs":
            done = ctx.done.get(b.step or "")
            record = (done.outputs or {}).get(b.name or "") if done else None
            if record is None:
                raise InvalidRequestError(f"{text}: step '{b.step}' has no output '{b.name}'")
            return {"kind": "data", "type": record["type"], "uri": record["uri"], "identity": f"tree:{record['tree']}"}
        if b.kind == "parent_job_inputs":
            done = ctx.done.get(b.step or "")
            return (done.inputs or {}).get(b.name or "") if done else None
        raise InvalidRequestError(f"{text} cannot be used as an input value")

    def _step_inputs(self, step: dict[str, Any], ctx: PipelineContext | None) -> dict[str, Any]:
        declared = step.get("declared_inputs")
        given = dict(step.get("inputs") or {})
        resolved = {n: self._resolve_value(v, ctx, f"inputs.{n}", (declared or {}).get(n)) for n, v in given.items()}
        for n, decl in (declared or {}).items():
            if resolved.get(n) is None and decl.get("default") is not None:
                default = decl["default"]
                if decl.get("type") in ("string", "number", "integer", "boolean"):
                    resolved[n] = {"kind": "literal", "value": default}
                else:
                    resolved[n] = self._resolve_value({"type": decl["type"], "path": default}, ctx, f"inputs.{n}")
            resolved.setdefault(n, None)
            if resolved[n] is None and not decl.get("optional"):
                raise InvalidRequestError(f"required input '{n}' has no value: bind it under the step's inputs:")
        return resolved

    def _step_outputs(self, row: Job, step: dict[str, Any], ctx: PipelineContext | None) -> dict[str, Any]:
        declared = step.get("declared_outputs")
        names = list(declared) if declared is not None else list(step.get("outputs") or {})
        default_ds = self._default_datastore(ctx.top.spec if ctx else row.spec)
        plans = {}
        for n in names:
            value = (step.get("outputs") or {}).get(n)
            decl = (declared or {}).get(n) or {}
            parent_output = None
            bound = single_binding(value if isinstance(value, str) else str((value or {}).get("path") or ""))
            if isinstance(value, str) or (bound is not None and bound.kind == "parent_outputs"):
                text = value if isinstance(value, str) else str((value or {}).get("path"))
                b = bound
                if b is None or b.kind != "parent_outputs" or ctx is None:
                    raise InvalidRequestError(f"outputs.{n}: {text} must be ${{{{parent.outputs.<name>}}}}")
                parent_output = b.name
                pipe = (ctx.top.spec.get("outputs") or {}).get(b.name) or {}
                overrides = value if isinstance(value, dict) else {}
                spec = {**pipe, **{k: v for k, v in overrides.items() if k != "path" and v is not None}}
                owner = ctx.top.name
                out_name = b.name or n
            else:
                spec = value or {}
                owner = row.name
                out_name = n
            type_ = spec.get("type") or decl.get("type") or "uri_folder"
            path = spec.get("path")
            if path:
                path = (path.replace("${{name}}", owner).replace("${{output_name}}", out_name)
                        .replace("${{default_datastore}}", default_ds))
                ds, rel = parse_datastore_uri(path)
            else:
                ds, rel = default_ds, f"azureml/{owner}/{out_name}"
                if type_ == "uri_file":
                    rel = f"{rel}/{out_name}"
            self._datastores.get(ds)
            is_file = type_ == "uri_file"
            register = {k: spec[k] for k in ("name", "version", "description") if spec.get(k) is not None}
            plans[n] = {"type": type_, "mode": spec.get("mode") or decl.get("mode") or "rw_mount", "datastore": ds,
                        "path": rel.strip("/"), "is_file": is_file, "filename": rel.rstrip("/").rsplit("/", 1)[-1],
                        "register": register or None, "parent_output": parent_output,
                        "config": {"type": type_, "mode": spec.get("mode"), "path": spec.get("path"),
                                   "register": register or None, "parent": parent_output}}
        return plans

    def _default_datastore(self, spec: dict[str, Any]) -> str:
        ds = (spec.get("settings") or {}).get("default_datastore")
        if isinstance(ds, str) and ds.strip():
            return ds.strip().removeprefix("azureml:")
        return self._datastores.default_name()

    def _environment(self, env: Any) -> tuple[dict[str, Any] | None, str | None]:
        if env is None:
            return None, None
        if isinstance(env, dict):
            return env, None
        text = str(env)
        low = text.lower().removeprefix("azureml:")
        if low.startswith(CURATED_PREFIXES):
            return None, (f"environment {text} is a curated Azure ML environment: mlyard runs it with the server's "
                          "interpreter and the default packages (pandas, scikit-learn, mlflow, ...)")
        if classify_path(text) == "registry":
            raise InvalidRequestError(f"environment {text} is in an Azure ML registry mlyard cannot reach; register "
                                      "it here with 'mlyard environment create -f'")
        try:
            asset = self._assets.resolve("environment", text)
        except NotFoundError:
            ref = parse_asset_reference(text)
            raise InvalidRequestError(f"environment {text} is not registered in this workspace: create it with "
                                      f"'mlyard environment create -f <file>' (name: {ref.name})") from None
        return dict(asset.spec), None

    def _cache_key(self, step: dict[str, Any], inputs: dict[str, Any], outputs: dict[str, Any], env_identity: str,
                   env_mode: str) -> str:
        return sha256_json({
            "command": step.get("command"), "code": step.get("code"), "environment": env_identity,
            "env_mode": env_mode,
            "inputs": {n: None if v is None else (
                {"literal": literal_text(v["value"])} if v["kind"] == "literal"
                else {"data": v["identity"], "type": v["type"], "mode": v.get("mode")}) for n, v in inputs.items()},
            "outputs": {n: p["config"] for n, p in outputs.items()},
            "settings": {k: step.get(k) for k in ("environment_variables", "distribution", "resources", "compute")},
        })

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
        with self._lock:
            ex = self._executors.get(name)
            if ex is None or ex.max_parallel != limit:
                ex = self._executors[name] = LocalExecutor(name, limit)
        return ex

    def _snapshot(self, code: str | None, jobdir: Path) -> Path:
        wd = jobdir / "wd"
        if wd.exists():
            shutil.rmtree(wd)
        if not code:
            wd.mkdir(parents=True)
            return wd
        ds, rel = parse_datastore_uri(code)
        store = self._datastores.get(ds)
        local = store.local_path(rel)
        if local is not None and os.path.isdir(local):
            shutil.copytree(local, wd, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            wd.mkdir(parents=True)
            fetched = self._data.materialise(DataRef("uri_folder", code, ""), "download", jobdir / "code")
            src = Path(fetched)
            if src.is_dir():
                shutil.copytree(src, wd, dirs_exist_ok=True)
            else:
                shutil.copy2(src, wd / src.name)
        return wd

    def _input_text(self, name: str, value: dict[str, Any] | None, jobdir: Path) -> str | None:
        if value is None:
            return None
        if value["kind"] == "literal":
            return literal_text(value["value"])
        ref = DataRef(value["type"], value["uri"], value["identity"])
        return self._data.materialise(ref, value.get("mode"), jobdir / "inputs" / name)

    def _process_env(self, row: Job, step: dict[str, Any], env: PreparedEnvironment, inputs: dict[str, str | None],
                     outputs: dict[str, str], token: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("MLYARD_", "MLFLOW_")) and k not in ("VIRTUAL_ENV", "PYTHONHOME")}
        base["PATH"] = env.bin_dir + os.pathsep + base.get("PATH", os.defpath)
        base.setdefault("PYTHONUNBUFFERED", "1")
        base.setdefault("DO_NOT_TRACK", "true")
        base["MLFLOW_DISABLE_TELEMETRY"] = "true"
        for k, v in (step.get("environment_variables") or {}).items():
            base[str(k)] = str(v)
        for n, text in inputs.items():
            if text is not None:
                base[f"AZURE_ML_INPUT_{n}"] = text
        for n, path in outputs.items():
            base[f"AZURE_ML_OUTPUT_{n}"] = path
        base.update({
            "MLFLOW_TRACKING_URI": self.server_url,
            "MLFLOW_RUN_ID": row.name,
            "MLFLOW_EXPERIMENT_ID": str(row.experiment_id),
            "MLFLOW_EXPERIMENT_NAME": row.experiment_name,
            "MLFLOW_TRACKING_TOKEN": token,
            "MLYARD_URL": self.server_url,
            "MLYARD_TOKEN": token,
            "MLYARD_JOB_NAME": row.name,
            "AZUREML_RUN_ID": row.name,
        })
        return base

    def _finalise_outputs(self, row: Job, outputs: dict[str, Any], jobdir: Path,
                          ctx: PipelineContext | None) -> dict[str, Any]:
        records: dict[str, Any] = {}
        for n, plan in outputs.items():
            local = jobdir / "outputs" / n
            source = local / plan["filename"] if plan["is_file"] else local
            if plan["is_file"] and not source.exists():
                raise StepFailed(f"output '{n}' is a uri_file, but the command wrote nothing at {source}")
            tree, files = self._data.upload(source, plan["datastore"], plan["path"], is_file=plan["is_file"])
            record = {"type": plan["type"], "uri": datastore_uri(plan["datastore"], plan["path"]), "tree": tree,
                      "files": len(files), "bytes": sum(f.size for f in files)}
            if plan["register"] and files:
                record["asset"] = self._register(plan["register"], plan["type"], record["uri"], files, row.created_by)
            records[n] = record
            if ctx is not None and plan["parent_output"]:
                ctx.pipeline_outputs[plan["parent_output"]] = record
        return records

    def _register(self, register: dict[str, Any], type_: str, uri: str, files: Sequence[Any], actor: str) -> str:
        kind = "model" if type_ in MODEL_TYPES else "data"
        spec = {"name": register["name"], "type": type_, "path": uri,
                **{k: register[k] for k in ("version", "description") if register.get(k) is not None}}
        entries = [FileEntry(f.path, f.sha256, f.size) for f in files]
        asset, _ = self._assets.create(kind, spec, entries, actor)  # type: ignore[arg-type]
        return f"{asset.name}:{asset.version}"

    def _register_pipeline_outputs(self, top: Job, outputs: dict[str, Any], actor: str) -> None:
        for z, spec in (top.spec.get("outputs") or {}).items():
            record = outputs.get(z)
            if not spec or not spec.get("name") or record is None or record.get("asset"):
                continue
            ds, rel = parse_datastore_uri(record["uri"])
            store = self._datastores.get(ds)
            base = rel.rstrip("/").rsplit("/", 1)[-1]
            files = []
            with self._db.session() as s:
                from mlyard.store.schema import Blob

                for f in store.list_files(rel):
                    blob = s.get(Blob, (ds, f.path))
                    if blob is not None:
                        inner = f.path[len(rel.rstrip('/')) + 1:] if f.path != rel else ""
                        files.append(FileEntry(f"{base}/{inner}" if inner else base, blob.sha256, blob.size))
            try:
                record["asset"] = self._register(spec, record["type"], record["uri"], files, actor)
            except MlyardError as exc:
                self._note(top.name, f"output {z} was not registered: {exc.message}")
        self._set_outputs(top.name, outputs)

    def _collect_artifacts(self, row: Job, wd: Path) -> None:
        """``./outputs`` and ``./logs`` of the working folder, and the job's log, become run artifacts."""
        try:
            run = self._runs.get(row.name).row
            root = artifact_path(run.artifact_uri)
        except MlyardError:
            return
        store = self._datastores.get(self._datastores.default_name())
        pairs = [(self.log_path(row.name), LOG_FILE)]
        for folder in ("outputs", "logs"):
            base = wd / folder
            if base.is_dir():
                pairs += [(p, f"{folder}/{p.relative_to(base).as_posix()}") for p in sorted(base.rglob("*"))
                          if p.is_file()]
        for local, rel in pairs:
            if local.exists():
                try:
                    store.put_file(local, f"{root}/{rel}")
                except MlyardError as exc:
                    self._log(row.name, f"could not keep {rel} as a run artifact: {exc.message}")

    # -- rows ------------------------------------------------------------------------------

    def _update(self, name: str, **values: Any) -> None:
        def write(s: Any) -> None:
            row = s.get(Job, name)
            if row is not None:
                for k, v in values.items():
                    setattr(row, k, v)

        self._db.run_in_transaction(write)

    def _set_outputs(self, name: str, outputs: dict[str, Any]) -> None:
        self._update(name, outputs=dict(outputs))

    def _note(self, name: str, text: str) -> None:
        def write(s: Any) -> None:
            row = s.get(Job, name)
            if row is not None and text not in (row.notes or []):
                row.notes = [*(row.notes or []), text]

        self._db.run_in_transaction(write)
        self._log(name, text)

    def _set_status(self, name: str, status: str, *, started: bool = False) -> None:
        def write(s: Any) -> str | None:
            row = s.get(Job, name)
            if row is None or row.status in TERMINAL:
                return None
            row.status = status
            if started and row.started_at is None:
                row.started_at = now_ms()
            return MLFLOW_STATUS[status]

        mlflow_status = self._db.run_in_transaction(write)
        if mlflow_status is not None:
            self._sync_run(name, mlflow_status, None)

    def _finish_row(self, name: str, status: str, error: str | None) -> None:
        token: list[str] = []

        def write(s: Any) -> bool:
            row = s.get(Job, name)
            if row is None or row.status in TERMINAL:
                return False
            row.status = status
            row.error = error
            row.ended_at = now_ms()
            row.pid = None
            if row.token_hash:
                token.append(row.token_hash)
                row.token_hash = None
            return True

        finished = self._db.run_in_transaction(write)
        for token_hash in token:
            self._tokens.revoke(token_hash)  # the step's processes are gone: so is their token
        if finished:
            self._sync_run(name, MLFLOW_STATUS[status], now_ms())
            if status != "Completed" and error:
                self._log(name, f"{status}: {error.splitlines()[0]}")

    def _finish_children(self, top: str, status: str, error: str) -> None:
        for child in self.children(top):
            self._finish_row(child.name, status, error)

    def _sync_run(self, name: str, status: str, end_time: int | None) -> None:
        try:
            run = self._runs.get(name).row
            if run.status != status or end_time is not None:
                self._runs.update(name, status, end_time, None, RUNNER)
        except MlyardError:
            pass  # the run was deleted through MLflow: the job goes on

    def _log(self, name: str, line: str) -> None:
        path = self.log_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%H:%M:%S")
        with path.open("ab") as f:
            f.write(f"[mlyard {stamp}] {line}\n".encode())


@dataclass
class PipelineContext:
    """What steps of one pipeline see of their parent while it runs."""

    top: Job
    inputs: dict[str, Any]
    done: dict[str, Job] = field(default_factory=dict)
    pipeline_outputs: dict[str, Any] = field(default_factory=dict)


def _step_job_name(pipeline: str, key: str) -> str:
    """``<pipeline>_<step>``: readable, and a valid MLflow run id."""
    import re

    name = f"{pipeline}_{re.sub(r'[^A-Za-z0-9_-]', '-', key)}"
    return name if len(name) <= 255 else f"{pipeline[:200]}_{friendly_name()}"


def server_url(host: str, port: int) -> str:
    """The URL a job process uses to reach this server."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def python_executable() -> str:
    return sys.executable


Callback = Callable[[str], None]
