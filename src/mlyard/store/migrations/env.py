"""Alembic environment: runs on the connection mlyard hands it (see mlyard.store.migrate)."""

from alembic import context

import mlyard.store.automation_schema  # noqa: F401  (registers the event, schedule, webhook and trigger tables)
import mlyard.store.batch_schema  # noqa: F401  (registers the batch endpoint tables)
import mlyard.store.jobs_schema  # noqa: F401  (registers the job tables)
import mlyard.store.registry_schema  # noqa: F401  (registers the registry tables)
import mlyard.store.serving_schema  # noqa: F401  (registers the online endpoint tables)
import mlyard.store.tracking_schema  # noqa: F401  (registers the tracking tables)
from mlyard.store.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
