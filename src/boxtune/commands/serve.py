"""``boxtune serve``: the managed-platform-compatible HTTP endpoint."""

from __future__ import annotations

import argparse
import math
import os

from boxtune.commands import add_backend_argument, positive_int
from boxtune.serve.config import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_PORT,
    DEFAULT_REQUEST_TIMEOUT_S,
    ServeConfig,
)


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP (POST /invocations, GET /ping, /metrics)",
        description="Serve a model artifact (directory, model.tar.gz or s3:// URI) or a "
        "deployable catalog model_id with the managed platform's request/response contract: "
        "POST /invocations with Content-Type: application/x-image (or application/octet-stream) "
        "and Accept: application/json[;verbose][;n_predictions=N], N up to 1000. A model that "
        "fails to load ends the server with exit status 1.",
    )
    env_model = os.environ.get("BOXTUNE_MODEL")
    parser.add_argument(
        "--model",
        required=env_model is None,
        default=env_model,
        help="artifact dir, model.tar.gz, s3:// URI or deployable model_id "
        "(default: $BOXTUNE_MODEL)",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("BOXTUNE_HOST", "127.0.0.1"),
        help="0.0.0.0 to listen on every interface (containers); default: $BOXTUNE_HOST or "
        "%(default)s",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=os.environ.get("BOXTUNE_PORT", str(DEFAULT_PORT)),  # argparse applies type=
        help="default: $BOXTUNE_PORT or %(default)s",
    )
    add_backend_argument(parser)
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=os.environ.get("BOXTUNE_WORKERS", "1"),
        help="worker processes, each loading the model (default: $BOXTUNE_WORKERS or %(default)s)",
    )
    parser.add_argument(
        "--max-batch-size",
        type=positive_int,
        default=8,
        help="images per model call when requests arrive together; 1 turns "
        "dynamic batching off (default: %(default)s)",
    )
    parser.add_argument(
        "--max-batch-delay-ms",
        type=_non_negative_float,
        default=5.0,
        help="how long a batch waits for requests that are still arriving; a lone request "
        "never waits (default: %(default)s)",
    )
    parser.add_argument(
        "--max-queue",
        type=positive_int,
        default=256,
        help="images waiting for the model beyond which requests get 503 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="larger request bodies get 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-image-pixels",
        type=positive_int,
        default=None,
        help="decoded images with more pixels get 413 (decompression bombs; default: "
        "$BOXTUNE_MAX_IMAGE_PIXELS or 50,000,000)",
    )
    parser.add_argument(
        "--max-inflight-pixels",
        type=positive_int,
        default=None,
        help="decoded pixels of all requests in flight, per worker: beyond it requests wait "
        "(until their deadline, then 503), an image larger than it gets 413; JPEGs count at "
        "the reduced size they are decoded at (default: twice --max-image-pixels)",
    )
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        help="drop boxes scoring below this (default: none, as the managed endpoint)",
    )
    parser.add_argument(
        "--max-detections",
        type=positive_int,
        default=100,
        help="boxes kept per image before n_predictions (default: %(default)s)",
    )
    parser.add_argument(
        "--graceful-timeout",
        type=_non_negative_float,
        default=30.0,
        help="seconds in-flight requests get after SIGTERM (default: %(default)s)",
    )
    parser.add_argument(
        "--request-timeout-s",
        type=_non_negative_float,
        default=DEFAULT_REQUEST_TIMEOUT_S,
        help="an invocation not answered by then gets 504; 0 for none (default: %(default)s)",
    )
    parser.add_argument(
        "--keep-alive-timeout-s",
        type=_non_negative_float,
        default=5.0,
        help="idle keep-alive connections are closed after this (default: %(default)s)",
    )
    parser.add_argument(
        "--max-concurrency",
        type=positive_int,
        default=256,
        help="open connections per worker beyond which requests get 503 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-header-bytes",
        type=positive_int,
        default=DEFAULT_MAX_HEADER_BYTES,
        help="larger request lines and headers get 431 (default: %(default)s)",
    )
    parser.add_argument(
        "--header-timeout-s",
        type=_positive_seconds,
        default=DEFAULT_HEADER_TIMEOUT_S,
        help="a request line and headers not received within this many seconds of the "
        "request's first byte (of the connection opening, for its first request) get 408 and "
        "the connection closes; a new connection that sends nothing is closed after it "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--body-timeout-s",
        type=_positive_seconds,
        default=DEFAULT_BODY_TIMEOUT_S,
        help="a request body not received whole within this many seconds of its headers "
        "gets 408 and the connection closes, however steadily it trickles in "
        "(default: %(default)s)",
    )
    parser.add_argument("--no-access-log", action="store_true", help="do not log each request")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from boxtune.serve.server import run_server

    extra = {} if args.max_image_pixels is None else {"max_image_pixels": args.max_image_pixels}
    config = ServeConfig(
        model=args.model,
        backend=args.backend,
        host=args.host,
        port=args.port,
        workers=args.workers,
        max_batch_size=args.max_batch_size,
        max_batch_delay_ms=args.max_batch_delay_ms,
        max_queue=args.max_queue,
        max_body_bytes=args.max_body_bytes,
        max_inflight_pixels=args.max_inflight_pixels,
        score_threshold=args.score_threshold,
        max_detections=args.max_detections,
        graceful_timeout_s=args.graceful_timeout,
        request_timeout_s=args.request_timeout_s,
        keep_alive_timeout_s=args.keep_alive_timeout_s,
        max_concurrency=args.max_concurrency,
        max_header_bytes=args.max_header_bytes,
        header_timeout_s=args.header_timeout_s,
        body_timeout_s=args.body_timeout_s,
        access_log=not args.no_access_log,
        **extra,
    )
    return run_server(config)
