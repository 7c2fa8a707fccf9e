"""``/api/v1/batch-endpoints``: batch endpoints, their deployments, invocations (jobs) and their job lists.

An invocation answers with the job it submitted (``/api/v1/jobs/<name>`` follows it), as Azure does.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from mlyard.auth.tokens import Principal
from mlyard.core.errors import InvalidRequestError
from mlyard.server.deps import get_principal, get_services
from mlyard.server.routers.jobs import JobRead
from mlyard.server.services import Services
from mlyard.serving.batch_endpoints import BatchEndpointService
from mlyard.serving.batch_invocations import Invocation
from mlyard.store.batch_schema import BatchDeploymentRow, BatchEndpointRow

router = APIRouter(tags=["batch endpoints"])
Who = Annotated[Principal, Depends(get_principal)]
BASE = "/api/v1/batch-endpoints"


async def get_batch(services: Annotated[Services, Depends(get_services)]) -> BatchEndpointService:
    # the service holds no state of its own: the store is the truth
    return BatchEndpointService(services.db, services.assets, services.jobs)


Svc = Annotated[BatchEndpointService, Depends(get_batch)]


class BatchEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The endpoint spec (Azure ML YAML fields).")


class BatchEndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The new spec: description, tags, defaults.deployment_name.")


class BatchEndpointRead(BaseModel):
    name: str
    auth_mode: str = "aad_token"
    scoring_uri: str = Field(description="Where invocations are posted (they answer with a job).")
    defaults: dict[str, Any]
    provisioning_state: str = "Succeeded"
    description: str | None = None
    tags: dict[str, Any] = Field(default_factory=dict)
    created_at: int
    updated_at: int
    created_by: str

    @classmethod
    def of(cls, row: BatchEndpointRow, base_url: str) -> BatchEndpointRead:
        return cls(name=row.name, scoring_uri=f"{base_url}{BASE}/{row.name}/jobs",
                   defaults={"deployment_name": row.default_deployment},
                   description=row.spec.get("description"), tags=row.spec.get("tags") or {},
                   created_at=row.created_at, updated_at=row.updated_at, created_by=row.created_by)


class BatchDeploymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The deployment spec; local code and components already uploaded.")
    set_default: bool = Field(default=False, description="Make it the endpoint's default deployment.")


class BatchDeploymentRead(BaseModel):
    name: str
    endpoint_name: str
    type: str
    model: str | None
    provisioning_state: str = "Succeeded"
    spec: dict[str, Any]
    created_at: int
    updated_at: int
    created_by: str

    @classmethod
    def of(cls, row: BatchDeploymentRow) -> BatchDeploymentRead:
        return cls(name=row.name, endpoint_name=row.endpoint, type=row.type, model=row.model, spec=row.spec,
                   created_at=row.created_at, updated_at=row.updated_at, created_by=row.created_by)


class DataInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(default=None, description="uri_file or uri_folder (default: the asset's, or uri_folder).")
    path: str = Field(min_length=1, max_length=4000)


class InvocationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment_name: str | None = Field(default=None, max_length=64, description="Default: the endpoint's default.")
    input: DataInput | None = None
    inputs: dict[str, Any] = Field(default_factory=dict, description="Named inputs (inputs.yml), for pipelines.")
    outputs: dict[str, Any] = Field(default_factory=dict, description="Named outputs (inputs.yml).")
    output_path: str | None = Field(default=None, max_length=4000)
    mini_batch_size: int | None = Field(default=None, ge=1)
    instance_count: int | None = Field(default=None, ge=1)
    settings: dict[str, str] = Field(default_factory=dict, description="--set PATH=VALUE overrides of run settings.")
    job_name: str | None = Field(default=None, max_length=255)
    experiment_name: str | None = Field(default=None, max_length=500)


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.post(BASE, response_model=BatchEndpointRead, status_code=201, summary="Create a batch endpoint")
def create_endpoint(body: BatchEndpointCreate, request: Request, batch: Svc, who: Who) -> BatchEndpointRead:
    return BatchEndpointRead.of(batch.create_endpoint(body.spec, who.name), _base_url(request))


@router.get(BASE, response_model=list[BatchEndpointRead], summary="List batch endpoints")
def list_endpoints(request: Request, batch: Svc) -> list[BatchEndpointRead]:
    return [BatchEndpointRead.of(r, _base_url(request)) for r in batch.list_endpoints()]


@router.get(BASE + "/{name}", response_model=BatchEndpointRead, summary="Show a batch endpoint")
def show_endpoint(name: str, request: Request, batch: Svc) -> BatchEndpointRead:
    return BatchEndpointRead.of(batch.get_endpoint(name), _base_url(request))


@router.patch(BASE + "/{name}", response_model=BatchEndpointRead,
              summary="Change description, tags or the default deployment")
def update_endpoint(name: str, body: BatchEndpointUpdate, request: Request, batch: Svc) -> BatchEndpointRead:
    return BatchEndpointRead.of(batch.update_endpoint(name, body.spec), _base_url(request))


@router.delete(BASE + "/{name}", status_code=204, summary="Delete a batch endpoint and its deployments")
def delete_endpoint(name: str, batch: Svc, who: Who) -> None:
    batch.delete_endpoint(name, who.name)


@router.post(BASE + "/{name}/jobs", response_model=JobRead, status_code=201,
             summary="Invoke: submit a job that scores the input with a deployment")
def invoke(name: str, body: InvocationCreate, batch: Svc, who: Who) -> JobRead:
    invocation = Invocation(
        deployment_name=body.deployment_name, input=body.input.model_dump() if body.input else None,
        inputs=body.inputs, outputs=body.outputs, output_path=body.output_path, mini_batch_size=body.mini_batch_size,
        instance_count=body.instance_count, settings=body.settings, job_name=body.job_name,
        experiment_name=body.experiment_name)
    return JobRead.of(batch.invoke(name, invocation, actor=who.name, role=who.role))


@router.get(BASE + "/{name}/jobs", response_model=list[JobRead], summary="Jobs of the endpoint, newest first")
def list_endpoint_jobs(name: str, batch: Svc,
                       max_results: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[JobRead]:
    return [JobRead.of(r) for r in batch.list_jobs(name, max_results=max_results)]


@router.post(BASE + "/{name}/deployments", response_model=BatchDeploymentRead, status_code=201,
             summary="Create a batch deployment")
def create_deployment(name: str, body: BatchDeploymentCreate, batch: Svc, who: Who) -> BatchDeploymentRead:
    return BatchDeploymentRead.of(batch.create_deployment(name, body.spec, who.name, set_default=body.set_default))


@router.get(BASE + "/{name}/deployments", response_model=list[BatchDeploymentRead], summary="List deployments")
def list_deployments(name: str, batch: Svc) -> list[BatchDeploymentRead]:
    return [BatchDeploymentRead.of(r) for r in batch.list_deployments(name)]


@router.get(BASE + "/{name}/deployments/{deployment}", response_model=BatchDeploymentRead,
            summary="Show a batch deployment")
def show_deployment(name: str, deployment: str, batch: Svc) -> BatchDeploymentRead:
    return BatchDeploymentRead.of(batch.get_deployment(name, deployment))


@router.put(BASE + "/{name}/deployments/{deployment}", response_model=BatchDeploymentRead,
            summary="Replace a batch deployment's spec")
def update_deployment(name: str, deployment: str, body: BatchDeploymentCreate, batch: Svc,
                      who: Who) -> BatchDeploymentRead:
    spec = {**body.spec, "name": body.spec.get("name") or deployment}
    if spec["name"] != deployment:
        raise InvalidRequestError(f"the spec names deployment {spec['name']!r}, not {deployment!r}",
                                  details={"field": "name"})
    return BatchDeploymentRead.of(batch.update_deployment(name, spec, set_default=body.set_default, actor=who.name))


@router.delete(BASE + "/{name}/deployments/{deployment}", status_code=204,
               summary="Delete a batch deployment (refused while it is the default)")
def delete_deployment(name: str, deployment: str, batch: Svc, who: Who) -> None:
    batch.delete_deployment(name, deployment, who.name)


@router.get(BASE + "/{name}/deployments/{deployment}/jobs", response_model=list[JobRead],
            summary="Jobs of the deployment, newest first")
def list_deployment_jobs(name: str, deployment: str, batch: Svc,
                         max_results: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[JobRead]:
    return [JobRead.of(r) for r in batch.list_jobs(name, deployment, max_results=max_results)]
