"""Tables of jobs and computes. Changing one needs an Alembic migration.

A job row is a command job, a pipeline job, or one step of a pipeline (``parent`` names the
pipeline, ``step`` the step's key). The job's name is also its MLflow run id, as on Azure ML.
Times are milliseconds since the epoch.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mlyard.store.schema import Base

TERMINAL = ("Completed", "Failed", "Canceled")
STATUSES = ("NotStarted", "Queued", "Preparing", "Running", "Finalizing") + TERMINAL


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_parent_position", "parent", "position"),
        Index("ix_jobs_cache_key_status", "cache_key", "status"),
        Index("ix_jobs_created_at", "created_at"),
    )

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    parent: Mapped[str | None] = mapped_column(String(255))
    step: Mapped[str | None] = mapped_column(String(255))
    position: Mapped[int] = mapped_column(Integer, default=0)
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str | None] = mapped_column(String(255))
    experiment_name: Mapped[str] = mapped_column(String(500))
    experiment_id: Mapped[int] = mapped_column(Integer)
    compute: Mapped[str | None] = mapped_column(String(255))
    env_mode: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    depends_on: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cache_key: Mapped[str | None] = mapped_column(String(64))
    reused_from: Mapped[str | None] = mapped_column(String(255))
    force_rerun: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    pid: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[int | None] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(255))
    actor_role: Mapped[str] = mapped_column(String(32), default="admin")
    token_hash: Mapped[str | None] = mapped_column(String(64))  # the running step's own API token


class Compute(Base):
    """A named compute: the executor that runs its jobs and how many steps it runs at once."""

    __tablename__ = "computes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(255))
