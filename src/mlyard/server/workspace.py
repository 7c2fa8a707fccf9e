"""Creating a workspace: its folder, settings file, store and first admin token."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from mlyard.auth.tokens import issue_token
from mlyard.core.errors import AlreadyExistsError
from mlyard.core.settings import (
    DEFAULT_DATASTORE,
    STATE_DIR,
    WORKSPACE_FILE,
    ServerSettings,
    client_file,
)
from mlyard.store.blobs import DatastoreRegistry
from mlyard.store.db import Database
from mlyard.store.migrate import upgrade
from mlyard.store.schema import ApiToken


@dataclass(frozen=True)
class InitResult:
    workspace: Path
    url: str
    token: str
    database_url: str


def init_workspace(
    path: Path, *, name: str | None = None, port: int | None = None, database_url: str | None = None
) -> InitResult:
    """Create the workspace at ``path`` and return the admin token (shown once, stored hashed)."""
    path = path.expanduser().resolve()
    config_file = path / WORKSPACE_FILE
    if config_file.exists():
        raise AlreadyExistsError(
            f"{path} is already an mlyard workspace ({config_file} exists); use it as it is, "
            "or choose another folder"
        )
    created_here = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    try:
        return _init(path, config_file, name, port, database_url)
    except BaseException:
        if created_here:  # leave nothing half-created behind
            shutil.rmtree(path, ignore_errors=True)
        raise


def _init(path: Path, config_file: Path, name: str | None, port: int | None, database_url: str | None) -> InitResult:
    extra: dict[str, Any] = {"port": port} if port else {}
    settings = ServerSettings(workspace=path, name=name, database_url=database_url, **extra)
    db = Database(settings.resolved_database_url)
    try:
        upgrade(db.engine)
        DatastoreRegistry(db).ensure_default(
            DEFAULT_DATASTORE, f"{settings.resolved_artifacts_root}/{DEFAULT_DATASTORE}"
        )
        with db.session() as s:
            if s.scalar(select(ApiToken.id).limit(1)) is not None:
                raise AlreadyExistsError(
                    f"the store at {db.engine.url.render_as_string(hide_password=True)} already has tokens: "
                    "it belongs to another workspace; give a fresh database"
                )
            token = issue_token(s, name="admin", role="admin")
    finally:
        db.dispose()
    config = {"name": settings.workspace_name, "port": settings.port}
    if database_url:
        config["database_url"] = database_url
    _write_private(config_file, yaml.safe_dump(config, sort_keys=False), mode=0o644)
    url = f"http://{settings.host}:{settings.port}"
    (path / STATE_DIR).mkdir(exist_ok=True)
    _write_private(client_file(path), yaml.safe_dump({"url": url, "token": token}), mode=0o600)
    return InitResult(path, url, token, settings.resolved_database_url)


def _write_private(target: Path, text: str, *, mode: int) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
