"""What the store references: upload folders named anywhere, asset files, runs and logged models in use.

The scan for ``LocalUpload/<tree hash>`` is deliberately blunt: every text and JSON column of every
table except the logs (events, audit, deliveries) is searched, so a reference in a job's spec, a
deployment, a schedule's job template or a model version's source keeps the folder, whatever the
part that wrote it. A false "referenced" keeps a folder a little longer; a missed reference would lose
bytes, which gc must never do.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from sqlalchemy import JSON, Text, cast, or_, select
from sqlalchemy.orm import Session

from mlyard.store.lifecycle.layout import ARTIFACT_URI_PREFIX, DATASTORE_URI_PREFIX, UPLOAD_FOLDER, all_tables
from mlyard.store.schema import Asset, AssetFile

UPLOAD_RE = re.compile(rf"{UPLOAD_FOLDER}/([0-9a-f]{{64}})")
# Logs of what happened: a mention there is history, not a use.
NOT_REFERENCES = frozenset({"events", "audit_log", "webhook_deliveries", "blobs", "alembic_version"})


def referenced_uploads(session: Session) -> set[str]:
    """Tree hashes of every ``LocalUpload/<hash>`` folder a row of the store names."""
    found: set[str] = set()
    for table in all_tables():
        if table.name in NOT_REFERENCES:
            continue
        columns = [c for c in table.columns if isinstance(c.type, (Text, JSON))]
        if not columns:
            continue
        texts = [cast(c, Text) for c in columns]
        rows = session.execute(select(*texts).where(or_(*(t.like(f"%{UPLOAD_FOLDER}/%") for t in texts))))
        for row in rows:
            for value in row:
                if value:
                    found.update(UPLOAD_RE.findall(str(value)))
    return found


def parse_datastore_uri(uri: str) -> tuple[str, str] | None:
    """``azureml://datastores/<ds>/paths/<p>`` -> (ds, p); None for anything else."""
    if not uri.startswith(DATASTORE_URI_PREFIX):
        return None
    rest = uri[len(DATASTORE_URI_PREFIX):]
    name, sep, path = rest.partition("/paths/")
    if not sep or not name:
        return None
    return name, path.strip("/")


def artifact_folder(uri: str | None) -> str | None:
    """``mlflow-artifacts:/mlflow/1/<run>/artifacts`` -> ``mlflow/1/<run>`` (the folder to remove with the run)."""
    if not uri or not uri.startswith(ARTIFACT_URI_PREFIX):
        return None
    path = uri[len(ARTIFACT_URI_PREFIX):].strip("/")
    if path.endswith("/artifacts"):
        path = path[: -len("/artifacts")]
    return path if path.count("/") >= 2 else None  # never a whole experiment or the root


@dataclass(frozen=True)
class AssetFileRef:
    asset: str  # kind name:version
    datastore: str
    path: str
    sha256: str
    size: int


def asset_file_refs(session: Session) -> list[AssetFileRef]:
    """Every file an asset version lists, with the datastore path it lives at."""
    rows = session.execute(select(Asset.kind, Asset.name, Asset.version, Asset.path, AssetFile.path,
                                  AssetFile.sha256, AssetFile.size)
                           .join(AssetFile, AssetFile.asset_id == Asset.id)).all()
    refs = []
    for kind, name, version, asset_path, file_path, sha, size in rows:
        parsed = parse_datastore_uri(asset_path or "")
        if parsed is None:
            continue
        datastore, path = parsed
        root = posixpath.dirname(path)
        refs.append(AssetFileRef(f"{kind} {name}:{version}", datastore, posixpath.join(root, file_path), sha, size))
    return refs
