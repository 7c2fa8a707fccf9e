"""Tables of batch endpoints, their deployments, and the jobs their invocations started.

Changing one needs an Alembic migration. An endpoint row holds its spec and its default
deployment; a deployment row holds its validated spec (code already on a datastore) and, for a
``type: model`` deployment, the model version it was pinned to when it was created. An invocation
is a job (``jobs`` table); ``batch_endpoint_jobs`` links it to the endpoint and deployment that
started it, so ``list-jobs`` needs no scan of job tags. Times are milliseconds since the epoch.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from mlyard.store.schema import Base


class BatchEndpointRow(Base):
    __tablename__ = "batch_endpoints"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    default_deployment: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(255))


class BatchDeploymentRow(Base):
    __tablename__ = "batch_deployments"

    endpoint: Mapped[str] = mapped_column(ForeignKey("batch_endpoints.name", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))  # model or pipeline
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    model: Mapped[str | None] = mapped_column(String(400))  # the pinned model, name:version
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(255))


class BatchJobRow(Base):
    """One invocation: the job it became, and which endpoint and deployment it ran."""

    __tablename__ = "batch_endpoint_jobs"
    __table_args__ = (Index("ix_batch_endpoint_jobs_endpoint_created", "endpoint", "created_at"),)

    job: Mapped[str] = mapped_column(String(255), primary_key=True)
    endpoint: Mapped[str] = mapped_column(ForeignKey("batch_endpoints.name", ondelete="CASCADE"))
    deployment: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
