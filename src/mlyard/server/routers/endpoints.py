"""``/api/v1/online-endpoints``: endpoints, their deployments, keys and logs.

Scoring itself is not here: ``/endpoints/<name>/score`` is served by the raw ASGI scoring router
(``serving/router.py``) in front of this app.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from mlyard.auth.tokens import Principal
from mlyard.core.errors import InvalidRequestError
from mlyard.server.deps import get_principal, get_services
from mlyard.server.services import Services
from mlyard.store.serving_schema import OnlineDeploymentRow, OnlineEndpointRow

router = APIRouter(tags=["online endpoints"])
Svc = Annotated[Services, Depends(get_services)]
Who = Annotated[Principal, Depends(get_principal)]
BASE = "/api/v1/online-endpoints"
Percent = Annotated[int, Field(ge=0, le=100)]


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The endpoint spec (Azure ML YAML fields).")


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] | None = Field(default=None, description="A new spec (description, tags, traffic).")
    traffic: dict[str, Percent] | None = Field(default=None, description="Deployment -> % of live traffic.")
    mirror_traffic: dict[str, Percent] | None = Field(default=None, description="One deployment -> % mirrored.")


class EndpointRead(BaseModel):
    name: str
    auth_mode: str
    traffic: dict[str, int]
    mirror_traffic: dict[str, int]
    scoring_uri: str
    provisioning_state: str = "Succeeded"
    description: str | None = None
    tags: dict[str, Any] = Field(default_factory=dict)
    created_at: int
    updated_at: int
    created_by: str

    @classmethod
    def of(cls, row: OnlineEndpointRow, base_url: str) -> EndpointRead:
        return cls(name=row.name, auth_mode=row.auth_mode, traffic=row.traffic or {},
                   mirror_traffic=row.mirror_traffic or {}, scoring_uri=f"{base_url}/endpoints/{row.name}/score",
                   description=row.spec.get("description"), tags=row.spec.get("tags") or {},
                   created_at=row.created_at, updated_at=row.updated_at, created_by=row.created_by)


class KeysRegenerate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_type: str = Field(description="primary or secondary")


class DeploymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The deployment spec; local code already uploaded.")
    all_traffic: bool = Field(default=False, description="Give this deployment 100% of the endpoint's traffic.")


class DeploymentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any]


class WorkerRead(BaseModel):
    instance_id: str = Field(description="g<generation>-<index>, as in the worker log's header.")
    pid: int | None
    state: str = Field(description="starting, ready, unresponsive (failing its liveness probe), down (waiting to "
                                   "restart) or stopped.")
    restarts: int


class DeploymentRead(BaseModel):
    name: str
    endpoint_name: str
    model: str | None
    provisioning_state: str
    instance_count: int
    spec: dict[str, Any]
    created_at: int
    updated_at: int
    created_by: str
    workers: list[WorkerRead] = Field(default_factory=list, description="This server's worker processes of the "
                                      "deployment, live.")

    @classmethod
    def of(cls, row: OnlineDeploymentRow, services: Services) -> DeploymentRead:
        workers = [WorkerRead.model_validate(w) for w in services.endpoints.supervisor.workers(row.endpoint, row.name)]
        return cls(name=row.name, endpoint_name=row.endpoint, model=row.model, provisioning_state=row.state,
                   instance_count=int(row.spec.get("instance_count", 1)), spec=row.spec, created_at=row.created_at,
                   updated_at=row.updated_at, created_by=row.created_by, workers=workers)


class LogsRead(BaseModel):
    text: str


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.post(BASE, response_model=EndpointRead, status_code=201, summary="Create an online endpoint")
def create_endpoint(body: EndpointCreate, request: Request, services: Svc, who: Who) -> EndpointRead:
    return EndpointRead.of(services.endpoints.create_endpoint(body.spec, who.name), _base_url(request))


@router.get(BASE, response_model=list[EndpointRead], summary="List online endpoints")
def list_endpoints(request: Request, services: Svc) -> list[EndpointRead]:
    return [EndpointRead.of(r, _base_url(request)) for r in services.endpoints.list_endpoints()]


@router.get(BASE + "/{name}", response_model=EndpointRead, summary="Show an online endpoint")
def show_endpoint(name: str, request: Request, services: Svc) -> EndpointRead:
    return EndpointRead.of(services.endpoints.get_endpoint(name), _base_url(request))


@router.patch(BASE + "/{name}", response_model=EndpointRead, summary="Change traffic, mirror traffic or the spec")
def update_endpoint(name: str, body: EndpointUpdate, request: Request, services: Svc, who: Who) -> EndpointRead:
    row = services.endpoints.update_endpoint(name, spec=body.spec, traffic=body.traffic,
                                             mirror_traffic=body.mirror_traffic, actor=who.name)
    return EndpointRead.of(row, _base_url(request))


@router.delete(BASE + "/{name}", status_code=204, summary="Delete an endpoint, its deployments and their workers")
def delete_endpoint(name: str, services: Svc, who: Who) -> None:
    services.endpoints.delete_endpoint(name, who.name)


@router.post(BASE + "/{name}/credentials", summary="Get the endpoint's keys, or a fresh token (aml_token)")
def get_credentials(name: str, services: Svc) -> dict[str, Any]:
    return services.endpoints.credentials(name)


@router.post(BASE + "/{name}/regenerate-keys", status_code=204, summary="Regenerate the primary or secondary key")
def regenerate_keys(name: str, body: KeysRegenerate, services: Svc) -> None:
    services.endpoints.regenerate_keys(name, body.key_type)


@router.post(BASE + "/{name}/deployments", response_model=DeploymentRead, status_code=201,
             summary="Create a deployment; returns once its workers are ready")
def create_deployment(name: str, body: DeploymentCreate, services: Svc, who: Who) -> DeploymentRead:
    return DeploymentRead.of(services.endpoints.create_deployment(name, body.spec, who.name,
                                                                  all_traffic=body.all_traffic), services)


@router.get(BASE + "/{name}/deployments", response_model=list[DeploymentRead], summary="List deployments")
def list_deployments(name: str, services: Svc) -> list[DeploymentRead]:
    return [DeploymentRead.of(r, services) for r in services.endpoints.list_deployments(name)]


@router.get(BASE + "/{name}/deployments/{deployment}", response_model=DeploymentRead, summary="Show a deployment")
def show_deployment(name: str, deployment: str, services: Svc) -> DeploymentRead:
    return DeploymentRead.of(services.endpoints.get_deployment(name, deployment), services)


@router.put(BASE + "/{name}/deployments/{deployment}", response_model=DeploymentRead,
            summary="Update a deployment: rolls its workers without failing requests")
def update_deployment(name: str, deployment: str, body: DeploymentUpdate, services: Svc,
                      who: Who) -> DeploymentRead:
    spec = {**body.spec, "name": body.spec.get("name") or deployment}
    if spec["name"] != deployment:
        raise InvalidRequestError(f"the spec names deployment {spec['name']!r}, not {deployment!r}")
    return DeploymentRead.of(services.endpoints.update_deployment(name, spec, who.name), services)


@router.delete(BASE + "/{name}/deployments/{deployment}", status_code=204,
               summary="Delete a deployment (refused while it gets traffic)")
def delete_deployment(name: str, deployment: str, services: Svc, who: Who) -> None:
    services.endpoints.delete_deployment(name, deployment, who.name)


@router.get(BASE + "/{name}/deployments/{deployment}/logs", response_model=LogsRead,
            summary="The last lines of each worker's log")
def deployment_logs(name: str, deployment: str, services: Svc,
                    lines: Annotated[int, Query(ge=1, le=10000)] = 100) -> LogsRead:
    return LogsRead(text=services.endpoints.deployment_logs(name, deployment, lines))
