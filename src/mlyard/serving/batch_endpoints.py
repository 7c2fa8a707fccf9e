"""Batch endpoints and deployments: stored specs, the default deployment, and the jobs invocations start.

A batch deployment runs nothing until it is invoked, so creating one is a check and a write: its
model is resolved and pinned (``azureml:name@latest`` becomes the version it names now), its code
must already be on a datastore (the client uploads it), its environment must resolve. Every check
comes before the one transaction that writes the row (and makes it the endpoint's default when the
endpoint has none, as Azure does), so a failed create leaves nothing. An invocation becomes a job
(``batch_invocations.py``), linked to the endpoint and deployment for ``list-jobs``.
"""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.assets.service import AssetService
from mlyard.core.errors import AlreadyExistsError, ConflictError, InvalidRequestError, NotFoundError
from mlyard.core.timeutil import now_ms
from mlyard.jobs.resolve import CURATED_PREFIXES
from mlyard.jobs.runner import JobRunner
from mlyard.serving.batch_invocations import Invocation, InvocationBuilder
from mlyard.specs import load_spec_dict
from mlyard.specs.references import classify_path
from mlyard.store.batch_schema import BatchDeploymentRow, BatchEndpointRow, BatchJobRow
from mlyard.store.db import Database
from mlyard.store.events import append_event
from mlyard.store.jobs_schema import Job


def _endpoint_missing(name: str) -> NotFoundError:
    return NotFoundError(f"batch endpoint {name!r} not found; 'mlyard batch-endpoint list' shows them",
                         details={"endpoint": name})


def _deployment_missing(endpoint: str, name: str) -> NotFoundError:
    return NotFoundError(f"deployment {name!r} of batch endpoint {endpoint!r} not found; "
                         f"'mlyard batch-deployment list -e {endpoint}' shows them",
                         details={"endpoint": endpoint, "deployment": name})


def _deployment_event(s: Session, action: str, row: BatchDeploymentRow, actor: str, **extra: Any) -> None:
    """``batch_deployment.<action>`` in the transaction that writes (or deletes) ``row``."""
    append_event(s, f"batch_deployment.{action}", f"{row.endpoint}/{row.name}", actor, endpoint=row.endpoint,
                 deployment=row.name, type=row.type, model=row.model, **extra)


class BatchEndpointService:
    """Create, change, delete and invoke batch endpoints and deployments."""

    def __init__(self, db: Database, assets: AssetService, jobs: JobRunner) -> None:
        self._db = db
        self._assets = assets
        self._jobs = jobs
        self._builder = InvocationBuilder(assets, jobs)

    # -- endpoints -----------------------------------------------------------------------------

    @staticmethod
    def _clean_endpoint(spec: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        clean = load_spec_dict(spec, "batch-endpoint").to_dict()
        default = (clean.get("defaults") or {}).get("deployment_name")
        return clean, default

    def create_endpoint(self, spec: dict[str, Any], actor: str) -> BatchEndpointRow:
        """Store an endpoint. Its ``defaults.deployment_name`` may name a deployment still to be created
        (Azure's templates write the endpoint file that way); invoking checks it exists."""
        clean, default = self._clean_endpoint(spec)
        name = clean["name"]

        def write(s: Session) -> BatchEndpointRow:
            if s.get(BatchEndpointRow, name) is not None:
                raise AlreadyExistsError(f"batch endpoint {name!r} already exists; change it with "
                                         f"'mlyard batch-endpoint update -n {name}'", details={"endpoint": name})
            at = now_ms()
            row = BatchEndpointRow(name=name, spec=clean, default_deployment=default, created_at=at, updated_at=at,
                                   created_by=actor)
            s.add(row)
            return row

        return self._db.run_in_transaction(write)

    def get_endpoint(self, name: str) -> BatchEndpointRow:
        with self._db.session() as s:
            row = s.get(BatchEndpointRow, name)
        if row is None:
            raise _endpoint_missing(name)
        return row

    def list_endpoints(self) -> builtins.list[BatchEndpointRow]:
        with self._db.session() as s:
            return list(s.scalars(select(BatchEndpointRow).order_by(BatchEndpointRow.name)))

    def update_endpoint(self, name: str, spec: dict[str, Any]) -> BatchEndpointRow:
        """Change description, tags or the default deployment, which must exist."""
        spec = {**spec, "name": spec.get("name") or name}
        clean, default = self._clean_endpoint(spec)
        if clean["name"] != name:
            raise InvalidRequestError(f"the spec names batch endpoint {clean['name']!r}, not {name!r}",
                                      details={"field": "name"})

        def write(s: Session) -> BatchEndpointRow:
            row = s.get(BatchEndpointRow, name)
            if row is None:
                raise _endpoint_missing(name)
            if default is not None and default != row.default_deployment \
                    and s.get(BatchDeploymentRow, (name, default)) is None:
                have = ", ".join(self._names(s, name)) or "none yet"
                raise InvalidRequestError(
                    f"defaults.deployment_name of batch endpoint {name!r} names deployment {default!r}, which does "
                    f"not exist (deployments: {have}); create it first with 'mlyard batch-deployment create'",
                    details={"field": "defaults.deployment_name", "endpoint": name, "deployment": default})
            row.spec = clean
            if default is not None:
                row.default_deployment = default
            row.updated_at = now_ms()
            return row

        return self._db.run_in_transaction(write)

    @staticmethod
    def _names(s: Session, endpoint: str) -> builtins.list[str]:
        return sorted(s.scalars(select(BatchDeploymentRow.name).where(BatchDeploymentRow.endpoint == endpoint)))

    def delete_endpoint(self, name: str, actor: str = "mlyard") -> None:
        """Delete an endpoint with its deployments; the jobs its invocations started stay."""

        def write(s: Session) -> None:
            row = s.get(BatchEndpointRow, name)
            if row is None:
                raise _endpoint_missing(name)
            for model in (BatchJobRow, BatchDeploymentRow):
                for child in s.scalars(select(model).where(model.endpoint == name)):
                    s.delete(child)
                    if isinstance(child, BatchDeploymentRow):
                        _deployment_event(s, "deleted", child, actor)
            s.flush()
            s.delete(row)

        self._db.run_in_transaction(write)

    # -- deployments ---------------------------------------------------------------------------

    def get_deployment(self, endpoint: str, name: str) -> BatchDeploymentRow:
        self.get_endpoint(endpoint)
        with self._db.session() as s:
            row = s.get(BatchDeploymentRow, (endpoint, name))
        if row is None:
            raise _deployment_missing(endpoint, name)
        return row

    def list_deployments(self, endpoint: str) -> builtins.list[BatchDeploymentRow]:
        self.get_endpoint(endpoint)
        with self._db.session() as s:
            return list(s.scalars(select(BatchDeploymentRow).where(BatchDeploymentRow.endpoint == endpoint)
                                  .order_by(BatchDeploymentRow.name)))

    def validate_deployment(self, endpoint: str, spec: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The spec validated as a deployment of ``endpoint``, and its pinned model (``name:version``)."""
        if isinstance(spec, dict) and not spec.get("endpoint_name"):
            spec = {**spec, "endpoint_name": endpoint}
        clean = load_spec_dict(spec, "batch-deployment").to_dict()
        if clean["endpoint_name"] != endpoint:
            raise InvalidRequestError(f"the deployment spec names endpoint {clean['endpoint_name']!r}, but it is "
                                      f"being created under {endpoint!r}; drop endpoint_name or make them agree",
                                      details={"field": "endpoint_name"})
        if clean.get("type") == "pipeline":
            self._check_pipeline(clean)
            return clean, None
        model = self._pin_model(clean)
        code = clean.get("code_configuration")
        if code is not None and classify_path(code["code"]) == "local":
            raise InvalidRequestError(f"code_configuration.code {code['code']!r} is a path on the client; upload it "
                                      "first (the CLI and the SDK do) and send its datastore URI",
                                      details={"field": "code_configuration.code"})
        self._check_environment(clean.get("environment"))
        return clean, model

    def _pin_model(self, clean: dict[str, Any]) -> str:
        model = clean.get("model")
        if not isinstance(model, str):
            raise InvalidRequestError(
                "the deployment's model is inline; register it first ('mlyard model create -f model.yml') and name "
                "it as model: azureml:<name>:<version> (or azureml:<name>@latest)", details={"field": "model"})
        try:
            asset = self._assets.resolve("model", model)
        except NotFoundError as exc:
            raise NotFoundError(f"model: {exc.message}; register it with 'mlyard model create -f model.yml'",
                                details={"field": "model", **exc.details}) from None
        if not asset.path:
            raise InvalidRequestError(f"model {asset.name}:{asset.version} has no files to score with",
                                      details={"field": "model"})
        if clean.get("code_configuration") is None and asset.asset_type != "mlflow_model":
            raise InvalidRequestError(
                f"model {asset.name}:{asset.version} is a {asset.asset_type}, not an mlflow_model: deploy it with "
                "code_configuration (a scoring script with init() and run(mini_batch)) and an environment",
                details={"field": "code_configuration"})
        return f"{asset.name}:{asset.version}"

    def _check_environment(self, env: Any) -> None:
        if not isinstance(env, str):
            return
        low = env.strip().lower()
        if low.startswith(CURATED_PREFIXES) or low.removeprefix("azureml:").startswith(CURATED_PREFIXES):
            return
        try:
            self._assets.resolve("environment", env)
        except NotFoundError:
            raise InvalidRequestError(f"environment {env} is not registered in this workspace: create it with "
                                      "'mlyard environment create -f <file>'",
                                      details={"field": "environment"}) from None

    def _check_pipeline(self, clean: dict[str, Any]) -> None:
        component = clean.get("component")
        if isinstance(component, str):
            try:
                asset = self._assets.resolve("component", component)
            except NotFoundError as exc:
                raise NotFoundError(f"component: {exc.message}; register it with 'mlyard component create -f <file>'",
                                    details={"field": "component"}) from None
            if (asset.spec or {}).get("type") != "pipeline":
                raise InvalidRequestError(f"component {asset.name}:{asset.version} is not a pipeline component; a "
                                          "pipeline batch deployment runs a type: pipeline component",
                                          details={"field": "component"})
        elif isinstance(component, dict):
            from mlyard.jobs.plan import local_paths

            found = local_paths({"jobs": component.get("jobs") or {}})
            if found:
                where, path = found[0]
                raise InvalidRequestError(f"component.{where} {path!r} is a path on the client; upload it first "
                                          "(the CLI and the SDK do)", details={"field": f"component.{where}"})
        job = clean.get("job_definition")
        if job is not None:
            row = self._builder.source_job(job)
            if row.type != "pipeline":
                raise InvalidRequestError(f"job_definition {job} is a {row.type} job; a pipeline batch deployment "
                                          "reruns a pipeline job", details={"field": "job_definition"})

    def create_deployment(self, endpoint: str, spec: dict[str, Any], actor: str, *,
                          set_default: bool = False) -> BatchDeploymentRow:
        """Check and store a deployment; it becomes the default when asked, or when the endpoint has none."""
        self.get_endpoint(endpoint)
        clean, model = self.validate_deployment(endpoint, spec)
        name = clean["name"]

        def write(s: Session) -> BatchDeploymentRow:
            ep = s.get(BatchEndpointRow, endpoint)
            if ep is None:
                raise _endpoint_missing(endpoint)
            if s.get(BatchDeploymentRow, (endpoint, name)) is not None:
                raise AlreadyExistsError(f"deployment {name!r} of batch endpoint {endpoint!r} already exists; change "
                                         f"it with 'mlyard batch-deployment update -n {name} -e {endpoint}'",
                                         details={"endpoint": endpoint, "deployment": name})
            at = now_ms()
            row = BatchDeploymentRow(endpoint=endpoint, name=name, type=clean.get("type", "model"), spec=clean,
                                     model=model, created_at=at, updated_at=at, created_by=actor)
            s.add(row)
            self._maybe_default(ep, name, set_default)
            _deployment_event(s, "created", row, actor)
            return row

        return self._db.run_in_transaction(write)

    @staticmethod
    def _maybe_default(ep: BatchEndpointRow, name: str, set_default: bool) -> None:
        if set_default or ep.default_deployment is None:
            ep.default_deployment = name
            ep.spec = {**ep.spec, "defaults": {**(ep.spec.get("defaults") or {}), "deployment_name": name}}
            ep.updated_at = now_ms()

    def update_deployment(self, endpoint: str, spec: dict[str, Any], *, set_default: bool = False,
                          actor: str = "mlyard") -> BatchDeploymentRow:
        """Replace a deployment's spec (jobs already started keep what they were given)."""
        self.get_endpoint(endpoint)
        clean, model = self.validate_deployment(endpoint, spec)
        name = clean["name"]

        def write(s: Session) -> BatchDeploymentRow:
            ep = s.get(BatchEndpointRow, endpoint)
            row = s.get(BatchDeploymentRow, (endpoint, name))
            if ep is None:
                raise _endpoint_missing(endpoint)
            if row is None:
                raise _deployment_missing(endpoint, name)
            previous = row.model
            row.spec, row.model, row.type, row.updated_at = clean, model, clean.get("type", "model"), now_ms()
            self._maybe_default(ep, name, set_default)
            _deployment_event(s, "updated", row, actor, previous_model=previous)
            return row

        return self._db.run_in_transaction(write)

    def delete_deployment(self, endpoint: str, name: str, actor: str = "mlyard") -> None:
        """Refused while the deployment is its endpoint's default (Azure refuses it too)."""

        def write(s: Session) -> None:
            ep = s.get(BatchEndpointRow, endpoint)
            if ep is None:
                raise _endpoint_missing(endpoint)
            row = s.get(BatchDeploymentRow, (endpoint, name))
            if row is None:
                raise _deployment_missing(endpoint, name)
            if ep.default_deployment == name:
                others = [n for n in self._names(s, endpoint) if n != name]
                advice = (f"make another the default first ('mlyard batch-endpoint update -n {endpoint} --set "
                          f"defaults.deployment_name={others[0]}') or delete the endpoint" if others
                          else f"delete the endpoint instead ('mlyard batch-endpoint delete -n {endpoint}')")
                raise ConflictError(f"deployment {name!r} is the default deployment of batch endpoint {endpoint!r}; "
                                    f"{advice}", details={"endpoint": endpoint, "deployment": name})
            s.delete(row)
            _deployment_event(s, "deleted", row, actor)

        self._db.run_in_transaction(write)

    # -- invocations ---------------------------------------------------------------------------

    def invoke(self, endpoint: str, invocation: Invocation, *, actor: str, role: str) -> Job:
        """Submit the job that scores ``invocation`` with the named (or default) deployment."""
        ep = self.get_endpoint(endpoint)
        deployment = invocation.deployment_name or ep.default_deployment
        if not deployment:
            raise InvalidRequestError(f"batch endpoint {endpoint!r} has no default deployment; name one with "
                                      "--deployment-name, or create one ('mlyard batch-deployment create')",
                                      details={"endpoint": endpoint})
        row = self.get_deployment(endpoint, deployment)
        submission = self._builder.build(ep, row, invocation)
        job = self._jobs.submit(submission.spec, actor=actor, role=role, name=submission.name,
                                experiment_name=invocation.experiment_name or endpoint,
                                display_name=submission.display_name)
        link = BatchJobRow(job=job.name, endpoint=endpoint, deployment=deployment, created_at=job.created_at)
        try:
            self._db.run_in_transaction(lambda s: s.add(link))
        except BaseException:
            self._jobs.cancel(job.name, actor)
            raise
        return job

    def list_jobs(self, endpoint: str, deployment: str | None = None,
                  max_results: int = 50) -> builtins.list[Job]:
        """The jobs of an endpoint's (or one deployment's) invocations, newest first."""
        if deployment is not None:
            self.get_deployment(endpoint, deployment)
        else:
            self.get_endpoint(endpoint)
        query = select(Job).join(BatchJobRow, BatchJobRow.job == Job.name).where(BatchJobRow.endpoint == endpoint)
        if deployment is not None:
            query = query.where(BatchJobRow.deployment == deployment)
        with self._db.session() as s:
            return list(s.scalars(query.order_by(Job.created_at.desc(), Job.name).limit(max_results)))
