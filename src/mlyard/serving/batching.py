"""Request batching for no-code deployments: concurrent requests predicted in one call, answered one by one.

Opt-in through the deployment's ``environment_variables`` (so its YAML stays valid for Azure):
``MLYARD_BATCH_MAX_SIZE`` (requests per ``predict`` call) and ``MLYARD_BATCH_MAX_WAIT_MS`` (how long the first
request of a batch may wait for others while the predict thread is idle; default 0). Batches form while the
worker's single predict thread is busy: requests that arrive meanwhile queue, and the moment the running
``predict`` ends they go together (up to the maximum size), so a batch grows with the load instead of with a
timer. A request that finds the thread idle is sent at once (or after the wait, when one is set), so a lone
client pays nothing for batching.

Every answer equals the one the request would get alone: each body is parsed on its own (a malformed one gets its
own 400), only requests whose inputs have the same columns and types and no params are concatenated, and when the
combined ``predict`` raises or its output cannot be split back by row counts, the batch's requests are predicted one
by one instead. Batching assumes what row-wise models do: a row's prediction does not depend on the other rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from mlyard.serving import answers
from mlyard.serving.answers import Answer
from mlyard.serving.nocode import MlflowModelHost, failure
from mlyard.serving.payloads import ModelInput, PayloadError, answer


@dataclass
class BatchStats:
    """What batching did so far, for ``GET /stats``."""

    max_size: int
    max_wait_ms: float
    batches: int = 0
    requests: int = 0
    largest: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"max_size": self.max_size, "max_wait_ms": self.max_wait_ms, "batches": self.batches,
                "requests": self.requests, "largest": self.largest}


class Batcher:
    """Collects ``/score`` bodies in the event loop and predicts them together in the predict thread.

    Args:
        host: the loaded no-code model.
        executor: the worker's single predict thread.
        max_size: the most requests in one batch.
        max_wait_s: how long a batch's first request waits for more.
    """

    def __init__(self, host: MlflowModelHost, executor: ThreadPoolExecutor, max_size: int, max_wait_s: float) -> None:
        self.host = host
        self.executor = executor
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.stats = BatchStats(max_size, max_wait_s * 1000)
        self._pending: list[tuple[bytes, str | None, asyncio.Future[Answer]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._busy = False  # a batch is in the predict thread

    async def __call__(self, body: bytes, request_id: str | None = None) -> Answer:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer] = loop.create_future()
        self._pending.append((body, request_id, future))
        if not self._busy:  # while busy, the running batch's end sends what queued
            if len(self._pending) >= self.max_size or self.max_wait_s <= 0:
                self._flush()
            elif self._timer is None:
                self._timer = loop.call_later(self.max_wait_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy or not self._pending:
            return
        batch, self._pending = self._pending[:self.max_size], self._pending[self.max_size:]
        self._busy = True
        self.stats.batches += 1
        self.stats.requests += len(batch)
        self.stats.largest = max(self.stats.largest, len(batch))
        running = asyncio.get_running_loop().run_in_executor(
            self.executor, score_batch, self.host, [body for body, _, _ in batch], [rid for _, rid, _ in batch])

        def deliver(done: asyncio.Future[list[Answer]]) -> None:
            error = "cancelled" if done.cancelled() else done.exception()
            if error is not None:  # score_batch answers every failure itself; this is the last resort
                results = [answers.scoring_failed(f"the batch failed: {error!r}")] * len(batch)
            else:
                results = done.result()
            for (_, _, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result._replace(batch=len(batch)))
            self._busy = False
            self._flush()  # what queued meanwhile goes at once: it has waited a whole predict already

        running.add_done_callback(deliver)


def score_batch(host: MlflowModelHost, bodies: list[bytes],
                request_ids: list[str | None] | None = None) -> list[Answer]:
    """Answer ``bodies`` as :meth:`MlflowModelHost.score` would one by one, predicting compatible ones together."""
    ids = request_ids or [None] * len(bodies)
    results: list[Answer | None] = [None] * len(bodies)
    groups: dict[Hashable, list[tuple[int, ModelInput]]] = {}
    for position, body in enumerate(bodies):
        try:
            request = host.parse(body)
        except PayloadError as exc:
            results[position] = answers.invalid_request(str(exc))
            continue
        except Exception as exc:
            results[position] = failure(exc)
            continue
        groups.setdefault(_batch_key(request) or ("alone", position), []).append((position, request))
    for members in groups.values():
        for position, request, prediction, result in _predict_group(host, members):
            results[position] = result
            if host.collector is not None and prediction is not _FAILED:
                host.record(request, prediction, bodies[position], result.body, ids[position])
    assert all(result is not None for result in results)
    return [result for result in results if result is not None]


_FAILED = object()
Outcome = tuple[int, ModelInput, Any, Answer]  # position, request, its prediction (or _FAILED), its answer


def _predict_group(host: MlflowModelHost, members: list[tuple[int, ModelInput]]) -> list[Outcome]:
    if len(members) > 1:
        rows = [len(request.data) for _, request in members]
        combined = _concat([request.data for _, request in members])
        try:
            parts = _split(host.predict(ModelInput(combined, None, mlflow_shape=False)), rows)
            if parts is not None:
                return [(position, request, part, Answer(200, answer(part, request)))
                        for (position, request), part in zip(members, parts, strict=True)]
        except Exception:  # one request's data fails the whole call: predict them one by one to find which
            pass
    return [(position, request, *_single(host, request)) for position, request in members]


def _single(host: MlflowModelHost, request: ModelInput) -> tuple[Any, Answer]:
    try:
        prediction = host.predict(request)
        return prediction, Answer(200, answer(prediction, request))
    except PayloadError as exc:
        return _FAILED, answers.invalid_request(str(exc))
    except Exception as exc:
        return _FAILED, failure(exc)


def _batch_key(request: ModelInput) -> Hashable | None:
    """Requests with equal keys can be concatenated without changing any one's input; None: predict it alone."""
    data = request.data
    if request.params is not None:
        return None
    # An empty input may fail alone, so it must not ride along with others.
    if isinstance(data, pd.DataFrame) and len(data):
        return ("frame", tuple(data.columns), tuple(str(dtype) for dtype in data.dtypes))
    if isinstance(data, np.ndarray) and data.ndim >= 1 and len(data) and data.dtype != object:
        return ("array", data.shape[1:], data.dtype.str)
    return None


def _concat(parts: list[Any]) -> Any:
    if isinstance(parts[0], pd.DataFrame):
        return pd.concat(parts, ignore_index=True)
    return np.concatenate(parts)


def _split(prediction: Any, rows: list[int]) -> list[Any] | None:
    """``prediction`` cut back into one part per request, or None when it is not one output row per input row."""
    total = sum(rows)
    if not isinstance(prediction, (np.ndarray, pd.DataFrame, pd.Series, list)) or len(prediction) != total:
        return None
    parts, start = [], 0
    for count in rows:
        part = prediction.iloc[start:start + count] if isinstance(prediction, (pd.DataFrame, pd.Series)) \
            else prediction[start:start + count]
        parts.append(part)
        start += count
    return parts
