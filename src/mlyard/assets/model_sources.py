"""Where an MLflow model version's files come from, and how they become an immutable asset.

MLflow registers a version from a ``source``: ``runs:/<run>/<path>``, ``models:/<logged model id>``
(MLflow 3), an ``mlflow-artifacts:/`` URI or an ``azureml://datastores/`` URI. The files under it
are copied into the content-addressed ``LocalUpload/<tree hash>/<basename>/`` area, so the version
never changes even when the run's artifacts are logged again. The basename is kept, as Azure keeps
it under ``AZUREML_MODEL_DIR``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.core.errors import InvalidRequestError, NotFoundError
from mlyard.specs.references import parse_datastore_uri
from mlyard.store.registry_schema import LoggedModel
from mlyard.store.tracking_schema import Run

ARTIFACTS_URI = "mlflow-artifacts:/"
_RUNS_RE = re.compile(r"^runs:/(?P<run>[^/]+)/?(?P<path>.*)$")
_MODELS_RE = re.compile(r"^models:/(?P<id>m-[0-9a-f]+)/?$")


@dataclass(frozen=True)
class SourceLocation:
    datastore: str | None  # None: the default datastore
    path: str  # the folder (or file) in that datastore
    basename: str
    run_id: str | None = None
    model_id: str | None = None


def locate(s: Session, source: str, run_id: str | None, model_id: str | None,
           has_files: Callable[[str], bool]) -> SourceLocation:
    """Resolve a version's ``source`` to a datastore location.

    ``runs:/<run>/<path>`` with nothing at that path in the run's artifacts names, as in MLflow 3,
    the model the run logged under that name (``log_model(name=...)`` stores it apart from the run).

    Raises:
        InvalidRequestError: the source is not a form mlyard can read on the server.
        NotFoundError: the run or logged model it names does not exist.
    """
    source = (source or "").strip()
    if m := _RUNS_RE.match(source):
        run = s.get(Run, m["run"])
        if run is None:
            raise NotFoundError(f"run {m['run']!r} of source {source!r} not found")
        sub = m["path"].strip("/")
        path = _artifact_path(run.artifact_uri) + (f"/{sub}" if sub else "")
        if not has_files(path):
            logged = s.scalars(select(LoggedModel).where(LoggedModel.source_run_id == run.id,
                                                         LoggedModel.name == sub,
                                                         LoggedModel.lifecycle_stage == "active")
                               .order_by(LoggedModel.creation_time.desc())).first()
            if logged is not None:
                return SourceLocation(None, _artifact_path(logged.artifact_location), logged.name, run.id, logged.id)
        return SourceLocation(None, path, posixpath.basename(path), run.id, model_id)
    if m := _MODELS_RE.match(source):
        logged = s.get(LoggedModel, m["id"])
        if logged is None:
            raise NotFoundError(f"logged model {m['id']!r} of source {source!r} not found")
        return SourceLocation(None, _artifact_path(logged.artifact_location), logged.name,
                              run_id or logged.source_run_id, logged.id)
    if source.startswith(ARTIFACTS_URI):
        path = _artifact_path(source)
        found = re.match(r"^mlflow/\d+/models/(?P<id>m-[0-9a-f]+)/artifacts/?$", path)
        if found and (logged := s.get(LoggedModel, found["id"])) is not None:
            return SourceLocation(None, path, logged.name, run_id or logged.source_run_id, logged.id)
        return SourceLocation(None, path.rstrip("/"), posixpath.basename(path.rstrip("/")), run_id, model_id)
    if source.lower().startswith("azureml://"):
        datastore, path = parse_datastore_uri(source)
        return SourceLocation(datastore, path.rstrip("/"), posixpath.basename(path.rstrip("/")), run_id, model_id)
    raise InvalidRequestError(
        f"cannot register a model version from {source!r}: mlyard reads runs:/<run id>/<path>, "
        "models:/<logged model id>, mlflow-artifacts:/... and azureml://datastores/... sources; log the model "
        "to a run first (mlflow.<flavor>.log_model)")


def _artifact_path(uri: str) -> str:
    if not uri.startswith(ARTIFACTS_URI):
        raise InvalidRequestError(f"artifact location {uri!r} is not on this server")
    return uri[len(ARTIFACTS_URI):].strip("/")
