"""Prometheus metrics of online endpoints, per endpoint and deployment, on the server's ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServingMetrics:
    """Requests by status, latency, in-flight requests, batch sizes, mirrored copies and worker restarts."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["endpoint", "deployment"]
        self.requests = Counter("mlyard_endpoint_requests_total", "Scoring requests answered, by HTTP status.",
                                [*labels, "status"], registry=registry)
        self.latency = Histogram("mlyard_endpoint_request_duration_seconds",
                                 "Time to answer a scoring request, routing included.", labels,
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.in_flight = Gauge("mlyard_endpoint_requests_in_flight", "Scoring requests being answered.", labels,
                               registry=registry)
        self.batch_size = Histogram("mlyard_endpoint_batch_size", "Requests by the size of the batch their worker "
                                    "predicted them in (deployments with request batching on).", labels,
                                    buckets=BATCH_BUCKETS, registry=registry)
        self.mirrored = Counter("mlyard_endpoint_mirrored_requests_total",
                                "Copies of live requests sent to a mirror deployment, by outcome.",
                                [*labels, "status"], registry=registry)
        self.restarts = Counter("mlyard_endpoint_worker_restarts_total", "Worker processes restarted after they "
                                "exited.", labels, registry=registry)

    def restarted(self, endpoint: str, deployment: str) -> None:
        self.restarts.labels(endpoint, deployment).inc()
