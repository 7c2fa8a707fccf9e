"""Bring a store's schema to the newest Alembic revision (run by the server at start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_known(engine: Engine) -> None:
    """Refuse a store whose schema revision this mlyard does not know (written by a newer mlyard)."""
    current = current_revision(engine)
    if current is None:
        return
    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(current) is not None
    except Exception:  # alembic raises its own errors for unknown or malformed ids
        known = False
    if not known:
        from mlyard.core.errors import StorageError

        where = engine.url.render_as_string(hide_password=True)
        raise StorageError(
            f"the store at {where} has schema revision {current!r}, newer than this mlyard (version "
            f"{_version()}) knows (its newest is {head_revision()!r}): a newer mlyard wrote it. Upgrade mlyard "
            "(pip install -U mlyard), or restore a backup this version made ('mlyard workspace restore'); "
            "nothing was changed", details={"revision": current, "head": head_revision()})


def _version() -> str:
    from mlyard import __version__

    return __version__


def upgrade(engine: Engine) -> None:
    """Apply every pending migration; a store already at head is left untouched.

    Raises:
        StorageError: the store's schema is newer than this mlyard knows.
    """
    if current_revision(engine) == head_revision():
        return
    check_known(engine)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
