"""The string grammar of Azure ML references and paths (reference §1.2).

* ``parse_asset_reference``: ``azureml:name:1``, ``azureml:name@latest``, ``name:1``,
  ``name@latest``, bare ``name`` (latest), long ARM ids and registry URIs.
* ``parse_datastore_uri``: ``azureml://datastores/<ds>/paths/<p>`` (and the long form).
* ``parse_job_output_uri``: ``azureml://jobs/<job>/outputs/<out>[/paths/<p>]``.
* ``classify_path``: what kind of location a path string names.

Every parser raises ``InvalidSpecError`` (never anything else) on malformed input; the message
names the string and the accepted forms.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal, NamedTuple

from mlyard.core.errors import InvalidSpecError, SpecIssue

PathKind = Literal["local", "datastore", "job_output", "asset", "registry", "http", "cloud", "run", "model_uri"]

ASSET_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}\Z")
_VERSION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
_LABEL_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")

ASSET_REFERENCE_FORMS = (
    "azureml:<name>:<version>",
    "azureml:<name>@latest",
    "<name>:<version>",
    "<name>@latest",
    "<name>",
    "azureml:/subscriptions/.../<type>/<name>/versions/<version>",
    "azureml://registries/<registry>/<type>/<name>/versions/<version>",
    "azureml://registries/<registry>/<type>/<name>/labels/latest",
)
DATASTORE_URI_FORMS = (
    "azureml://datastores/<datastore>/paths/<path>",
    "azureml://subscriptions/<s>/resourcegroups/<rg>/workspaces/<ws>/datastores/<datastore>/paths/<path>",
)
JOB_OUTPUT_URI_FORMS = (
    "azureml://jobs/<job>/outputs/<output>",
    "azureml://jobs/<job>/outputs/<output>/paths/<path>",
)

_REGISTRY_RE = re.compile(
    r"^azureml://registries/(?P<registry>[^/]+)/(?P<type>[^/]+)/(?P<name>[^/]+)"
    r"/(?:versions/(?P<version>[^/]+)|labels/(?P<label>[^/]+))/?\Z",
    re.IGNORECASE,
)
_ARM_RE = re.compile(
    r"^azureml:/{1,2}subscriptions/[^/]+/.+/(?P<type>[A-Za-z]+)/(?P<name>[^/]+)"
    r"/(?:versions/(?P<version>[^/]+)|labels/(?P<label>[^/]+))/?\Z",
    re.IGNORECASE,
)
_DATASTORE_RE = re.compile(r"^azureml://datastores/(?P<ds>[^/]+)(?:/paths(?:/(?P<path>.*))?)?\Z",
                           re.IGNORECASE | re.DOTALL)
_LONG_DATASTORE_RE = re.compile(
    r"^azureml://subscriptions/[^/]+/resourcegroups/[^/]+/(?:providers/[^/]+/)?workspaces/[^/]+"
    r"/datastores/(?P<ds>[^/]+)(?:/paths(?:/(?P<path>.*))?)?\Z",
    re.IGNORECASE | re.DOTALL,
)
_JOB_OUTPUT_RE = re.compile(
    r"^azureml://jobs/(?P<job>[^/]+)/outputs/(?P<out>[^/]+)(?:/paths(?:/(?P<path>.*))?)?/?\Z", re.IGNORECASE | re.DOTALL
)

_CLOUD_PREFIXES = ("wasb://", "wasbs://", "abfs://", "abfss://", "adl://", "s3://", "gs://", "gcs://")


@dataclass(frozen=True)
class AssetReference:
    """A parsed reference to a versioned asset. Exactly one of ``version`` and ``label`` is set."""

    name: str
    version: str | None = None
    label: str | None = None
    registry: str | None = None
    asset_type: str | None = None  # "environments", "models", ... when the form names it

    @property
    def is_latest(self) -> bool:
        return self.version is None and self.label == "latest"

    def __str__(self) -> str:
        tail = f"versions/{self.version}" if self.version is not None else f"labels/{self.label}"
        if self.registry:
            return f"azureml://registries/{self.registry}/{self.asset_type}/{self.name}/{tail}"
        if self.version is not None:
            return f"azureml:{self.name}:{self.version}"
        return f"azureml:{self.name}@{self.label}"


class DatastorePath(NamedTuple):
    datastore: str
    path: str


class JobOutputRef(NamedTuple):
    job: str
    output: str
    path: str | None


def _fail(what: str, text: object, reason: str, forms: tuple[str, ...]) -> InvalidSpecError:
    message = f"malformed {what} {text!r}: {reason}; expected one of: {', '.join(forms)}"
    return InvalidSpecError(issues=[SpecIssue(message=message)])


def parse_asset_reference(text: str) -> AssetReference:
    """Parse an asset reference; a bare name or a versionless ``azureml:name`` means latest.

    Raises:
        InvalidSpecError: the string is not one of ``ASSET_REFERENCE_FORMS``.
    """
    if not isinstance(text, str):
        raise _fail("asset reference", text, "not a string", ASSET_REFERENCE_FORMS)
    s = text.strip()
    if not s:
        raise _fail("asset reference", text, "it is empty", ASSET_REFERENCE_FORMS)
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        raise _fail("asset reference", text, "it contains a control character (a newline, tab or NUL)",
                    ASSET_REFERENCE_FORMS)
    if s.lower().startswith("azureml://registries/"):
        m = _REGISTRY_RE.match(s)
        if not m:
            raise _fail("asset reference", text, "a registry URI needs <type>/<name>/versions/<v> or /labels/<l>",
                        ASSET_REFERENCE_FORMS)
        return _checked(text, m["name"], m["version"], m["label"], m["registry"], m["type"])
    if s.lower().startswith(("azureml:/subscriptions/", "azureml://subscriptions/")):
        m = _ARM_RE.match(s)
        if not m:
            raise _fail("asset reference", text, "an ARM id must end in <type>/<name>/versions/<version>",
                        ASSET_REFERENCE_FORMS)
        return _checked(text, m["name"], m["version"], m["label"], None, m["type"])
    if s.startswith("azureml:"):
        s = s[len("azureml:"):]
        if s.startswith("/"):
            raise _fail("asset reference", text, "this azureml:// URI names a path, not an asset",
                        ASSET_REFERENCE_FORMS)
    if "@" in s:
        name, _, label = s.partition("@")
        return _checked(text, name, None, label, None, None)
    if ":" in s:
        name, _, version = s.partition(":")
        if ":" in version:
            raise _fail("asset reference", text, "too many ':' separators", ASSET_REFERENCE_FORMS)
        return _checked(text, name, version, None, None, None)
    return _checked(text, s, None, "latest", None, None)


def _checked(
    text: str, name: str, version: str | None, label: str | None, registry: str | None, asset_type: str | None
) -> AssetReference:
    if not ASSET_NAME_RE.match(name or ""):
        raise _fail("asset reference", text, f"{name!r} is not a valid asset name", ASSET_REFERENCE_FORMS)
    if version is not None and not _VERSION_RE.match(version):
        raise _fail("asset reference", text, f"{version!r} is not a valid version", ASSET_REFERENCE_FORMS)
    if label is not None and not _LABEL_RE.match(label):
        raise _fail("asset reference", text, f"{label!r} is not a valid label", ASSET_REFERENCE_FORMS)
    return AssetReference(name=name, version=version, label=label, registry=registry, asset_type=asset_type)


def _strip_glob(path: str) -> str:
    """A trailing ``/**`` (or ``**``) on a folder means the whole folder."""
    if path.endswith("/**"):
        return path[:-3]
    if path == "**":
        return ""
    return path


def parse_datastore_uri(text: str) -> DatastorePath:
    """``(datastore, path)`` of a datastore URI; a trailing ``/**`` glob is dropped.

    Raises:
        InvalidSpecError: the string is not one of ``DATASTORE_URI_FORMS``.
    """
    if not isinstance(text, str):
        raise _fail("datastore URI", text, "not a string", DATASTORE_URI_FORMS)
    s = text.strip()
    m = _DATASTORE_RE.match(s) or _LONG_DATASTORE_RE.match(s)
    if not m:
        raise _fail("datastore URI", text, "it does not name a datastore and a path", DATASTORE_URI_FORMS)
    _check_segments("datastore URI", text, DATASTORE_URI_FORMS)
    return DatastorePath(m["ds"], _strip_glob(m["path"] or ""))


def _check_segments(what: str, text: str, forms: tuple[str, ...]) -> None:
    """No control characters, and no ``..`` segment that would climb out of the datastore or output."""
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        raise _fail(what, text, "it contains a control character (a newline, tab or NUL)", forms)
    if ".." in text.split("/"):
        raise _fail(what, text, "'..' segments are not allowed (a path names a place inside the datastore; write it "
                    "without climbing up)", forms)


def parse_job_output_uri(text: str) -> JobOutputRef:
    """``(job, output, path)`` of ``azureml://jobs/<job>/outputs/<output>[/paths/<p>]``.

    Raises:
        InvalidSpecError: the string is not one of ``JOB_OUTPUT_URI_FORMS``.
    """
    if not isinstance(text, str):
        raise _fail("job output URI", text, "not a string", JOB_OUTPUT_URI_FORMS)
    m = _JOB_OUTPUT_RE.match(text.strip())
    if not m:
        raise _fail("job output URI", text, "it does not name a job and an output", JOB_OUTPUT_URI_FORMS)
    _check_segments("job output URI", text, JOB_OUTPUT_URI_FORMS)
    path = m["path"]
    return JobOutputRef(m["job"], m["out"], _strip_glob(path) if path is not None else None)


def classify_path(text: str) -> PathKind:
    """What a path string names. Anything without a known scheme (or with ``file:``) is local."""
    s = text.strip()
    low = s.lower()
    long_form = low.startswith("azureml://subscriptions/") and "/datastores/" in low
    if low.startswith("azureml://datastores/") or long_form:
        return "datastore"
    if low.startswith("azureml://jobs/"):
        return "job_output"
    if low.startswith("azureml://registries/"):
        return "registry"
    if low.startswith("azureml:"):
        return "asset"
    if low.startswith(("http://", "https://", "git+", "git://")):
        return "http"
    if low.startswith(_CLOUD_PREFIXES):
        return "cloud"
    if low.startswith("runs:/"):
        return "run"
    if low.startswith("models:/"):
        return "model_uri"
    return "local"


def strip_file_scheme(text: str) -> str:
    """``file:x`` -> ``x``; ``file:///abs`` -> ``/abs``."""
    if text.startswith("file://"):
        return text[len("file://"):]
    if text.startswith("file:"):
        return text[len("file:"):]
    return text
