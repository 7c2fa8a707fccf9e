"""Object storage datastores: Azure Blob and ADLS Gen2 through fsspec's ``adlfs`` (``abfs://``), and S3 (or an
S3-compatible store: MinIO, Ceph) through ``s3fs`` (``s3://``).

A datastore YAML (Azure's ``azureBlob`` / ``azureDataLakeGen2`` schemas, or mlyard's ``type: s3``) becomes an
fsspec root (``abfs://<container>``, ``s3://<bucket>[/<prefix>]``) and the storage options to open it with.
Credentials (an account key or a SAS token; an access key pair) come from the YAML's ``credentials`` and are
kept in the datastore row, because the server needs them; they are never shown (``redact``) and never put in an
error message (``scrub``).

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
from urllib.parse import urlsplit

from mlyard.core.errors import InvalidRequestError
from mlyard.store.datastores import FsspecDatastore, clean_relpath

AZURE_TYPES = ("azure_blob", "azure_data_lake_gen2")
OBJECT_TYPES = (*AZURE_TYPES, "s3")
SECRET_KEYS = ("account_key", "sas_token")
S3_KEYS = ("access_key_id", "secret_access_key", "session_token")
MASK = "***"
MAX_CONCURRENCY = 8  # parallel block transfers within one file
# An S3 part is at least 5 MiB (but the last) and an upload at most 10,000 parts: 16 MiB parts allow files of
# about 160 GiB while an upload holds at most one part (and a chunk) in memory.
S3_BLOCK_SIZE = 16 << 20
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z0-9][a-z0-9\-]{0,31}")


@dataclass(frozen=True)
class ObjectStore:
    """Where a datastore's files live and how to open them."""

    root: str  # the fsspec root URL
    options: dict[str, Any] = field(default_factory=dict)  # fsspec storage options (secrets included)
    secrets: tuple[str, ...] = ()  # values that must never be shown


def adlfs_available() -> bool:
    return importlib.util.find_spec("adlfs") is not None


def s3fs_available() -> bool:
    return importlib.util.find_spec("s3fs") is not None


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
    """The fsspec root and options of an ``azure_blob`` / ``azure_data_lake_gen2`` / ``s3`` datastore spec."""
    name, kind = spec.get("name"), spec.get("type")
    if kind not in OBJECT_TYPES:
        raise InvalidRequestError(f"datastore {name!r}: type {kind!r} is not an object store mlyard can open "
                                  f"(supported: {', '.join(OBJECT_TYPES)}, and local)", details={"field": "type"})
    if kind == "s3":
        return s3_store(spec)
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


def _refuse(name: Any, field_name: str, what: str) -> InvalidRequestError:
    return InvalidRequestError(f"datastore {name!r}: {what}", details={"field": field_name})


def s3_endpoint(spec: dict[str, Any]) -> str | None:
    """The ``endpoint_url`` of an S3-compatible store (``http://127.0.0.1:9000``), checked; None for AWS itself."""
    raw = spec.get("endpoint_url")
    if raw is None or raw == "":
        return None
    url = urlsplit(str(raw).strip())
    if (url.scheme not in ("http", "https") or not url.hostname or url.username or url.password or url.query
            or url.fragment or url.path not in ("", "/")):
        raise _refuse(spec.get("name"), "endpoint_url", f"endpoint_url {str(raw)!r} is not the http(s) URL of an "
                      "S3-compatible service (give scheme, host and port only, e.g. http://127.0.0.1:9000; leave it "
                      "out for AWS S3)")
    try:
        url.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise _refuse(spec.get("name"), "endpoint_url", f"endpoint_url {str(raw)!r} has an invalid port") from None
    return f"{url.scheme}://{url.netloc}"


def s3_store(spec: dict[str, Any]) -> ObjectStore:
    """The fsspec root (``s3://<bucket>[/<prefix>]``) and ``s3fs`` options of a ``type: s3`` datastore spec."""
    name = spec.get("name")
    if not s3fs_available():
        raise _refuse(name, "type", "an s3 datastore needs the s3fs package on the server: pip install 'mlyard[s3]'")
    bucket = str(spec.get("bucket") or "")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise _refuse(name, "bucket", f"bucket {bucket!r} is not an S3 bucket name (3 to 63 lowercase letters, "
                      "digits, dots and hyphens, starting and ending with a letter or digit)")
    prefix = str(spec.get("prefix") or "").strip().strip("/")
    if prefix:
        try:
            prefix = clean_relpath(prefix)
        except InvalidRequestError as exc:
            raise _refuse(name, "prefix", f"prefix {spec.get('prefix')!r} is not a folder inside the bucket "
                          f"({exc.message})") from None
    region = spec.get("region")
    if region is not None and not _REGION.fullmatch(str(region)):
        raise _refuse(name, "region", f"region {region!r} is not an AWS region name (e.g. eu-west-1)")
    creds = spec.get("credentials") or {}
    if not isinstance(creds, dict):
        raise _refuse(name, "credentials", "credentials must be a mapping with access_key_id and secret_access_key")
    unknown = sorted(set(creds) - set(S3_KEYS))
    missing = [k for k in S3_KEYS[:2] if not creds.get(k)]
    if unknown or missing:
        what = (f"credentials.{unknown[0]} is not supported" if unknown else
                "no credentials are given" if len(missing) == 2 else f"credentials.{missing[0]} is missing")
        raise _refuse(name, "credentials", f"{what}; give credentials.access_key_id and credentials.secret_access_key "
                      "(and credentials.session_token for temporary credentials); the server's own AWS identity "
                      "(environment, profile, instance role) is not lent to datastores")
    key, secret = str(creds["access_key_id"]), str(creds["secret_access_key"])
    token = str(creds["session_token"]) if creds.get("session_token") else None
    endpoint = s3_endpoint(spec)
    config: dict[str, Any] = {"connect_timeout": 10, "read_timeout": 120, "retries": {"max_attempts": 3}}
    if endpoint:  # MinIO, Ceph and most S3-compatible services address buckets by path, not by host name
        config["s3"] = {"addressing_style": "path"}
    options: dict[str, Any] = {
        "key": key, "secret": secret, "token": token, "anon": False, "endpoint_url": endpoint,
        "client_kwargs": {"region_name": str(region)} if region else {}, "config_kwargs": config,
        "default_block_size": S3_BLOCK_SIZE, "skip_instance_cache": True, "use_listings_cache": False}
    root = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    return ObjectStore(root, options, tuple(s for s in (key, secret, token) if s))


def redact(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as it may be shown: every credential value masked."""
    shown = dict(spec)
    if isinstance(shown.get("credentials"), dict):
        shown["credentials"] = {k: MASK for k in shown["credentials"]}
    return shown


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret (and any SAS or AWS signature, account key or AWS secret in it) masked."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = re.sub(r"(?i)(sig=)[^&\s;\"']+", rf"\1{MASK}", text)
    # AWS signatures (presigned URLs' X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token; an Authorization
    # header's Credential= and Signature=) and a secret key written out by name
    text = re.sub(r"(?i)((?:X-Amz-)?(?:Signature|Credential|Security-Token)=)[^&\s;,\"']+", rf"\1{MASK}", text)
    text = re.sub(r"(?i)(aws_secret_access_key|aws_session_token)([\"']?\s*[=:]\s*[\"']?)[^\s;,\"']+",
                  rf"\1\2{MASK}", text)
    return re.sub(r"(?i)(AccountKey=)[^;\s\"']+", rf"\1{MASK}", text)


def refuse_local(spec: dict[str, Any]) -> None:
    """A ``type: local`` datastore would give every token holder the server's own files: never created by request."""
    raise InvalidRequestError(
        f"datastore {spec.get('name')!r}: type local is not created through the API (its folder would be the server's "
        "own files); the workspace's local datastore is workspaceblobstore, and shared storage is an azure_blob, "
        "azure_data_lake_gen2 or s3 datastore", details={"field": "type"})


def open_datastore(name: str, kind: str, root: str, spec: dict[str, Any]) -> FsspecDatastore:
    """A datastore row's ``FsspecDatastore``: object stores opened with their credentials."""
    if kind in OBJECT_TYPES:
        found = object_store(spec)
        return FsspecDatastore(name, found.root, found.options, found.secrets)
    return FsspecDatastore(name, root)
