"""Run the HTTP app under uvicorn as a plain process (one or several workers).

uvicorn handles SIGTERM/SIGINT gracefully: it stops accepting connections, lets in-flight
requests finish (up to ``graceful_timeout_s``), then runs the app's shutdown. With
``workers > 1`` a supervisor process forwards the signal to every worker.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import tempfile

from boxtune.engines.onnx_session import ORT_THREADS_ENV  # read by the ONNX Runtime runners
from boxtune.model_ref import check_model_ref
from boxtune.serve.config import CONFIG_ENV, ServeConfig
from boxtune.serve.metrics import MULTIPROC_ENV

APP_FACTORY = "boxtune.serve.app:app_from_env"


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        return os.cpu_count() or 1


class _Terminated(Exception):
    """uvicorn re-raises SIGTERM after its graceful shutdown; we turn it into a clean exit."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


def run_server(config: ServeConfig) -> int:
    """Serve until stopped; returns the exit code. Bad --model references fail before binding."""
    import uvicorn

    ref = check_model_ref(config.model)
    if config.workers > 1 and ref.kind == "artifact":
        # Download / extract once here: workers doing it at once would race on one cache folder
        from boxtune.artifacts import load_artifact

        config = dataclasses.replace(config, model=str(load_artifact(ref.value).directory))
    own_metrics_dir = None
    if config.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # Must be set before any worker imports prometheus_client
        own_metrics_dir = tempfile.mkdtemp(prefix="boxtune-metrics-")
        os.environ[MULTIPROC_ENV] = own_metrics_dir
    if config.workers > 1 and not os.environ.get(ORT_THREADS_ENV):
        # Each worker runs its own model: share the CPUs instead of oversubscribing them
        os.environ[ORT_THREADS_ENV] = str(max(1, _usable_cpus() // config.workers))
    os.environ[CONFIG_ENV] = config.to_env()
    options = dict(
        host=config.host,
        port=config.port,
        timeout_graceful_shutdown=config.graceful_timeout_s,
        access_log=config.access_log,
        log_level="info",
        server_header=False,
    )
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if config.workers > 1:
            uvicorn.run(APP_FACTORY, factory=True, workers=config.workers, **options)
        else:
            from boxtune import console
            from boxtune.serve.app import create_app

            console.configure()  # a server is a program: it shows its log as the CLI does
            uvicorn.run(create_app(config), **options)
    except _Terminated:
        pass  # in-flight requests were answered before uvicorn returned
    finally:
        signal.signal(signal.SIGTERM, previous)
        if own_metrics_dir:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)
    return 0
