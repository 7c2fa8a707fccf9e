"""The tracking calls as the raw HTTP requests MLflow's client sends: the servers' own time.

Through the real client (``bench_tracking``), every call also pays the ``mlflow`` client's own work
(about 4 ms of CPU per ``log_metric`` on this kind of machine, the same for both servers), which caps
any ratio. Here a plain ``httpx.Client`` per server, with keep-alive, sends what that client sends: the
same endpoints, the same JSON bodies (``message_to_json`` of the same protobuf messages, built before
the clock starts) and the same bearer header; the reply is checked, not parsed into MLflow entities.
What is timed is one request on loopback and the server's work on it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

API = "/api/2.0/mlflow"


def _body(message: Any) -> dict[str, Any]:
    from mlflow.utils.proto_json_utils import message_to_json

    return json.loads(message_to_json(message))  # type: ignore[no-any-return]


class RawHttp:
    """One keep-alive ``httpx.Client`` per server; each method times one call (or one call's pages)."""

    def __init__(self, urls: dict[str, str], token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self.http = {name: httpx.Client(base_url=url, headers=headers, timeout=600) for name, url in urls.items()}

    def close(self) -> None:
        for client in self.http.values():
            client.close()

    @staticmethod
    def _ok(name: str, response: httpx.Response) -> httpx.Response:
        if response.status_code != 200:
            raise RuntimeError(f"{name} answered {response.status_code} to {response.request.url.path}: "
                               f"{response.text[:300]}")
        return response

    def log_metric(self, name: str, run_id: str, step: int) -> float:
        """``POST runs/log-metric`` of ``loss`` at ``step``, the body ``MlflowClient.log_metric`` sends."""
        from mlflow.protos.service_pb2 import LogMetric

        body = _body(LogMetric(run_uuid=run_id, run_id=run_id, key="loss", value=1.0 / (step + 1),
                               timestamp=int(time.time() * 1000), step=step))
        start = time.perf_counter()
        response = self.http[name].post(f"{API}/runs/log-metric", json=body)
        elapsed = time.perf_counter() - start
        self._ok(name, response)
        return elapsed

    def search_runs(self, name: str, experiment_id: str, filter_text: str, expected: int) -> float:
        """``POST runs/search``, the body ``MlflowClient.search_runs([exp], filter, max_results=1000)`` sends."""
        from mlflow.protos.service_pb2 import SearchRuns

        body = _body(SearchRuns(experiment_ids=[experiment_id], filter=filter_text, run_view_type=1, max_results=1000))
        start = time.perf_counter()
        response = self.http[name].post(f"{API}/runs/search", json=body)
        elapsed = time.perf_counter() - start
        found = self._ok(name, response).json()
        if len(found.get("runs", [])) != expected or found.get("next_page_token"):
            raise RuntimeError(f"{name} runs/search found {len(found.get('runs', []))} runs, expected {expected}")
        return elapsed

    def metric_history(self, name: str, run_id: str, points: int) -> float:
        """``GET metrics/get-history`` page by page (25,000 points each), as ``get_metric_history`` reads it."""
        from mlflow.protos.service_pb2 import GetMetricHistory
        from mlflow.store.tracking import GET_METRIC_HISTORY_MAX_RESULTS

        pages, token, total = [], None, 0.0
        while True:
            query = _body(GetMetricHistory(run_uuid=run_id, run_id=run_id, metric_key="m",
                                           max_results=GET_METRIC_HISTORY_MAX_RESULTS, page_token=token))
            start = time.perf_counter()
            response = self.http[name].get(f"{API}/metrics/get-history", params=query)
            total += time.perf_counter() - start
            page = self._ok(name, response).json()
            pages.append(len(page.get("metrics", [])))
            token = page.get("next_page_token") or None
            if token is None:
                break
        if sum(pages) != points:
            raise RuntimeError(f"{name} returned {sum(pages)} points of metric history, expected {points}")
        return total
