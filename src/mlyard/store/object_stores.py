"""Object storage datastores: Azure Blob and ADLS Gen2 through fsspec's ``adlfs`` (``abfs://``).

A datastore YAML (Azure's ``azureBlob`` / ``azureDataLakeGen2`` schemas) becomes an fsspec root
(``abfs://<container>``) and the storage options to open it with. Credentials (an account key or a
SAS token) come from the YAML's ``credentials`` and are kept in the datastore row, because the server
needs them; they are never shown (``redact``) and never put in an error message (``scrub``).

``endpoint`` is Azure's DNS suffix (``core.windows.net``, the default) and the blob endpoint is
``<protocol>://<account>.blob.<endpoint>``; an ``endpoint`` with a port or on a loopback/IP host (an
emulator such as Azurite: ``endpoint: 127.0.0.1:10000`` with ``protocol: http``) is used path-style:
``<protocol>://<endpoint>/<account>``.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from mlyard.core.errors import InvalidRequestError
from mlyard.store.datastores import FsspecDatastore

OBJECT_TYPES = ("azure_blob", "azure_data_lake_gen2")
SECRET_KEYS = ("account_key", "sas_token")
MASK = "***"
MAX_CONCURRENCY = 8  # parallel block transfers within one file


@dataclass(frozen=True)
class ObjectStore:
    """Where a datastore's files live and how to open them."""

    root: str  # the fsspec root URL
    options: dict[str, Any] = field(default_factory=dict)  # fsspec storage options (secrets included)
    secrets: tuple[str, ...] = ()  # values that must never be shown


def adlfs_available() -> bool:
    return importlib.util.find_spec("adlfs") is not None


def _is_path_style(endpoint: str) -> bool:
    host, _, port = endpoint.partition(":")
    if port or host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def blob_endpoint(spec: dict[str, Any]) -> str:
    """The blob service URL of a datastore spec (no credentials in it)."""
    protocol = (spec.get("protocol") or "https").lower()
    if protocol not in ("https", "http"):
        raise InvalidRequestError(f"datastore {spec.get('name')!r}: protocol must be https or http, not {protocol!r}",
                                  details={"field": "protocol"})
    endpoint = (spec.get("endpoint") or "core.windows.net").strip().strip("/")
    if not re.fullmatch(r"[A-Za-z0-9.\-]+(:\d{1,5})?", endpoint):
        raise InvalidRequestError(f"datastore {spec.get('name')!r}: endpoint {endpoint!r} is not a host name "
                                  "(give the DNS suffix, e.g. core.windows.net, or host:port of an emulator)",
                                  details={"field": "endpoint"})
    account = spec["account_name"]
    return f"{protocol}://{endpoint}/{account}" if _is_path_style(endpoint) else f"{protocol}://{account}.blob.{endpoint}"


def container_of(spec: dict[str, Any]) -> str:
    return str(spec.get("container_name") or spec.get("filesystem") or "")


def object_store(spec: dict[str, Any]) -> ObjectStore:
    """The fsspec root and options of an ``azure_blob`` / ``azure_data_lake_gen2`` datastore spec."""
    name, kind = spec.get("name"), spec.get("type")
    if kind not in OBJECT_TYPES:
        raise InvalidRequestError(f"datastore {name!r}: type {kind!r} is not an object store mlyard can open "
                                  f"(supported: {', '.join(OBJECT_TYPES)}, and local)", details={"field": "type"})
    if not adlfs_available():
        raise InvalidRequestError(f"datastore {name!r} needs the adlfs package on the server: "
                                  "pip install 'mlyard[azure-storage]'", details={"field": "type"})
    creds = spec.get("credentials") or {}
    unknown = sorted(set(creds) - set(SECRET_KEYS))
    given = [k for k in SECRET_KEYS if creds.get(k)]
    if unknown or len(given) != 1:
        what = f"credentials.{unknown[0]} is not supported" if unknown else (
            "both credentials.account_key and credentials.sas_token are given" if given else "no credentials are given")
        raise InvalidRequestError(
            f"datastore {name!r}: {what}; give exactly one of credentials.account_key or credentials.sas_token "
            "(identity-based access and service principals are not supported)", details={"field": "credentials"})
    url = blob_endpoint(spec)
    secret = str(creds[given[0]])
    if given[0] == "account_key":
        conn = (f"DefaultEndpointsProtocol={url.split(':', 1)[0]};AccountName={spec['account_name']};"
                f"AccountKey={secret};BlobEndpoint={url};")
    else:
        conn = f"BlobEndpoint={url};SharedAccessSignature={secret.lstrip('?')};"
    options = {"connection_string": conn, "skip_instance_cache": True, "use_listings_cache": False,
               "max_concurrency": MAX_CONCURRENCY}
    return ObjectStore(f"abfs://{container_of(spec)}", options, (secret, secret.lstrip("?"), conn))


def redact(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as it may be shown: every credential value masked."""
    shown = dict(spec)
    if isinstance(shown.get("credentials"), dict):
        shown["credentials"] = {k: MASK for k in shown["credentials"]}
    return shown


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret (and any SAS signature or account key in it) masked."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = re.sub(r"(?i)(sig=)[^&\s;\"']+", rf"\1{MASK}", text)
    return re.sub(r"(?i)(AccountKey=)[^;\s\"']+", rf"\1{MASK}", text)


def refuse_local(spec: dict[str, Any]) -> None:
    """A ``type: local`` datastore would give every token holder the server's own files: never created by request."""
    raise InvalidRequestError(
        f"datastore {spec.get('name')!r}: type local is not created through the API (its folder would be the server's "
        "own files); the workspace's local datastore is workspaceblobstore, and shared storage is an azure_blob or "
        "azure_data_lake_gen2 datastore", details={"field": "type"})


def open_datastore(name: str, kind: str, root: str, spec: dict[str, Any]) -> FsspecDatastore:
    """A datastore row's ``FsspecDatastore``: object stores opened with their credentials."""
    if kind in OBJECT_TYPES:
        found = object_store(spec)
        return FsspecDatastore(name, found.root, found.options, found.secrets)
    return FsspecDatastore(name, root)
