"""Prometheus metrics of the server.

With several worker processes, ``boxtune serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the
workers start; every worker then writes its samples to files there and ``/metrics`` (served by
whichever worker takes the scrape) adds up all workers. With one worker the metrics live in
process memory.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # the *_created series only add noise to every scrape

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)

REQUESTS = Counter(
    "boxtune_requests_total",
    "HTTP requests by route, method and status",
    ["route", "method", "status"],
)
ERRORS = Counter(
    "boxtune_request_errors_total",
    "Requests answered with an error, by route and reason",
    ["route", "reason"],
)
LATENCY = Histogram(
    "boxtune_request_duration_seconds",
    "Time from request to response, by route",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "boxtune_batch_size", "Images per model call (dynamic batching)", buckets=BATCH_BUCKETS
)
INFERENCE_SECONDS = Histogram(
    "boxtune_inference_duration_seconds",
    "Time of one model call on a batch",
    buckets=LATENCY_BUCKETS,
)


def observe_batch(size: int, seconds: float) -> None:
    BATCH_SIZE.observe(size)
    INFERENCE_SECONDS.observe(seconds)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
