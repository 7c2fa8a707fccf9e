"""Tables of the model registry and of MLflow 3 logged models.

A registered model version IS an mlyard model asset version (``assets`` row, kind ``model``): the
registry adds what MLflow tracks about it (``model_versions``: run, source, stage, tags) and what
belongs to the name rather than to a version (``registered_models``: description, tags, aliases).
``alias_history`` remembers every move of an alias. Changing a table needs an Alembic migration.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mlyard.store.schema import Base
from mlyard.store.tracking_schema import KEY


class RegisteredModel(Base):
    __tablename__ = "registered_models"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    description: Mapped[str | None] = mapped_column(Text)
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_updated_time: Mapped[int] = mapped_column(BigInteger)


class RegisteredModelTag(Base):
    __tablename__ = "registered_model_tags"

    name: Mapped[str] = mapped_column(ForeignKey("registered_models.name", ondelete="CASCADE", onupdate="CASCADE"),
                                      primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelVersion(Base):
    """MLflow's view of one model asset version."""

    __tablename__ = "model_versions"
    __table_args__ = (Index("ix_model_versions_run", "run_id"),)

    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="READY")
    current_stage: Mapped[str] = mapped_column(String(20), default="None")
    description: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(String(255))
    run_link: Mapped[str | None] = mapped_column(Text)
    model_id: Mapped[str | None] = mapped_column(String(64))
    last_updated_time: Mapped[int] = mapped_column(BigInteger)


class ModelVersionTag(Base):
    __tablename__ = "model_version_tags"

    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelAlias(Base):
    __tablename__ = "model_aliases"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    alias: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))


class AliasMove(Base):
    """Who moved which alias from which version to which, and when (None: set anew / deleted)."""

    __tablename__ = "alias_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(255), index=True)
    alias: Mapped[str] = mapped_column(String(255))
    from_version: Mapped[str | None] = mapped_column(String(64))
    to_version: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(255))


class LoggedModel(Base):
    """An MLflow 3 logged model: a model's artifacts and metadata before (or without) registration."""

    __tablename__ = "logged_models"
    __table_args__ = (Index("ix_logged_models_experiment", "experiment_id", "creation_time"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(500))
    source_run_id: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20))
    model_type: Mapped[str | None] = mapped_column(String(500))
    artifact_location: Mapped[str] = mapped_column(Text)
    lifecycle_stage: Mapped[str] = mapped_column(String(16), default="active")
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_updated_time: Mapped[int] = mapped_column(BigInteger)


class LoggedModelParam(Base):
    __tablename__ = "logged_model_params"

    model_id: Mapped[str] = mapped_column(ForeignKey("logged_models.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class LoggedModelTag(Base):
    __tablename__ = "logged_model_tags"

    model_id: Mapped[str] = mapped_column(ForeignKey("logged_models.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
