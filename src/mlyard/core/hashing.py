"""Content hashing: sha256 of files, streams and folder trees."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1024 * 1024


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_stream(stream: BinaryIO) -> tuple[str, int]:
    """Hash a binary stream to its end; returns (hex digest, size in bytes)."""
    h = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def sha256_file(path: Path) -> tuple[str, int]:
    with path.open("rb") as f:
        return sha256_stream(f)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_json(value: Any) -> str:
    return sha256_bytes(canonical_json(value).encode())


def tree_hash(entries: Iterable[tuple[str, str, int]]) -> str:
    """Hash of a file tree given (relative posix path, sha256, size) entries, order-independent."""
    rows = sorted(f"{p}\0{h}\0{s}" for p, h, s in entries)
    return sha256_bytes("\n".join(rows).encode())
