"""Request batching: concurrent requests predicted together, each answered exactly as it would be alone."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlyard.serving.batching import Batcher, score_batch
from mlyard.serving.nocode import MlflowModelHost
from tests.serving.conftest import COLUMNS, ROWS, SavedModel, WorkerProcess, start_worker

# Bodies a batch mixes: Azure's and MLflow's shapes, several row counts, params, and requests that must fail alone.
BODIES: list[Any] = [
    {"input_data": ROWS[:1]},
    {"input_data": ROWS[1:4]},
    {"input_data": {"columns": COLUMNS, "index": [7, 8], "data": ROWS[4:6]}},
    {"input_data": [[1, 2.0]]},  # too narrow: a 400 of its own
    {"input_data": [["old", 2.0, "oslo"]]},  # fails the signature: a 400 of its own
    {"dataframe_split": {"columns": COLUMNS, "data": ROWS[2:5]}},
    {"input_data": ROWS, "params": {"threshold": 0.7}},
    {"input_data": []},
    {"input_data": [[33, 45000.0, "paris"]] * 3},
    b"{broken",
    {"inputs": 5},  # a 0-d tensor: predicted alone
]


def _raw(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


@pytest.fixture(scope="module")
def host(sklearn_model: SavedModel) -> MlflowModelHost:
    loaded = MlflowModelHost(sklearn_model.path)
    loaded.load()
    return loaded


def test_a_batch_answers_each_request_as_alone(host: MlflowModelHost) -> None:
    bodies = [_raw(body) for body in BODIES]
    alone = [host.score(body) for body in bodies]
    assert [answer.status for answer in alone] == [200, 200, 200, 400, 400, 200, 200, 400, 200, 400, 400]
    assert score_batch(host, bodies) == alone
    assert score_batch(host, list(reversed(bodies))) == list(reversed(alone))


def test_a_lone_request_goes_at_once_and_those_queued_behind_a_predict_go_together(host: MlflowModelHost) -> None:
    """Batches form while the predict thread is busy, not on a timer (a timer made 1.7-request batches under load)."""
    body = _raw({"input_data": ROWS[:2]})
    alone = host.score(body)

    async def scenario() -> tuple[list[Any], dict[str, Any]]:
        with ThreadPoolExecutor(max_workers=1) as executor:
            batcher = Batcher(host, executor, max_size=8, max_wait_s=0.002)
            gate = threading.Event()
            executor.submit(gate.wait, 30)  # the predict thread is busy with something else for now
            first = asyncio.ensure_future(batcher(body))  # finds the batcher idle: a batch of one after the wait
            await asyncio.sleep(0.02)
            queued = []
            for _ in range(5):  # arrive one by one, each well past the wait, while the first is in flight
                queued.append(asyncio.ensure_future(batcher(body)))
                await asyncio.sleep(0.02)
            gate.set()
            results = await asyncio.gather(first, *queued)
            return list(results), batcher.stats.as_dict()

    results, stats = asyncio.run(scenario())
    assert [(r.status, r.body) for r in results] == [(alone.status, alone.body)] * 6
    assert [r.batch for r in results] == [1, 5, 5, 5, 5, 5]  # what the worker tells the router, for its metrics
    assert (stats["batches"], stats["requests"], stats["largest"]) == (2, 6, 5)


@pytest.fixture(scope="module")
def batching_worker(sklearn_model: SavedModel) -> Iterator[WorkerProcess]:
    # A batch is full when every concurrent request of the test below has arrived; the wait only bounds a slow start.
    worker = start_worker("--model-dir", str(sklearn_model.model_dir), "--model-folder", sklearn_model.folder,
                          env={"MLYARD_BATCH_MAX_SIZE": str(len(BODIES)), "MLYARD_BATCH_MAX_WAIT_MS": "1000"})
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def test_concurrent_requests_get_the_unbatched_answers(batching_worker: WorkerProcess,
                                                        nocode_worker: WorkerProcess) -> None:
    with nocode_worker.client() as client:
        alone = [client.post("/score", content=_raw(body)) for body in BODIES]
    unbatched = [_answer(response) for response in alone]
    assert all("x-mlyard-batch-size" not in response.headers for response in alone)
    batched: list[tuple[int, Any] | None] = [None] * len(BODIES)
    sizes: list[int] = []
    start = threading.Barrier(len(BODIES))

    def call(position: int) -> None:
        with batching_worker.client() as client:
            start.wait(timeout=60)
            response = client.post("/score", content=_raw(BODIES[position]))
            batched[position] = _answer(response)
            sizes.append(int(response.headers["x-mlyard-batch-size"]))

    callers = [threading.Thread(target=call, args=(position,)) for position in range(len(BODIES))]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=120)
    assert batched == unbatched
    with batching_worker.client() as client:
        stats = client.get("/stats").json()["batching"]
    assert stats["requests"] == len(BODIES) and stats["largest"] > 1
    assert len(sizes) == len(BODIES) and max(sizes) == stats["largest"]


def test_batching_settings_out_of_range_stop_the_worker_with_the_reason(tmp_path: Path) -> None:
    worker = start_worker("--model-dir", str(tmp_path), "--model-folder", "model",
                          env={"MLYARD_BATCH_MAX_SIZE": "lots"})
    assert worker.process.wait(timeout=60) == 2
    assert "MLYARD_BATCH_MAX_SIZE must be a whole number" in worker.log_text()


def _answer(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, response.json()
