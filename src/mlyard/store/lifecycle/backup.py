"""``mlyard workspace backup`` and ``restore``: the store (online) and the files, verified by sha256.

A backup folder holds::

    manifest.json     written last: a backup without it is incomplete and never restored
    mlyard.yaml       the workspace's settings
    mlyard.db         SQLite: a consistent snapshot by SQLite's online backup API (the server keeps running)
    mlyard.pgdump     PostgreSQL: ``pg_dump --format=custom``
    files/<datastore>/...   every file of every local datastore, hashed as it is copied
    state/...         job folders (logs) and the CLI's client file

The snapshot of the store is taken first and the files copied after, so every file the snapshot
records exists in the copy (datastore files never change once recorded, except run artifacts, which
MLflow lets a run replace); files written after the snapshot are copied too and are orphans the
restored workspace's gc removes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from mlyard import __version__
from mlyard.core.errors import InvalidRequestError, StorageError
from mlyard.core.hashing import sha256_file
from mlyard.core.settings import CLIENT_FILE, STATE_DIR, WORKSPACE_FILE, read_yaml_mapping
from mlyard.core.timeutil import utcnow
from mlyard.store.lifecycle.layout import OpenWorkspace
from mlyard.store.migrate import current_revision
from mlyard.store.schema import Blob
from mlyard.store.schema import Datastore as DatastoreRow

MANIFEST = "manifest.json"
FORMAT = 1
TMP_MARK = ".mlyard-tmp-"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BackupResult:
    dest: Path
    files: int
    bytes: int
    database: str
    seconds: float


def _ignore(_line: str) -> None:
    pass


def copy_hashed(src: Path, dst: Path, *, make_parent: bool = True) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` and return (sha256, size) of the copy, read back (from the page cache) once written.

    The kernel copies (``shutil.copyfile`` uses sendfile), then the copy itself is hashed: what is
    verified is what the backup holds, not what the source held a moment before.
    """
    if make_parent:
        dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    shutil.copystat(src, dst, follow_symlinks=False)
    return sha256_file(dst)


def _empty_target(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidRequestError(f"{path} exists and is not empty: {what} needs a new or empty folder")
    path.mkdir(parents=True, exist_ok=True)


def pg_url(url: str) -> str:
    """A libpq URL (what pg_dump and pg_restore take) from a SQLAlchemy one."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    return url


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise StorageError(f"{name} is not installed: install PostgreSQL's client tools (apt install postgresql-client)")


def backup_workspace(ws: OpenWorkspace, dest: Path, progress: Progress = _ignore) -> BackupResult:
    """Back up the workspace into ``dest`` (new or empty) while its server may run; a failure leaves nothing."""
    dest = dest.expanduser().resolve()
    if dest == ws.path or ws.path in dest.parents:
        raise InvalidRequestError(f"{dest} is inside the workspace {ws.path}: back up to a folder outside it")
    _empty_target(dest, "a backup")
    try:
        return _backup(ws, dest, progress)
    except BaseException:
        _clear(dest)
        raise


def _clear(folder: Path) -> None:
    """Empty a folder this command filled (it was new or empty when the command began)."""
    for child in folder.iterdir() if folder.is_dir() else []:
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def _backup(ws: OpenWorkspace, dest: Path, progress: Progress) -> BackupResult:
    started = time.monotonic()
    snapshot_at = utcnow()
    if ws.db.is_sqlite:
        database = "mlyard.db"
        _sqlite_backup(Path(ws.db.engine.url.database or ""), dest / database)
    else:
        database = "mlyard.pgdump"
        out = subprocess.run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(dest / database),
                              pg_url(ws.db.url)], capture_output=True, text=True)
        if out.returncode != 0:
            raise StorageError(f"pg_dump failed: {out.stderr.strip()[-2000:]}")
    progress(f"store snapshot: {database}")
    with ws.db.session() as s:
        rows = s.execute(select(DatastoreRow.name, DatastoreRow.type, DatastoreRow.root)).all()
        roots = {name: root for name, _kind, root in rows}
        local = {name for name, kind, root in rows if kind == "local" and ("://" not in root or
                                                                           root.startswith("file://"))}
        blobs = {(d, p): (sha, size) for d, p, sha, size, at in s.execute(
            select(Blob.datastore, Blob.path, Blob.sha256, Blob.size, Blob.created_at))
            if at is None or _aware(at) <= snapshot_at}
        revision = current_revision(ws.db.engine)
    files: dict[str, list[Any]] = {}
    skipped = []
    for name, root in sorted(roots.items()):
        if name not in local:  # object storage: it has its own durability; named in the manifest
            skipped.append(name)
            continue
        files.update(_copy_tree(Path(root.removeprefix("file://")), dest / "files" / name, f"files/{name}"))
        progress(f"datastore {name}: copied")
    for key, (sha, size) in blobs.items():
        if key[0] in skipped:
            continue
        got = files.get(f"files/{key[0]}/{key[1]}")
        if got is None:
            raise StorageError(f"{key[0]}:{key[1]} is recorded in the store but was not found while copying: "
                               f"run 'mlyard workspace check'; the backup in {dest} is incomplete")
        if tuple(got) != (sha, size):
            raise StorageError(f"{key[0]}:{key[1]} on disk does not match its recorded sha256: run 'mlyard "
                               f"workspace check'; the backup in {dest} is incomplete")
    _copy_state(ws, dest, files)
    manifest = {"format": FORMAT, "created_at": snapshot_at.isoformat(), "mlyard": __version__,
                "workspace": str(ws.path), "schema_revision": revision, "database": database,
                "datastores": roots, "not_copied": skipped, "files": files,
                "database_sha256": copy_hashed_sha(dest / database)}
    tmp = dest / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, dest / MANIFEST)
    total = sum(v[1] for v in files.values())
    return BackupResult(dest, len(files), total, database, time.monotonic() - started)


def _aware(dt: Any) -> Any:
    from datetime import UTC

    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def copy_hashed_sha(path: Path) -> str:
    return sha256_file(path)[0]


def _sqlite_backup(src: Path, dst: Path) -> None:
    """SQLite's online backup: a consistent snapshot while writers go on (what ``sqlite3 .backup`` does)."""
    source = sqlite3.connect(src, timeout=30)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _copy_tree(src: Path, dst: Path, prefix: str) -> dict[str, list[Any]]:
    files: dict[str, list[Any]] = {}
    if not src.is_dir():
        return files
    for root, _dirs, names in os.walk(src):
        folder = Path(root)
        out = dst / folder.relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for n in names:
            path = folder / n
            if n.startswith(TMP_MARK) or path.is_symlink():
                continue
            try:
                files[f"{prefix}/{(out / n).relative_to(dst).as_posix()}"] = list(
                    copy_hashed(path, out / n, make_parent=False))
            except FileNotFoundError:
                continue  # removed while we walked (a run replacing an artifact, gc)
    return files


def _copy_state(ws: OpenWorkspace, dest: Path, files: dict[str, list[Any]]) -> None:
    files[WORKSPACE_FILE] = list(copy_hashed(ws.path / WORKSPACE_FILE, dest / WORKSPACE_FILE))
    client = ws.settings.state_dir / CLIENT_FILE
    if client.is_file():
        files[f"state/{CLIENT_FILE}"] = list(copy_hashed(client, dest / "state" / CLIENT_FILE))
        os.chmod(dest / "state" / CLIENT_FILE, 0o600)
    files.update(_copy_tree(ws.jobs_dir, dest / "state" / "jobs", "state/jobs"))


def read_manifest(src: Path) -> dict[str, Any]:
    path = src / MANIFEST
    if not path.is_file():
        raise InvalidRequestError(f"{src} holds no {MANIFEST}: it is not a finished mlyard backup (a backup that was "
                                  "interrupted has none); back up again")
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise InvalidRequestError(f"{path}: backup format {data.get('format')!r} is not one this mlyard reads "
                                  f"({FORMAT}); restore it with the mlyard version that made it ({data.get('mlyard')})")
    return data


def restore_workspace(src: Path, target: Path, database_url: str | None = None,
                      progress: Progress = _ignore) -> Path:
    """Restore the backup at ``src`` into the new workspace folder ``target``; every file is verified by sha256."""
    src, target = src.expanduser().resolve(), target.expanduser().resolve()
    manifest = read_manifest(src)
    is_pg = manifest["database"].endswith(".pgdump")
    if is_pg and not database_url:
        raise InvalidRequestError("this backup is of a PostgreSQL store: pass --database-url postgresql://... of an "
                                  "empty database to restore it into")
    if not is_pg and database_url:
        raise InvalidRequestError("this backup is of a SQLite store: it restores into the workspace folder; "
                                  "leave out --database-url (then 'mlyard workspace migrate' moves it to PostgreSQL)")
    created = not target.exists()
    _empty_target(target, "a restore")
    try:
        _restore(src, target, manifest, database_url, progress)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True) if created else _clear(target)
        raise
    return target


def _restore(src: Path, target: Path, manifest: dict[str, Any], database_url: str | None, progress: Progress) -> None:
    is_pg = manifest["database"].endswith(".pgdump")
    db_file = src / manifest["database"]
    if copy_hashed_sha(db_file) != manifest["database_sha256"]:
        raise StorageError(f"{db_file} does not match the sha256 the backup recorded: the backup is damaged")
    for rel, (sha, size) in sorted(manifest["files"].items()):
        if rel.startswith("files/"):
            out = target / "artifacts" / rel.removeprefix("files/")
        elif rel.startswith("state/"):
            out = target / STATE_DIR / rel.removeprefix("state/")
        else:
            out = target / rel
        got = copy_hashed(src / rel, out)
        if list(got) != [sha, size]:
            raise StorageError(f"{src / rel} does not match the sha256 the backup recorded: the backup is damaged "
                               "(nothing was restored)")
    if (target / STATE_DIR / CLIENT_FILE).exists():
        os.chmod(target / STATE_DIR / CLIENT_FILE, 0o600)
    progress(f"{len(manifest['files'])} file(s) restored and verified")
    config = read_yaml_mapping(target / WORKSPACE_FILE)
    config.pop("database_url", None)
    config.pop("artifacts_root", None)
    if is_pg:
        assert database_url is not None
        out = subprocess.run([_pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "--dbname",
                              pg_url(database_url), str(db_file)], capture_output=True, text=True)
        if out.returncode != 0:
            raise StorageError(f"pg_restore into {database_url.split('@')[-1]} failed: {out.stderr.strip()[-2000:]}")
        config["database_url"] = database_url
    else:
        shutil.copyfile(db_file, target / "mlyard.db")
    import yaml

    (target / WORKSPACE_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
    _repoint_datastores(target, database_url, manifest)


def _repoint_datastores(target: Path, database_url: str | None, manifest: dict[str, Any]) -> None:
    from mlyard.store.db import Database

    db = Database(database_url or f"sqlite:///{target / 'mlyard.db'}")
    try:
        with db.session() as s:
            for name in manifest["datastores"]:
                if name not in manifest.get("not_copied", []):
                    s.execute(update(DatastoreRow).where(DatastoreRow.name == name)
                              .values(root=str(target / "artifacts" / name)))
    finally:
        db.dispose()
