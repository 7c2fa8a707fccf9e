"""Tables of online endpoints and their deployments. Changing one needs an Alembic migration.

An endpoint row holds the endpoint's spec, its traffic split and its keys; a deployment row exists
only once its workers answered ready (a failed create leaves nothing). Times are milliseconds since
the epoch.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from mlyard.store.schema import Base


class OnlineEndpointRow(Base):
    __tablename__ = "online_endpoints"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    auth_mode: Mapped[str] = mapped_column(String(16))
    traffic: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    mirror_traffic: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    keys: Mapped[dict[str, Any]] = mapped_column(JSON)  # primary and secondary, as get-credentials returns them
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(255))


class OnlineDeploymentRow(Base):
    __tablename__ = "online_deployments"

    endpoint: Mapped[str] = mapped_column(ForeignKey("online_endpoints.name", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    model: Mapped[str | None] = mapped_column(String(400))  # the resolved model, name:version
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(255))
