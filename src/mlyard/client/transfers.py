"""Several file transfers at once: a bounded number of threads sharing the SDK's one httpx client.

httpx's ``Client`` is thread-safe and pools its connections, so each thread's request takes its own
connection. Results come back in the order of the files, whatever order the transfers end in, and a
failure names its file: the failure of the first file (in that order) among those that failed is the
one raised, after the transfers already running have ended and the ones not started were dropped.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from mlyard.core.errors import MlyardError, StorageError

DEFAULT_TRANSFERS = 8  # files sent or fetched at once (MLYARD_TRANSFERS)
Progress = Callable[[str, int], None]  # (file path, bytes just moved)

T = TypeVar("T")
R = TypeVar("R")


def transfer_each(items: Sequence[T], move: Callable[[T], R], *, transfers: int,
                  label: Callable[[T], str]) -> list[R]:
    """``move`` every item, at most ``transfers`` at once; the results in the order of ``items``.

    A failure stops the items not yet started; it is raised, naming the item (``label``), once the
    running ones have ended, so nothing is still being written when the caller sees it.
    """
    if transfers <= 1 or len(items) <= 1:
        results = []
        for item in items:
            try:
                results.append(move(item))
            except Exception as exc:
                raise _naming(exc, label(item)) from exc
        return results
    pool = ThreadPoolExecutor(max_workers=min(transfers, len(items)), thread_name_prefix="mlyard-transfer")
    try:
        futures = [pool.submit(move, item) for item in items]
        wait(futures, return_when=FIRST_EXCEPTION)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after a failure (or Ctrl-C), start nothing more
    for item, future in zip(items, futures, strict=True):
        failure = _failure(future)
        if failure is not None:
            raise _naming(failure, label(item)) from failure
    return [f.result() for f in futures]


def serialised(progress: Progress | None) -> Progress | None:
    """``progress`` called by one transfer at a time (a progress bar need not be thread-safe)."""
    if progress is None:
        return None
    lock = threading.Lock()

    def report(path: str, n: int) -> None:
        with lock:
            progress(path, n)

    return report


def _failure(future: Future[R]) -> BaseException | None:
    if future.cancelled():
        return None
    return future.exception()


def _naming(exc: BaseException, name: str) -> BaseException:
    """``exc`` with the file's name in front of its message, unless it already names it."""
    if isinstance(exc, MlyardError):
        if name in exc.message:
            return exc
        named = copy.copy(exc)
        named.message = f"{name}: {exc.message}"
        named.args = (named.message,)
        named.details = {**exc.details, "file": name}
        return named
    if isinstance(exc, OSError):  # a local file that went away or cannot be read or written
        return StorageError(f"{name}: {exc.strerror or exc}", details={"file": name})
    return exc
