"""Prometheus metrics of the service (prometheus-client). Each app has its own registry, so two apps in one
process (tests) do not collide; with several uvicorn workers, prometheus-client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, set by ``yoloxdet serve --workers N``) sums them over the workers."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from .batching import BatchStats

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """Requests, errors by kind, request latency, batch sizes and the queue depth."""

    def __init__(self, max_batch: int) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "yoloxdet_requests",
            "HTTP requests to /v1/detect by status code",
            ["status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "yoloxdet_errors", "refused or failed requests by kind", ["kind"], registry=self.registry
        )
        self.latency = Histogram(
            "yoloxdet_request_latency_seconds",
            "time from request to answer of /v1/detect",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "yoloxdet_batch_size",
            "images per forward pass",
            buckets=tuple(sorted({1, 2, 4, 8, 16, 32, max_batch})),
            registry=self.registry,
        )
        self.inference = Histogram(
            "yoloxdet_inference_seconds",
            "duration of one batched forward pass + postprocess",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "yoloxdet_queue_depth",
            "requests waiting for a forward pass",
            registry=self.registry,
            multiprocess_mode="livesum",
        )

    def observe_batch(self, stats: BatchStats) -> None:
        self.batch_size.observe(stats.size)
        self.inference.observe(stats.seconds)

    def exposition(self) -> bytes:
        """The text format; summed over worker processes in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
