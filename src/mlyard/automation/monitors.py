"""Monitor runs: a monitor (a schedule with ``create_monitor``) becomes a command job running the engine.

The server never computes a signal itself (``mlyard.monitoring`` stays a pure engine, run in the job's process).
Here a validated ``create_monitor`` is *resolved*:

* signals left out get Azure's defaults (``data-drift-signal``, ``prediction-drift-signal``,
  ``data-quality-signal``) on the target deployment's collected data;
* a signal's missing ``production_data`` is the deployment's collected ``model_inputs`` (``model_outputs`` for
  prediction drift), its missing ``reference_data`` recent past production data of the same asset (the SDK's
  "default" window: twice the production size, ending where the production window starts);
* every data input (``azureml:`` data assets, datastore URIs, the collected ``<endpoint>-<deployment>-model_inputs``
  assets) becomes a job input ``d0``, ``d1``...; the definition refers to it as ``${{inputs.d0}}``, so the job
  runner resolves it to a local path like any job's input.

The job (``python -m mlyard.monitoring.job``, in a curated environment: the server's interpreter) substitutes those
paths, runs the engine, writes ``signals.json`` and ``report.html`` to its output ``signals``, logs the metrics to
its MLflow run, and posts alerted signals back (``monitor_alerts.py``). Its display name is Azure's
``<monitor>-YYYYMMDDThhmmssZ``, its experiment the monitor's name.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from mlyard.assets.service import AssetService
from mlyard.automation.schedule_jobs import SCHEDULE_TAG, display_name, job_name
from mlyard.core.errors import InvalidRequestError, MlyardError, NotFoundError
from mlyard.jobs.environments import mlyard_only_path
from mlyard.jobs.runner import JobRunner
from mlyard.specs import load_spec_dict
from mlyard.specs.references import classify_path, parse_datastore_uri
from mlyard.store.automation_schema import ScheduleRow
from mlyard.store.blobs import DatastoreRegistry
from mlyard.store.jobs_schema import Job

MONITOR_TAG = "mlyard.monitor"
DEFINITION_ENV = "MLYARD_MONITOR_DEFINITION"
OUTPUT = "signals"
# Azure runs monitors on serverless Spark; mlyard runs the engine with the server's interpreter (numpy, scipy,
# pyarrow, mlflow): a curated environment name says so, as batch invocations of no-code models do
ENVIRONMENT = "azureml:AzureML-sklearn-1.5-ubuntu20.04-py38-cpu@latest"
DEFAULT_SIGNALS = {"data-drift-signal": ("data_drift", "model_inputs"),
                   "prediction-drift-signal": ("prediction_drift", "model_outputs"),
                   "data-quality-signal": ("data_quality", "model_inputs")}
OUTPUTS_CONTEXT = ("prediction_drift",)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}")
ENGINE_SIGNALS = ("data_drift", "prediction_drift", "data_quality", "model_performance", "feature_attribution_drift")


def _bad(message: str, field: str) -> InvalidRequestError:
    return InvalidRequestError(message, details={"field": field})


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _days(delta: timedelta) -> str:
    return f"P{delta.days}D" if delta.seconds == 0 else f"PT{int(delta.total_seconds())}S"


def production_size(trigger: dict[str, Any] | None) -> timedelta:
    """The default production lookback size for a schedule's trigger (reference §8.2 and
    ``monitoring/windows.py``, which the job applies; repeated here because automation may not import the engine)."""
    trigger = trigger or {}
    frequency = trigger.get("frequency") if trigger.get("type") == "recurrence" else None
    interval = int(trigger.get("interval") or 1)
    if frequency in ("minute", "hour"):
        return timedelta(days=1)
    return {"day": timedelta(days=interval), "week": timedelta(days=7 * interval),
            "month": timedelta(days=30 * interval)}.get(str(frequency), timedelta(days=7))


def check_monitor_name(name: str) -> None:
    """A monitor's name names its jobs, experiment and event subjects (``<monitor>/<signal>``): Azure's rule for
    schedule names (a letter or digit, then letters, digits, ``-`` and ``_``), at most 200 characters here."""
    if not _NAME.fullmatch(name):
        raise _bad(f"monitor name {name[:80]!r}{'...' if len(name) > 80 else ''} is not a letter or digit followed by "
                   "letters, digits, '-' and '_' (at most 200 characters): it names the runs' jobs, experiment and "
                   "alert events", "name")


@dataclass(frozen=True)
class Target:
    endpoint: str
    deployment: str

    def asset(self, collection: str) -> str:
        return f"{self.endpoint}-{self.deployment}-{collection}"


def _target(definition: dict[str, Any]) -> Target | None:
    text = (definition.get("monitoring_target") or {}).get("endpoint_deployment_id")
    if not text:
        return None
    parts = str(text).removeprefix("azureml:").split(":")
    if len(parts) != 2 or not all(parts):
        raise _bad(f"monitoring_target.endpoint_deployment_id {text!r} is not azureml:<endpoint>:<deployment>",
                   "create_monitor.monitoring_target.endpoint_deployment_id")
    return Target(parts[0], parts[1])


class MonitorService:
    """Runs monitors as jobs and reads their results."""

    def __init__(self, db: Any, assets: AssetService, jobs: JobRunner, datastores: DatastoreRegistry) -> None:
        self._db = db
        self._assets = assets
        self._jobs = jobs
        self._datastores = datastores

    # -- running ------------------------------------------------------------------------------

    def run(self, spec: dict[str, Any], *, actor: str, role: str = "admin", now: datetime | None = None) -> Job:
        """Run a monitor schedule's spec now (local data already uploaded by the client)."""
        clean = load_spec_dict(spec, "schedule").to_dict()
        if not clean.get("create_monitor"):
            raise _bad(f"schedule {clean.get('name')!r} has no create_monitor: 'mlyard monitor run' runs monitor "
                       "schedules; run a job schedule's job with 'mlyard job create'", "create_monitor")
        due = now or datetime.now(UTC)  # exact: rows collected this very second are in the window
        name = f"{job_name(clean['name'], due)}-{secrets.token_hex(3)}"
        return self._submit(clean["name"], clean["create_monitor"], clean.get("trigger"), due, actor=actor,
                            role=role, name=name, schedule=None)

    def run_stored(self, schedule: str, *, actor: str, role: str = "admin", now: datetime | None = None) -> Job:
        """Run a stored monitor schedule now."""
        with self._db.session() as s:
            row = s.get(ScheduleRow, schedule)
        if row is None:
            raise NotFoundError(f"schedule {schedule!r} not found; 'mlyard schedule list' shows them",
                                details={"schedule": schedule})
        if row.action != "create_monitor":
            raise _bad(f"schedule {schedule!r} creates jobs, not monitor runs; 'mlyard monitor run --name' runs "
                       "schedules with create_monitor", "name")
        due = now or datetime.now(UTC)  # exact: rows collected this very second are in the window
        name = f"{job_name(schedule, due)}-{secrets.token_hex(3)}"
        return self._submit(schedule, row.spec["create_monitor"], row.spec.get("trigger"), due, actor=actor,
                            role=role, name=name, schedule=schedule)

    def scheduled(self, schedule: str, create_monitor: dict[str, Any], due: datetime) -> str:
        """The scheduler's ``monitor_runner``: the firing's job is named after the schedule and instant, so a
        firing completed again after a crash finds its job instead of starting a second one."""
        name = job_name(schedule, due)
        with self._db.session() as s:
            row = s.get(ScheduleRow, schedule)
            actor, role = (row.created_by, row.actor_role) if row is not None else ("scheduler", "admin")
            trigger = row.spec.get("trigger") if row is not None else None
            if s.get(Job, name) is not None:
                return name
        return self._submit(schedule, create_monitor, trigger, due, actor=actor, role=role, name=name,
                            schedule=schedule).name

    def _submit(self, monitor: str, create_monitor: dict[str, Any], trigger: dict[str, Any] | None, due: datetime,
                *, actor: str, role: str, name: str, schedule: str | None) -> Job:
        check_monitor_name(monitor)
        spec = self.job_spec(monitor, create_monitor, trigger, due)
        if schedule is not None:
            spec["tags"][SCHEDULE_TAG] = schedule
        return self._jobs.submit(spec, actor=actor, role=role, name=name, experiment_name=monitor,
                                 display_name=display_name(monitor, due), env_mode="inherit")

    def job_spec(self, monitor: str, create_monitor: dict[str, Any], trigger: dict[str, Any] | None,
                 due: datetime) -> dict[str, Any]:
        """The command job of one run: the resolved definition and its data inputs."""
        definition = self.resolve(create_monitor, trigger)
        inputs: dict[str, dict[str, Any]] = {}
        for signal_name, signal in definition["monitoring_signals"].items():
            for key in ("production_data", "reference_data"):
                items = signal.get(key)
                for i, data in enumerate(items if isinstance(items, list) else [items] if items else []):
                    where = f"create_monitor.monitoring_signals.{signal_name}.{key}" + \
                        (f"[{i}]" if isinstance(items, list) else "")
                    data["input_data"]["path"] = self._bind(inputs, data["input_data"], where)
        schedule = {"name": monitor, "trigger": trigger or {"type": "cron", "expression": "0 0 * * *"},
                    "create_monitor": definition}
        words = ["python", "-m", "mlyard.monitoring.job", "--monitor", shlex.quote(monitor),
                 "--output", "${{outputs.signals}}", "--now", _iso(due)]
        for key in inputs:
            words += ["--input", f"{key}=${{{{inputs.{key}}}}}"]
        return {
            "type": "command", "command": " ".join(words), "inputs": inputs,
            "outputs": {OUTPUT: {"type": "uri_folder"}},
            "environment": ENVIRONMENT,
            "environment_variables": {
                DEFINITION_ENV: json.dumps(schedule, sort_keys=True),
                "PYTHONPATH": mlyard_only_path(self._jobs.jobs_dir.parent)},
            "tags": {MONITOR_TAG: monitor},
            "description": f"Run of monitor {monitor} due {due.astimezone(UTC).isoformat()}",
        }

    def _bind(self, inputs: dict[str, dict[str, Any]], data: dict[str, Any], where: str) -> str:
        path = str(data.get("path") or "")
        kind = classify_path(path)
        if kind == "local":
            raise _bad(f"{where}.input_data.path {path!r} is a path on the client; 'mlyard monitor run -f' uploads "
                       "local files, or name a data asset (azureml:<name>:<version>)", f"{where}.input_data.path")
        if kind == "asset":
            try:
                asset = self._assets.resolve("data", path)
            except NotFoundError as exc:
                raise NotFoundError(f"{where}.input_data.path: {exc.message}",
                                    details={"field": f"{where}.input_data.path"}) from None
            given = data.get("type")
            if given and asset.asset_type and given != asset.asset_type:
                raise _bad(f"{where}.input_data: data asset {asset.name}:{asset.version} is a {asset.asset_type}, "
                           f"not a {given}; set input_data.type: {asset.asset_type}", f"{where}.input_data.type")
            data = {**data, "type": given or asset.asset_type}
        wanted = {"type": data.get("type") or "uri_folder", "path": path}
        for key, existing in inputs.items():
            if existing == wanted:
                return f"${{{{inputs.{key}}}}}"
        key = f"d{len(inputs)}"
        inputs[key] = wanted
        return f"${{{{inputs.{key}}}}}"

    def resolve(self, create_monitor: dict[str, Any], trigger: dict[str, Any] | None) -> dict[str, Any]:
        """``create_monitor`` with Azure's default signals and default data filled in (paths still references)."""
        definition: dict[str, Any] = _copy(create_monitor)
        target = _target(definition)
        signals = definition.get("monitoring_signals")
        size = production_size(trigger)
        if not signals:
            if target is None:
                raise _bad("the monitor has no monitoring_signals and no monitoring_target.endpoint_deployment_id: "
                           "name the deployment whose collected data the default signals watch, or list the "
                           "signals", "create_monitor.monitoring_signals")
            signals = {name: {"type": type_, "alert_enabled": True}
                       for name, (type_, _) in DEFAULT_SIGNALS.items()}
            signals["data-drift-signal"]["features"] = "all_features"
            definition["monitoring_signals"] = signals
        if not any(signal.get("type") in ENGINE_SIGNALS for signal in signals.values()):
            kinds = ", ".join(sorted({str(s.get("type")) for s in signals.values()}))
            raise _bad(f"no signal mlyard computes: the signals are {kinds}; mlyard computes "
                       f"{', '.join(ENGINE_SIGNALS)}", "create_monitor.monitoring_signals")
        for name, signal in signals.items():
            if signal.get("type") not in ENGINE_SIGNALS:
                continue
            context = "model_outputs" if signal["type"] in OUTPUTS_CONTEXT else "model_inputs"
            where = f"create_monitor.monitoring_signals.{name}"
            if signal["type"] == "feature_attribution_drift":
                if not signal.get("production_data"):
                    signal["production_data"] = [self._collected(target, c, where + ".production_data")
                                                 for c in ("model_inputs", "model_outputs")]
                continue
            if not signal.get("production_data"):
                signal["production_data"] = self._collected(target, context, where + ".production_data")
            if not signal.get("reference_data"):
                past = self._collected(target, context, where + ".reference_data")
                past["data_window"] = {"lookback_window_size": _days(2 * size), "lookback_window_offset": _days(size)}
                signal["reference_data"] = past
        return definition

    def _collected(self, target: Target | None, collection: str, where: str) -> dict[str, Any]:
        if target is None:
            raise _bad(f"{where} is not set and monitoring_target.endpoint_deployment_id names no deployment whose "
                       "collected data could stand in: give it, or set the deployment", where)
        name = target.asset(collection)
        try:
            self._assets.resolve("data", f"azureml:{name}@latest")
        except NotFoundError:
            raise NotFoundError(
                f"{where}: deployment {target.deployment} of endpoint {target.endpoint} has no collected "
                f"{collection} (data asset {name}): enable data_collector.collections.{collection} in the deployment "
                f"and send it requests, or set {where}", details={"field": where}) from None
        return {"input_data": {"type": "uri_folder", "path": f"azureml:{name}@latest"}, "data_context": collection}

    # -- reading ------------------------------------------------------------------------------

    def runs(self, monitor: str, limit: int = 20) -> list[Job]:
        """The monitor's latest runs, newest first."""
        with self._db.session() as s:
            rows = s.scalars(select(Job).where(Job.experiment_name == monitor, Job.parent.is_(None))
                             .order_by(Job.created_at.desc()).limit(limit * 4)).all()
        return [r for r in rows if is_run_of(r, monitor)][:limit]

    def monitors(self) -> list[dict[str, Any]]:
        """Monitors known here: stored monitor schedules and names of monitors that ran, with their last run."""
        with self._db.session() as s:
            schedules = {r.name: r for r in s.scalars(select(ScheduleRow).where(
                ScheduleRow.action == "create_monitor"))}
            names = {r.experiment_name for r in s.scalars(select(Job).where(Job.parent.is_(None))
                                                          .order_by(Job.created_at.desc()).limit(2000))
                     if (r.spec.get("tags") or {}).get(MONITOR_TAG)}
        out = []
        for name in sorted(set(schedules) | names):
            last = self.runs(name, limit=1)
            row = schedules.get(name)
            out.append({"name": name, "scheduled": row is not None, "enabled": bool(row and row.enabled),
                        "last_run": last[0] if last else None})
        return out

    def schedule_of(self, monitor: str) -> ScheduleRow | None:
        """The stored monitor schedule of that name, if any."""
        with self._db.session() as s:
            row = s.get(ScheduleRow, monitor)
        return row if row is not None and row.action == "create_monitor" else None

    def run_of(self, monitor: str, job: str) -> Job:
        try:
            row = self._jobs.get(job)
        except NotFoundError:
            row = None
        if row is None or not is_run_of(row, monitor):
            raise NotFoundError(f"monitor {monitor!r} has no run {job!r}; 'mlyard monitor show -n {monitor}' lists "
                                "its runs", details={"monitor": monitor, "job": job})
        return row

    def signals(self, row: Job) -> dict[str, Any] | None:
        """The run's ``signals.json``, or None while it is not written (or the run failed before)."""
        return self._read_output(row, "signals.json")

    def report_uri(self, row: Job) -> str | None:
        output = (row.outputs or {}).get(OUTPUT) or {}
        return f"{output['uri'].rstrip('/')}/report.html" if output.get("uri") else None

    def _read_output(self, row: Job, file: str) -> dict[str, Any] | None:
        output = (row.outputs or {}).get(OUTPUT) or {}
        if not output.get("uri"):
            return None
        try:
            where = parse_datastore_uri(output["uri"])
            store = self._datastores.get(where.datastore)
            with store.open_read(f"{where.path.rstrip('/')}/{file}") as handle:
                data = json.loads(handle.read().decode("utf-8"))
        except (MlyardError, OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


def _copy(value: Any) -> Any:
    """A deep copy that shares nothing, even where the source shares a mapping (a YAML anchor): each data input
    is rewritten in place once."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def is_run_of(row: Job, monitor: str) -> bool:
    return row.parent is None and (row.spec.get("tags") or {}).get(MONITOR_TAG) == monitor


def definition_of(row: Job) -> dict[str, Any]:
    """The resolved monitor schedule a run's job carries (its ``create_monitor`` under that key)."""
    text = ((row.spec.get("step") or row.spec).get("environment_variables") or {}).get(DEFINITION_ENV) \
        or (row.spec.get("environment_variables") or {}).get(DEFINITION_ENV) or "{}"
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
