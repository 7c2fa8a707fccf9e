"""What every remote command needs: a client built from the global options."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from mlyard.client import MlyardClient


def make_client(ctx: click.Context) -> MlyardClient:
    from mlyard.client import MlyardClient

    obj = ctx.find_root().obj or {}
    workspace = Path(obj["workspace"]) if obj.get("workspace") else None
    return MlyardClient.from_env(obj.get("url"), obj.get("token"), workspace)


def workspace_option(ctx: click.Context) -> Path | None:
    obj = ctx.find_root().obj or {}
    return Path(obj["workspace"]) if obj.get("workspace") else None
