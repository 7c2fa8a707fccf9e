"""Every setting mlyard reads, in one place.

Server side (``ServerSettings``), highest precedence first: explicit arguments, ``MLYARD_*``
environment variables, the workspace file ``<workspace>/mlyard.yaml``, the defaults below.

Client side (``ClientSettings``): ``MLYARD_URL`` and ``MLYARD_TOKEN``, else the client file that
``mlyard workspace init`` writes into ``<workspace>/.mlyard/client.yaml``.

Environment variables:
    MLYARD_WORKSPACE      folder of the workspace (default: the current folder)
    MLYARD_DATABASE_URL   SQLAlchemy URL of the metadata store (default: SQLite file in the workspace)
    MLYARD_HOST           address the server binds (default 127.0.0.1)
    MLYARD_PORT           port the server binds (default 5780)
    MLYARD_LOG_LEVEL      server log level (default info)
    MLYARD_ARTIFACTS_ROOT fsspec URL of the default datastore's root (default <workspace>/artifacts)
    MLYARD_JOB_ENV_MODE   how jobs get Python: inherit (the server's interpreter, default) or isolated (uv venv)
    MLYARD_WEBHOOK_BACKOFF_S      seconds before a webhook delivery's first retry, doubled each retry (default 1)
    MLYARD_WEBHOOK_MAX_ATTEMPTS   attempts to deliver one event to one webhook before giving up (default 6)
    MLYARD_WEBHOOK_TIMEOUT_S      seconds a webhook receiver has to answer one delivery (default 10)
    MLYARD_SMTP_HOST      SMTP server for monitor alert e-mails (unset: alerts are recorded, not mailed)
    MLYARD_SMTP_PORT      its port (default 25)
    MLYARD_SMTP_USER      user to log in with (unset: no login)
    MLYARD_SMTP_PASSWORD  password of that user
    MLYARD_SMTP_FROM      sender address of alert e-mails (default mlyard@localhost)
    MLYARD_SMTP_STARTTLS  upgrade the connection with STARTTLS before logging in (default false)
    MLYARD_GC_FAILED_JOBS_DAYS    days a failed or canceled job's folder is kept (its log stays; default 14)
    MLYARD_GC_DELETED_RUNS_DAYS   days a run or logged model deleted in MLflow stays recoverable (default 30)
    MLYARD_GC_ENVS_UNUSED_DAYS    days an isolated environment may go unused before gc removes it (default 30)
    MLYARD_GC_ENVS_MAX_GB         size cap of isolated environments; beyond it, least recently used go (default 20)
    MLYARD_GC_ORPHAN_UPLOADS_DAYS days an upload nothing references is kept, for its create to come (default 1)
    MLYARD_GC_LOGS_DAYS           days job and deployment logs are kept after they were last written (default 90)
    MLYARD_GC_INTERVAL_HOURS      hours between the server's own gc runs (default 0: the server never runs gc)
    MLYARD_URL            (client) base URL of the server
    MLYARD_TOKEN          (client) API token sent as ``Authorization: Bearer``
    MLYARD_DEBUG          (client) show tracebacks for unexpected errors
    MLYARD_TRANSFERS      (client) files uploaded or downloaded at once (default 8, at most 64)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

WORKSPACE_FILE = "mlyard.yaml"
STATE_DIR = ".mlyard"
CLIENT_FILE = "client.yaml"
DEFAULT_PORT = 5780
DEFAULT_DATASTORE = "workspaceblobstore"


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Read a small YAML mapping written by mlyard itself; missing file gives {}."""
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        from mlyard.core.errors import InvalidRequestError

        raise InvalidRequestError(f"{path}: expected a mapping of settings; fix or delete the file")
    return data


class _WorkspaceFileSource(PydanticBaseSettingsSource):
    """Values from ``<workspace>/mlyard.yaml`` (the workspace found from init args or env)."""

    def __init__(self, settings_cls: type[BaseSettings], init_kwargs: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        ws = init_kwargs.get("workspace") or os.environ.get("MLYARD_WORKSPACE") or "."
        self._values = read_yaml_mapping(Path(ws) / WORKSPACE_FILE)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        names = set(self.settings_cls.model_fields) - {"workspace"}
        return {k: v for k, v in self._values.items() if k in names and v is not None}


class ServerSettings(BaseSettings):
    """Settings of ``mlyard server`` and of anything that opens a workspace directly."""

    model_config = SettingsConfigDict(env_prefix="MLYARD_", extra="ignore")

    workspace: Path = Field(default=Path("."), description="Folder of the workspace.")
    name: str | None = Field(default=None, description="Display name of the workspace.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL of the store.")
    host: str = Field(default="127.0.0.1", description="Address the server binds.")
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535, description="Port the server binds.")
    log_level: str = Field(default="info", description="Server log level.")
    artifacts_root: str | None = Field(default=None, description="Root of the default datastore.")
    job_env_mode: Literal["inherit", "isolated"] = Field(
        default="inherit", description="How jobs get Python: the server's interpreter, or a uv venv per environment.")
    webhook_backoff_s: float = Field(default=1.0, gt=0, le=3600,
                                     description="Seconds before a webhook delivery's first retry, doubled each retry.")
    webhook_max_attempts: int = Field(default=6, ge=1, le=50,
                                      description="Attempts to deliver one event to one webhook before giving up.")
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=300,
                                     description="Seconds a webhook receiver has to answer one delivery.")
    smtp_host: str | None = Field(default=None, description="SMTP server for monitor alert e-mails; unset: not sent.")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="Port of the SMTP server.")
    smtp_user: str | None = Field(default=None, description="SMTP user to log in with; unset: no login.")
    smtp_password: str | None = Field(default=None, description="Password of the SMTP user.")
    smtp_from: str = Field(default="mlyard@localhost", description="Sender address of alert e-mails.")
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP connection with STARTTLS.")
    gc_failed_jobs_days: float = Field(default=14, ge=0, description="Days a failed or canceled job's folder is kept.")
    gc_deleted_runs_days: float = Field(default=30, ge=0,
                                        description="Days a deleted run or logged model stays recoverable.")
    gc_envs_unused_days: float = Field(default=30, ge=0, description="Days an isolated environment may go unused.")
    gc_envs_max_gb: float = Field(default=20, ge=0, description="Size cap of isolated environments, in GB.")
    gc_orphan_uploads_days: float = Field(default=1, ge=0,
                                          description="Days an upload nothing references is kept for its create.")
    gc_logs_days: float = Field(default=90, ge=0, description="Days job and deployment logs are kept.")
    gc_interval_hours: float = Field(default=0, ge=0, description="Hours between the server's gc runs; 0: never.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_kwargs = init_settings()
        return init_settings, env_settings, _WorkspaceFileSource(settings_cls, init_kwargs)

    @property
    def workspace_path(self) -> Path:
        return self.workspace.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.workspace_path / 'mlyard.db'}"

    @property
    def resolved_artifacts_root(self) -> str:
        return self.artifacts_root or str(self.workspace_path / "artifacts")

    @property
    def workspace_name(self) -> str:
        return self.name or self.workspace_path.name

    @property
    def state_dir(self) -> Path:
        return self.workspace_path / STATE_DIR


class ClientSettings(BaseSettings):
    """Where the CLI and SDK find the server and their token."""

    model_config = SettingsConfigDict(env_prefix="MLYARD_", extra="ignore")

    url: str | None = Field(default=None, description="Base URL of the server.")
    token: str | None = Field(default=None, description="API token.")
    workspace: Path | None = Field(default=None, description="Workspace folder holding client.yaml.")
    debug: bool = Field(default=False, description="Show tracebacks of unexpected errors.")
    transfers: int = Field(default=8, ge=1, le=64, description="Files uploaded or downloaded at once.")


def find_workspace(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` that holds ``mlyard.yaml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / WORKSPACE_FILE).is_file():
            return folder
    return None


def client_file(workspace: Path) -> Path:
    return workspace / STATE_DIR / CLIENT_FILE
