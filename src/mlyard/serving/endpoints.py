"""Online endpoints and deployments: stored specs, traffic rules, keys, and the workers behind them.

The store is the truth; :attr:`EndpointService.live` is a snapshot of what the scoring router needs
(auth mode, keys, traffic), replaced whole after every change so the router reads it without a lock.
A deployment row is written only once its workers answered ready, so a failed create leaves nothing.
"""

from __future__ import annotations

import builtins
import logging
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.assets.service import AssetService
from mlyard.core.errors import AlreadyExistsError, ConflictError, InvalidRequestError, MlyardError, NotFoundError
from mlyard.core.timeutil import now_ms
from mlyard.jobs.environments import EnvironmentCache
from mlyard.serving import keys as keyring
from mlyard.serving.plans import DeploymentResolver
from mlyard.serving.supervisor import Supervisor
from mlyard.specs import load_spec_dict
from mlyard.store.blobs import DatastoreRegistry
from mlyard.store.db import Database
from mlyard.store.events import append_event
from mlyard.store.serving_schema import OnlineDeploymentRow, OnlineEndpointRow

log = logging.getLogger("mlyard.serving")

KEY_TYPES = ("primary", "secondary")


@dataclass(frozen=True)
class LiveEndpoint:
    """What the router needs of one endpoint."""

    name: str
    auth_mode: str
    keys: dict[str, str]
    traffic: dict[str, int]
    mirror_traffic: dict[str, int]
    deployments: frozenset[str]


def _live(row: OnlineEndpointRow, deployments: frozenset[str]) -> LiveEndpoint:
    return LiveEndpoint(row.name, row.auth_mode, dict(row.keys), dict(row.traffic or {}),
                        dict(row.mirror_traffic or {}), deployments)


def _split(traffic: dict[str, int] | None) -> dict[str, int]:
    """Traffic as it routes requests: deployments at 0% send nothing, so they are left out."""
    return {k: v for k, v in sorted((traffic or {}).items()) if v}


def _traffic_event(s: Session, row: OnlineEndpointRow, before: tuple[dict[str, int], dict[str, int]],
                   actor: str) -> None:
    """``online_endpoint.traffic_changed`` when ``row``'s traffic or mirror traffic routes otherwise than ``before``."""
    after = (_split(row.traffic), _split(row.mirror_traffic))
    if after != (_split(before[0]), _split(before[1])):
        append_event(s, "online_endpoint.traffic_changed", row.name, actor, endpoint=row.name,
                     traffic=after[0], mirror_traffic=after[1], previous_traffic=_split(before[0]),
                     previous_mirror_traffic=_split(before[1]))


def check_traffic(endpoint: str, traffic: dict[str, int], mirror: dict[str, int], deployments: set[str]) -> None:
    """Traffic names existing deployments and adds up to 0 or 100; one mirror, at most 50%, not a live one."""
    for kind, split in (("traffic", traffic), ("mirror traffic", mirror)):
        for name, pct in split.items():
            if name not in deployments:
                have = ", ".join(sorted(deployments)) or "none yet"
                raise InvalidRequestError(
                    f"{kind} of endpoint {endpoint!r} names deployment {name!r}, which does not exist "
                    f"(deployments: {have}); create it first with 'mlyard online-deployment create'",
                    details={"endpoint": endpoint, "deployment": name})
            if not isinstance(pct, int) or isinstance(pct, bool) or not 0 <= pct <= 100:
                raise InvalidRequestError(f"{kind} of deployment {name!r} must be a whole percentage 0-100, "
                                          f"not {pct!r}")
    total = sum(traffic.values())
    if total not in (0, 100):
        raise InvalidRequestError(f"traffic of endpoint {endpoint!r} adds up to {total}; it must add up to 100 "
                                  "(or 0), e.g. --traffic \"blue=90 green=10\"")
    live_mirror = {k: v for k, v in mirror.items() if v > 0}
    if len(live_mirror) > 1:
        raise InvalidRequestError("mirror traffic names at most one deployment")
    for name, pct in live_mirror.items():
        if pct > 50:
            raise InvalidRequestError(f"mirror traffic of deployment {name!r} is {pct}%; at most 50% can be mirrored")
        if traffic.get(name, 0) > 0:
            raise InvalidRequestError(f"deployment {name!r} gets live traffic ({traffic[name]}%); it cannot also "
                                      "get mirror traffic: set its traffic to 0 first")


class EndpointService:
    """Create, change and delete endpoints and deployments, keeping their workers in step."""

    def __init__(self, db: Database, assets: AssetService, datastores: DatastoreRegistry,
                 supervisor: Supervisor, envs: EnvironmentCache | None = None, env_mode: str = "inherit") -> None:
        self._db = db
        self._assets = assets
        self.resolver = DeploymentResolver(assets, datastores, envs, env_mode)
        self.supervisor = supervisor
        self.live: dict[str, LiveEndpoint] = {}
        self._lock = threading.Lock()  # one change of an endpoint's deployments at a time
        self._busy: set[tuple[str, str]] = set()

    # -- start-up ------------------------------------------------------------------------------

    def restore(self) -> None:
        """Bring back every stored deployment (server start). A deployment that fails is marked Failed."""
        try:
            self._restore()
        except Exception:  # a thread of its own: nothing above it would report this
            log.exception("restoring the online deployments failed")

    def _restore(self) -> None:
        self._refresh()
        with self._db.session() as s:
            rows = list(s.scalars(select(OnlineDeploymentRow)))
        for row in rows:
            if self.supervisor.closing:  # the server stops before all came back
                return
            try:
                pool = self.supervisor.start(self.resolver.plan(row.endpoint, row.spec))
            except Exception as exc:
                if self.supervisor.closing:
                    return
                log.error("could not restore deployment %s/%s: %s", row.endpoint, row.name, exc)
                self._set_state(row.endpoint, row.name, "Failed")
                continue
            self.supervisor.install(pool)
            self._set_state(row.endpoint, row.name, "Succeeded")

    def _refresh(self) -> None:
        with self._db.session() as s:
            names: dict[str, set[str]] = {}
            for endpoint, name in s.execute(select(OnlineDeploymentRow.endpoint, OnlineDeploymentRow.name)):
                names.setdefault(endpoint, set()).add(name)
            self.live = {row.name: _live(row, frozenset(names.get(row.name, ())))
                         for row in s.scalars(select(OnlineEndpointRow))}

    def _set_state(self, endpoint: str, name: str, state: str) -> None:
        def write(s: Session) -> None:
            row = s.get(OnlineDeploymentRow, (endpoint, name))
            if row is not None:
                row.state, row.updated_at = state, now_ms()

        self._db.run_in_transaction(write)

    # -- endpoints -----------------------------------------------------------------------------

    def create_endpoint(self, spec: dict[str, Any], actor: str) -> OnlineEndpointRow:
        clean = load_spec_dict(spec, "online-endpoint").to_dict()
        name = clean["name"]
        traffic, mirror = clean.pop("traffic", {}) or {}, clean.pop("mirror_traffic", {}) or {}
        check_traffic(name, traffic, mirror, set())

        def write(s: Session) -> OnlineEndpointRow:
            if s.get(OnlineEndpointRow, name) is not None:
                raise AlreadyExistsError(f"online endpoint {name!r} already exists; change it with "
                                         f"'mlyard online-endpoint update -n {name}'", details={"endpoint": name})
            at = now_ms()
            row = OnlineEndpointRow(name=name, spec=clean, auth_mode=clean.get("auth_mode", "key"), traffic={},
                                    mirror_traffic={}, keys={"primary": keyring.new_key(),
                                                             "secondary": keyring.new_key()},
                                    created_at=at, updated_at=at, created_by=actor)
            s.add(row)
            append_event(s, "online_endpoint.created", name, actor, endpoint=name, auth_mode=row.auth_mode)
            return row

        row = self._db.run_in_transaction(write)
        self._refresh()
        return row

    def get_endpoint(self, name: str) -> OnlineEndpointRow:
        with self._db.session() as s:
            row = s.get(OnlineEndpointRow, name)
        if row is None:
            raise NotFoundError(f"online endpoint {name!r} not found; 'mlyard online-endpoint list' shows them",
                                details={"endpoint": name})
        return row

    def list_endpoints(self) -> list[OnlineEndpointRow]:
        with self._db.session() as s:
            return list(s.scalars(select(OnlineEndpointRow).order_by(OnlineEndpointRow.name)))

    def update_endpoint(self, name: str, *, spec: dict[str, Any] | None = None,
                        traffic: dict[str, int] | None = None,
                        mirror_traffic: dict[str, int] | None = None, actor: str = "mlyard") -> OnlineEndpointRow:
        """Change description, tags, traffic or mirror traffic (name and auth mode stay)."""
        current = self.get_endpoint(name)
        clean: dict[str, Any] | None = None
        if spec is not None:
            clean = load_spec_dict(spec, "online-endpoint").to_dict()
            if clean["name"] != name:
                raise InvalidRequestError(f"the spec names endpoint {clean['name']!r}, not {name!r}")
            if clean.get("auth_mode", "key") != current.auth_mode:
                raise InvalidRequestError(f"auth_mode of endpoint {name!r} cannot change ({current.auth_mode}); "
                                          "create a new endpoint for another auth mode")
            traffic = clean.pop("traffic", None) if traffic is None and clean.get("traffic") else traffic
            mirror_traffic = (clean.pop("mirror_traffic", None) if mirror_traffic is None
                              and clean.get("mirror_traffic") else mirror_traffic)
            clean.pop("traffic", None)
            clean.pop("mirror_traffic", None)

        def write(s: Session) -> OnlineEndpointRow:
            row = s.get(OnlineEndpointRow, name)
            if row is None:
                raise NotFoundError(f"online endpoint {name!r} not found", details={"endpoint": name})
            names = set(s.scalars(select(OnlineDeploymentRow.name).where(OnlineDeploymentRow.endpoint == name)))
            new_traffic = dict(row.traffic or {}) if traffic is None else dict(traffic)
            new_mirror = dict(row.mirror_traffic or {}) if mirror_traffic is None else dict(mirror_traffic)
            check_traffic(name, new_traffic, new_mirror, names)
            before = (dict(row.traffic or {}), dict(row.mirror_traffic or {}))
            row.traffic = {k: v for k, v in new_traffic.items()}
            row.mirror_traffic = {k: v for k, v in new_mirror.items() if v > 0}
            if clean is not None:
                row.spec = clean
            row.updated_at = now_ms()
            _traffic_event(s, row, before, actor)
            return row

        with self._lock:
            row = self._db.run_in_transaction(write)
            self._refresh()
        return row

    def delete_endpoint(self, name: str, actor: str = "mlyard") -> None:
        """Delete an endpoint with its deployments, stopping their workers."""
        self.get_endpoint(name)
        with self._lock:
            deployments = [d.name for d in self.list_deployments(name)]
            self._db.run_in_transaction(lambda s: self._delete_endpoint_rows(s, name, actor))
            self._refresh()
        for deployment in deployments:
            self.supervisor.remove(name, deployment)
        self.supervisor.purge(name)

    @staticmethod
    def _delete_endpoint_rows(s: Session, name: str, actor: str) -> None:
        for deployment in s.scalars(select(OnlineDeploymentRow).where(OnlineDeploymentRow.endpoint == name)):
            s.delete(deployment)
            append_event(s, "online_deployment.deleted", f"{name}/{deployment.name}", actor, endpoint=name,
                         deployment=deployment.name, model=deployment.model)
        endpoint = s.get(OnlineEndpointRow, name)
        if endpoint is not None:
            s.delete(endpoint)
            append_event(s, "online_endpoint.deleted", name, actor, endpoint=name)

    # -- credentials ---------------------------------------------------------------------------

    def credentials(self, name: str) -> dict[str, Any]:
        """Azure's ``get-credentials``: the keys, or a fresh expiring token for ``aml_token``."""
        row = self.get_endpoint(name)
        if row.auth_mode == "key":
            return {"primaryKey": row.keys["primary"], "secondaryKey": row.keys["secondary"]}
        if row.auth_mode == "aml_token":
            token, expiry = keyring.issue_token(name, row.keys["primary"])
            return {"accessToken": token, "tokenType": "Bearer", "expiryTimeUtc": expiry}
        raise InvalidRequestError(f"endpoint {name!r} uses auth_mode aad_token: call it with a workspace token "
                                  "(the one 'mlyard workspace init' printed), there are no endpoint credentials")

    def regenerate_keys(self, name: str, key_type: str) -> OnlineEndpointRow:
        if key_type not in KEY_TYPES:
            raise InvalidRequestError(f"key type {key_type!r} is not one of: primary, secondary")

        def write(s: Session) -> OnlineEndpointRow:
            row = s.get(OnlineEndpointRow, name)
            if row is None:
                raise NotFoundError(f"online endpoint {name!r} not found", details={"endpoint": name})
            row.keys = {**row.keys, key_type: keyring.new_key()}
            row.updated_at = now_ms()
            return row

        row = self._db.run_in_transaction(write)
        self._refresh()
        return row

    # -- deployments ---------------------------------------------------------------------------

    def get_deployment(self, endpoint: str, name: str) -> OnlineDeploymentRow:
        self.get_endpoint(endpoint)
        with self._db.session() as s:
            row = s.get(OnlineDeploymentRow, (endpoint, name))
        if row is None:
            raise NotFoundError(f"deployment {name!r} of endpoint {endpoint!r} not found; "
                                f"'mlyard online-deployment list -e {endpoint}' shows them",
                                details={"endpoint": endpoint, "deployment": name})
        return row

    def list_deployments(self, endpoint: str) -> builtins.list[OnlineDeploymentRow]:
        self.get_endpoint(endpoint)
        with self._db.session() as s:
            return list(s.scalars(select(OnlineDeploymentRow).where(OnlineDeploymentRow.endpoint == endpoint)
                                  .order_by(OnlineDeploymentRow.name)))

    def create_deployment(self, endpoint: str, spec: dict[str, Any], actor: str, *,
                          all_traffic: bool = False) -> OnlineDeploymentRow:
        """Start the deployment's workers, wait until they are ready, then store it (and its traffic)."""
        clean = self.resolver.validate(endpoint, spec)
        name = clean["name"]
        self.get_endpoint(endpoint)
        key = (endpoint, name)
        with self._lock:
            with self._db.session() as s:
                exists = s.get(OnlineDeploymentRow, key) is not None
            if exists or key in self._busy:
                raise AlreadyExistsError(f"deployment {name!r} of endpoint {endpoint!r} already exists; change it "
                                         f"with 'mlyard online-deployment update -n {name} -e {endpoint}'",
                                         details={"endpoint": endpoint, "deployment": name})
            self._busy.add(key)
        try:
            plan = self.resolver.plan(endpoint, clean)
            model = self.resolver.model_label(clean)
            pool = self.supervisor.start(plan)
            try:
                row = self._db.run_in_transaction(
                    lambda s: self._insert_deployment(s, endpoint, clean, model, actor, all_traffic))
            except BaseException:
                self.supervisor.stop_pool(pool)
                raise
            self.supervisor.install(pool)
            self._refresh()
            self._register_collections(endpoint, clean, actor)
            return row
        finally:
            with self._lock:
                self._busy.discard(key)

    @staticmethod
    def _insert_deployment(s: Session, endpoint: str, clean: dict[str, Any], model: str | None, actor: str,
                           all_traffic: bool) -> OnlineDeploymentRow:
        ep = s.get(OnlineEndpointRow, endpoint)
        if ep is None:
            raise NotFoundError(f"online endpoint {endpoint!r} was deleted meanwhile", details={"endpoint": endpoint})
        at = now_ms()
        row = OnlineDeploymentRow(endpoint=endpoint, name=clean["name"], spec=clean, model=model, state="Succeeded",
                                  created_at=at, updated_at=at, created_by=actor)
        s.add(row)
        append_event(s, "online_deployment.created", f"{endpoint}/{clean['name']}", actor, endpoint=endpoint,
                     deployment=clean["name"], model=model)
        if all_traffic:
            before = (dict(ep.traffic or {}), dict(ep.mirror_traffic or {}))
            names = set(s.scalars(select(OnlineDeploymentRow.name).where(OnlineDeploymentRow.endpoint == endpoint)))
            ep.traffic = {n: 0 for n in names} | {clean["name"]: 100}
            ep.mirror_traffic = {k: v for k, v in (ep.mirror_traffic or {}).items() if k != clean["name"]}
            ep.updated_at = at
            _traffic_event(s, ep, before, actor)
        return row

    def update_deployment(self, endpoint: str, spec: dict[str, Any], actor: str) -> OnlineDeploymentRow:
        """Roll the workers: start the new set, wait until ready, switch traffic to it, drain the old."""
        clean = self.resolver.validate(endpoint, spec)
        name = clean["name"]
        self.get_deployment(endpoint, name)
        key = (endpoint, name)
        with self._lock:
            if key in self._busy:
                raise ConflictError(f"deployment {name!r} of endpoint {endpoint!r} is being changed; try again "
                                    "when that finishes", details={"endpoint": endpoint, "deployment": name})
            self._busy.add(key)
        try:
            plan = self.resolver.plan(endpoint, clean)
            model = self.resolver.model_label(clean)
            pool = self.supervisor.start(plan)

            def write(s: Session) -> OnlineDeploymentRow:
                row = s.get(OnlineDeploymentRow, key)
                if row is None:
                    raise NotFoundError(f"deployment {name!r} of endpoint {endpoint!r} was deleted meanwhile")
                previous = row.model
                row.spec, row.model, row.state, row.updated_at = clean, model, "Succeeded", now_ms()
                append_event(s, "online_deployment.updated", f"{endpoint}/{name}", actor, endpoint=endpoint,
                             deployment=name, model=model, previous_model=previous)
                return row

            try:
                row = self._db.run_in_transaction(write)
            except BaseException:
                self.supervisor.stop_pool(pool)
                raise
            old = self.supervisor.install(pool)
            if old is not None:
                self.supervisor.drain_and_stop(old)
            self._register_collections(endpoint, clean, actor)
            return row
        finally:
            with self._lock:
                self._busy.discard(key)

    def _register_collections(self, endpoint: str, spec: dict[str, Any], actor: str) -> None:
        """Register the folders the deployment's data collector fills as data assets, as Azure does. Once the
        deployment is stored: a failure here is logged, it does not undo a deployment that serves."""
        for data in self.resolver.collected_data(endpoint, spec):
            try:
                self._assets.create("data", data, [], actor, allow_missing_path=True)
            except MlyardError as exc:
                log.warning("deployment %s/%s: collected data %s:%s not registered: %s", endpoint, spec["name"],
                            data["name"], data["version"], exc.message)

    def delete_deployment(self, endpoint: str, name: str, actor: str = "mlyard") -> None:
        """Refused while the deployment gets live traffic; mirror traffic to it is dropped."""
        self.get_deployment(endpoint, name)

        def write(s: Session) -> None:
            ep = s.get(OnlineEndpointRow, endpoint)
            row = s.get(OnlineDeploymentRow, (endpoint, name))
            if ep is None or row is None:
                raise NotFoundError(f"deployment {name!r} of endpoint {endpoint!r} not found")
            share = (ep.traffic or {}).get(name, 0)
            if share > 0:
                raise ConflictError(
                    f"deployment {name!r} gets {share}% of endpoint {endpoint!r}'s traffic; move it first, e.g. "
                    f"'mlyard online-endpoint update -n {endpoint} --traffic \"<other>=100\"'",
                    details={"endpoint": endpoint, "deployment": name})
            before = (dict(ep.traffic or {}), dict(ep.mirror_traffic or {}))
            ep.traffic = {k: v for k, v in (ep.traffic or {}).items() if k != name}
            ep.mirror_traffic = {k: v for k, v in (ep.mirror_traffic or {}).items() if k != name}
            ep.updated_at = now_ms()
            s.delete(row)
            append_event(s, "online_deployment.deleted", f"{endpoint}/{name}", actor, endpoint=endpoint,
                         deployment=name, model=row.model)
            _traffic_event(s, ep, before, actor)

        with self._lock:
            self._db.run_in_transaction(write)
            self._refresh()
        self.supervisor.remove(endpoint, name)
        self.supervisor.purge(endpoint, name)

    def deployment_logs(self, endpoint: str, name: str, lines: int) -> str:
        self.get_deployment(endpoint, name)
        return self.supervisor.logs(endpoint, name, lines)
