"""Settings of one server, passed to worker processes as JSON in an environment variable, and
the report of a worker whose model failed to load, passed back to the parent in a file."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from boxtune.data.images import pixel_limit
from boxtune.errors import BoxtuneError, ModelError
from boxtune.serve.predictor import DEFAULT_MAX_DETECTIONS

CONFIG_ENV = "BOXTUNE_SERVE_CONFIG"
# Where a worker writes why its model failed to load, for the parent to exit with it
LOAD_FAILURE_ENV = "BOXTUNE_SERVE_LOAD_FAILURE"
DEFAULT_PORT = 8080
DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024  # 20 MiB: a large phone JPEG is ~10 MiB
DEFAULT_MAX_HEADER_BYTES = 64 * 1024  # far above real headers; httptools has no limit of its own
# The managed contract's limit on one invocation
DEFAULT_REQUEST_TIMEOUT_S = 60.0
# The default in-flight pixel budget, in images at the pixel limit: two of them decode at once,
# or ~30 12 MP phone JPEGs (decoded at 1/2 scale). Pillow holds 2.5 (1-bit PNG) to 9.5 (RGBA
# PNG) bytes a decoded pixel until it is scaled down, so 100 MP stay under ~1 GB: 16 concurrent
# 7000 x 7000 RGB PNGs peak at ~0.6 GB RSS (2.5 GB without the budget)
INFLIGHT_PIXELS_FACTOR = 2
# A request's line and headers must arrive within this of its first byte (of the connection
# opening, for its first request): real clients send them in one packet, a slowloris drips them
DEFAULT_HEADER_TIMEOUT_S = 10.0
# Its whole body within this of the headers (a total, not an idle, timer): 20 MiB at 5.6 Mbit/s
DEFAULT_BODY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ServeConfig:
    """``backend``: None for the engine's default. ``max_image_pixels`` defaults to the shared
    pixel limit (``boxtune.data.images``, ``$BOXTUNE_MAX_IMAGE_PIXELS``) where the config is
    made; workers get the parent's value through :meth:`to_env`."""

    model: str
    backend: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    workers: int = 1
    max_batch_size: int = 8
    max_batch_delay_ms: float = 5.0
    max_queue: int = 256
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_image_pixels: int = field(default_factory=pixel_limit)
    # Decoded pixels of the requests in flight, per process (boxtune.serve.pixel_budget);
    # None: INFLIGHT_PIXELS_FACTOR x max_image_pixels
    max_inflight_pixels: int | None = None
    score_threshold: float | None = None
    max_detections: int = DEFAULT_MAX_DETECTIONS
    graceful_timeout_s: float = 30.0
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S  # 0: none
    keep_alive_timeout_s: float = 5.0
    max_concurrency: int = 256  # connections and requests per process; uvicorn answers 503
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S  # JSON 408, see boxtune.serve.server
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    access_log: bool = True

    @property
    def inflight_pixel_budget(self) -> int:
        if self.max_inflight_pixels is not None:
            return self.max_inflight_pixels
        return INFLIGHT_PIXELS_FACTOR * self.max_image_pixels

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeConfig:
        raw = os.environ.get(CONFIG_ENV)
        if not raw:
            raise RuntimeError(f"{CONFIG_ENV} is not set: start the server with `boxtune serve`")
        return cls(**json.loads(raw))


def write_load_failure(path: Path, error: BoxtuneError) -> None:
    """Record ``error`` at ``path`` whole or not at all (workers may fail at once)."""
    report = {"message": error.message, "where": error.where, "hint": error.hint}
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(report))
    os.replace(partial, path)


def read_load_failure(path: Path) -> ModelError | None:
    """The error a worker recorded at ``path``, or None when every worker loaded its model."""
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return ModelError(report["message"], where=report["where"], hint=report["hint"])
