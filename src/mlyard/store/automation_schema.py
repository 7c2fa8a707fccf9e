"""Tables of automation: schedules and their firings, webhooks and their deliveries,
triggers and the jobs they started. Changing one needs an Alembic migration.

Times are milliseconds since the epoch (UTC).

The event log itself is the ``events`` table (``tracking_schema.Event``; written through
``store/events.py``).

- ``schedules``: a schedule's validated spec (its ``create_job`` already loaded inline), whether it is
  enabled, and the next instant it fires. A firing is claimed by inserting its ``schedule_firings`` row
  (primary key: schedule and instant), so two servers or two restarts can never both fire one instant.
- ``webhooks``: a subscription (MLflow's webhook API or mlyard's), its signing secret, and
  ``cursor``: the id of the last event it has been matched against. ``webhook_deliveries`` holds one
  row per attempt to deliver one event.
- ``triggers``: an event rule and the job it creates; ``trigger_firings`` links each job it started
  to the event that caused it (primary key: trigger and event, so one event starts one job at most).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mlyard.store.schema import Base


class ScheduleRow(Base):
    __tablename__ = "schedules"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    action: Mapped[str] = mapped_column(String(16))  # create_job, create_monitor or import_data
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_fire_at: Mapped[int | None] = mapped_column(BigInteger)  # None: no firing left (end_time passed)
    last_fired_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(255))
    actor_role: Mapped[str] = mapped_column(String(32), default="admin")


class ScheduleFiringRow(Base):
    __tablename__ = "schedule_firings"
    __table_args__ = (Index("ix_schedule_firings_schedule_created", "schedule", "created_at"),)

    schedule: Mapped[str] = mapped_column(ForeignKey("schedules.name", ondelete="CASCADE"), primary_key=True)
    fire_at: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the instant it was due
    catch_up: Mapped[bool] = mapped_column(Boolean, default=False)  # fired late, at start-up, for a missed instant
    job: Mapped[str | None] = mapped_column(String(255))  # None until the job is created
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)


class WebhookRow(Base):
    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[Any]] = mapped_column(JSON, default=list)  # event types it subscribes to
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # e.g. {"model_name": "attrition"}
    description: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[str | None] = mapped_column(String(255))  # signs deliveries; never returned by the API
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")  # ACTIVE or DISABLED (MLflow's names)
    flavor: Mapped[str] = mapped_column(String(16), default="mlyard")  # mlyard or mlflow: payload and headers
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)  # last event id matched against it
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(255))


class WebhookDeliveryRow(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_webhook_id", "webhook", "id"),
        Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[int | None] = mapped_column(BigInteger)  # None for a test delivery
    delivery_id: Mapped[str] = mapped_column(String(64))  # the same for every attempt of one event
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(16))  # pending, succeeded, failed (will retry), gave_up
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    next_attempt_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class TriggerRow(Base):
    __tablename__ = "triggers"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # event rule, cool-down, inputs, the job spec inline
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)  # last event id matched against it
    last_fired_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(255))
    actor_role: Mapped[str] = mapped_column(String(32), default="admin")


class TriggerFiringRow(Base):
    __tablename__ = "trigger_firings"
    __table_args__ = (Index("ix_trigger_firings_trigger_created", "trigger", "created_at"),)

    trigger: Mapped[str] = mapped_column(ForeignKey("triggers.name", ondelete="CASCADE"), primary_key=True)
    event: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16))  # started, cooling_down (skipped), failed
    job: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
