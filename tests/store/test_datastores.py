"""The local datastore: atomic, verified writes that never expose half a file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from mlyard.core.errors import InvalidRequestError
from mlyard.core.hashing import sha256_bytes
from mlyard.store.datastores import TMP_PREFIX, FsspecDatastore, clean_relpath


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


async def _failing() -> AsyncIterator[bytes]:
    yield b"first half"
    raise ConnectionError("client went away")


def _write(store: FsspecDatastore, path: str, chunks: AsyncIterator[bytes], sha: str | None = None) -> object:
    return anyio.run(store.write_stream, path, chunks, sha)


def test_write_then_read_back(tmp_path: Path) -> None:
    store = FsspecDatastore("ds", str(tmp_path / "root"))
    written = _write(store, "a/b/c.txt", _chunks(b"hello ", b"world"), sha256_bytes(b"hello world"))
    assert written.size == 11 and written.sha256 == sha256_bytes(b"hello world")
    with store.open_read("a/b/c.txt") as f:
        assert f.read() == b"hello world"
    assert [f.path for f in store.list_files("a")] == ["a/b/c.txt"]


def test_hash_mismatch_leaves_nothing(tmp_path: Path) -> None:
    store = FsspecDatastore("ds", str(tmp_path / "root"))
    with pytest.raises(InvalidRequestError, match="not the announced"):
        _write(store, "x.bin", _chunks(b"data"), "0" * 64)
    assert store.size("x.bin") is None
    assert not [p for p in (tmp_path / "root").rglob("*") if p.is_file()]


def test_interrupted_stream_leaves_no_file_and_no_temp(tmp_path: Path) -> None:
    store = FsspecDatastore("ds", str(tmp_path / "root"))
    with pytest.raises(ConnectionError):
        _write(store, "big.bin", _failing())
    assert store.size("big.bin") is None
    assert not [p for p in (tmp_path / "root").rglob("*") if p.name.startswith(TMP_PREFIX)]


def test_existing_file_is_replaced_atomically(tmp_path: Path) -> None:
    store = FsspecDatastore("ds", str(tmp_path / "root"))
    _write(store, "f", _chunks(b"one"))
    _write(store, "f", _chunks(b"two"))
    assert (tmp_path / "root" / "f").read_bytes() == b"two"


@pytest.mark.parametrize("bad", ["../escape", "a/../../b", "", "/", ".", f"a/{TMP_PREFIX}x"])
def test_paths_cannot_escape_the_root(bad: str) -> None:
    with pytest.raises(InvalidRequestError, match="invalid datastore path"):
        clean_relpath(bad)


def test_leading_slash_and_dots_are_normalised() -> None:
    assert clean_relpath("/a/./b//c") == "a/b/c"
