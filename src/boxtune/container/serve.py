"""``docker run IMAGE serve``: ``boxtune serve`` with the platform's hosting settings.

The platform unpacks model.tar.gz into ``/opt/ml/model`` and sends GET /ping and
POST /invocations to port 8080. Each setting is taken from, first to last: the command's own
option (``serve --workers 2``), the platform's variable, boxtune's variable, the default:

- model: ``--model``, ``$BOXTUNE_MODEL``, ``<root>/model``;
- port: ``--port``, ``$SAGEMAKER_BIND_TO_PORT``, ``$BOXTUNE_PORT``, 8080;
- workers: ``--workers``, ``$SAGEMAKER_MODEL_SERVER_WORKERS``, ``$BOXTUNE_WORKERS``, 1;
- request timeout: ``--request-timeout-s``, ``$SAGEMAKER_MODEL_SERVER_TIMEOUT``, 60 s;
- host: ``--host``, ``$BOXTUNE_HOST``, 0.0.0.0 (the platform connects from outside).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from boxtune.container.layout import MLLayout
from boxtune.errors import BoxtuneError, ModelError
from boxtune.serve.config import DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT_S

PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
TIMEOUT_ENV = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
DEFAULT_HOST = "0.0.0.0"


@dataclass(frozen=True)
class HostingSettings:
    model: str
    host: str
    port: int
    workers: int
    request_timeout_s: float


def hosting_settings(
    layout: MLLayout,
    *,
    model: str | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    request_timeout_s: float | None = None,
    environ: Mapping[str, str] = os.environ,
) -> HostingSettings:
    """The settings of the endpoint: the values given (None: not given), else the variables
    of ``environ``, else the defaults. The model folder must hold a model."""

    def env(*names: str) -> tuple[str, str] | None:
        for name in names:
            value = environ.get(name, "").strip()
            if value:
                return name, value
        return None

    if model is None:
        chosen = env("BOXTUNE_MODEL")
        model = chosen[1] if chosen else str(layout.model_dir)
        if chosen is None:
            check_model_dir(layout.model_dir)
    if host is None:
        chosen = env("BOXTUNE_HOST")
        host = chosen[1] if chosen else DEFAULT_HOST
    if port is None:
        chosen = env(PORT_ENV, "BOXTUNE_PORT")
        port = _whole_number(*chosen, low=1, high=65535) if chosen else DEFAULT_PORT
    if workers is None:
        chosen = env(WORKERS_ENV, "BOXTUNE_WORKERS")
        workers = _whole_number(*chosen, low=1, high=None) if chosen else 1
    if request_timeout_s is None:
        chosen = env(TIMEOUT_ENV)
        request_timeout_s = _seconds(*chosen) if chosen else DEFAULT_REQUEST_TIMEOUT_S
    return HostingSettings(model, host, port, workers, request_timeout_s)


def check_model_dir(model_dir: Path) -> None:
    """Say what is missing when the folder the platform unpacks the model into is empty."""
    if model_dir.is_dir() and any(model_dir.iterdir()):
        return  # loading the artifact checks the rest
    raise ModelError(
        "no model to serve: the folder is " + ("empty" if model_dir.is_dir() else "missing"),
        where=str(model_dir),
        hint="the platform unpacks the model's model.tar.gz there (model_data=... of the "
        "Model or estimator.deploy()); by hand: docker run -v /path/to/artifact:/opt/ml/model "
        "IMAGE serve, or set BOXTUNE_MODEL",
    )


def _whole_number(name: str, value: str, *, low: int, high: int | None) -> int:
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        allowed = f"{low}..{high}" if high is not None else f">= {low}"
        raise BoxtuneError(
            f"{name}={value!r} is not a whole number {allowed}",
            where=name,
            hint=f"set {name} to a whole number {allowed}, or unset it",
        )
    return number


def _seconds(name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise BoxtuneError(
            f"{name}={value!r} is not a number of seconds >= 0",
            where=name,
            hint=f"set {name} to the seconds one invocation may take (0: no limit), or unset it",
        )
    return seconds
