"""Settings of one server, passed to worker processes as JSON in an environment variable."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from boxtune.data.images import pixel_limit
from boxtune.serve.predictor import DEFAULT_MAX_DETECTIONS

CONFIG_ENV = "BOXTUNE_SERVE_CONFIG"
DEFAULT_PORT = 8080
DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024  # 20 MiB: a large phone JPEG is ~10 MiB


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
    score_threshold: float | None = None
    max_detections: int = DEFAULT_MAX_DETECTIONS
    graceful_timeout_s: float = 30.0
    access_log: bool = True

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeConfig:
        raw = os.environ.get(CONFIG_ENV)
        if not raw:
            raise RuntimeError(f"{CONFIG_ENV} is not set: start the server with `boxtune serve`")
        return cls(**json.loads(raw))
