"""The HTTP app: the managed platform's routes (``/ping``, ``/invocations``), KServe v2 health
routes and Prometheus ``/metrics``.

With one process the model loads in a background thread at startup, so ``/ping`` answers 503
until it is ready. Worker processes (``--workers N``) share one listening socket: each loads its
model before it starts accepting, so a request never reaches a worker that cannot serve it and
``/ping`` answers 200 only from ready workers. A model that fails to load stops the server in
both cases (``on_load_failure``): ``boxtune serve`` exits 1 with the reason rather than
answering 503 forever.
Every error is JSON ``{"error", "hint"}``; stack traces go to the server log only.

Memory is bounded whatever clients send: each invocation reserves the pixels its decode holds
(from the header, before decoding; JPEGs count at the reduced scale they are decoded at) in a
per-process budget (``--max-inflight-pixels``, see :mod:`boxtune.serve.pixel_budget`) and waits
for them within its deadline (then 503 ``pixel_budget_exhausted``); an image larger than the
whole budget gets 413. Images over the working size (about 1 MP, see
:mod:`boxtune.serve.codec`) are decoded on decoding threads and scaled down at once, so the
batcher only ever holds small arrays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from boxtune.errors import BoxtuneError, ModelError
from boxtune.serve import metrics
from boxtune.serve.batching import DynamicBatcher, QueueFullError
from boxtune.serve.codec import DecodedImage, ImageDecodeError, ImageHeader, ImageTooLargeError
from boxtune.serve.config import (
    DEFAULT_REQUEST_TIMEOUT_S,
    LOAD_FAILURE_ENV,
    ServeConfig,
    write_load_failure,
)
from boxtune.serve.contract import (
    JSON_CONTENT_TYPE,
    BadAcceptParameterError,
    UnsupportedAcceptError,
    parse_accept,
)
from boxtune.serve.pixel_budget import PixelBudget, Reservation
from boxtune.serve.predictor import InProcessPredictor

log = logging.getLogger("boxtune.serve")

IMAGE_CONTENT_TYPES = frozenset(
    {
        "application/x-image",
        # The managed SDK's default serializer type (and what its local mode posts): the bytes
        # are sniffed like every other type's, so nothing but the name differs.
        "application/octet-stream",
        "image/jpeg",
        "image/jpg",
        "image/png",
        "image/webp",
        "image/bmp",
        "image/gif",
        "image/tiff",
    }
)
KNOWN_ROUTES = frozenset(
    {"/ping", "/invocations", "/metrics", "/v2/health/live", "/v2/health/ready"}
)
# Bodies declared larger than the limit are still read (and dropped) up to this size, so that
# the client, still sending, receives the 413 instead of a broken connection.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
# Threads decoding the images larger than the working size (the budget bounds their pixels)
DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))


@dataclass
class ModelState:
    """What the background loader produced; read by the request handlers."""

    predictor: InProcessPredictor | None = None
    error: str | None = None
    failure: BoxtuneError | None = None
    load_seconds: float | None = None


class ErrorResponse(Exception):
    def __init__(
        self, status: int, error: str, hint: str, reason: str, headers: dict | None = None
    ):
        self.status, self.error, self.hint, self.reason = status, error, hint, reason
        self.headers = headers or {}


def json_response(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    content = json.dumps(body, separators=(",", ":"), allow_nan=False)
    return Response(content, status_code=status, media_type=JSON_CONTENT_TYPE, headers=headers)


def error_response(err: ErrorResponse) -> Response:
    response = json_response({"error": err.error, "hint": err.hint}, err.status, err.headers)
    response.headers["x-boxtune-error-reason"] = err.reason
    return response


def error_body(err: ErrorResponse) -> bytes:
    """The JSON body of ``err``, for answers written below the app (the HTTP parser's)."""
    return bytes(error_response(err).body)


# What the HTTP parser answers before the app sees the request (see boxtune.serve.server)
MALFORMED_REQUEST = ErrorResponse(
    400,
    "malformed HTTP request: the request line or a header breaks the HTTP/1.1 syntax "
    "(e.g. a control character such as NUL in a header value)",
    "send headers of printable characters, e.g. Content-Type: application/x-image and "
    "Accept: application/json",
    "malformed_request",
)
HEADERS_TOO_LARGE = ErrorResponse(
    431,
    "request headers too large: the request line and headers exceed the server's limit",
    "send short headers (an image goes in the body), or start the server with a larger "
    "--max-header-bytes",
    "headers_too_large",
)
PARSER_ERRORS = {error.reason: error for error in (MALFORMED_REQUEST, HEADERS_TOO_LARGE)}


def create_app(
    config: ServeConfig,
    predictor: InProcessPredictor | None = None,
    *,
    load_before_serving: bool = False,
    on_load_failure: Callable[[BoxtuneError], None] | None = None,
) -> ASGIApp:
    """The ASGI app; pass ``predictor`` to serve an already loaded one (tests, embedding).
    ``load_before_serving`` finishes loading within the lifespan startup, before uvicorn
    accepts connections, and fails the startup if the model cannot load; otherwise the model
    loads in the background. ``on_load_failure`` is called (from the loading thread) with
    the reason the model failed to load, for the server to stop; until it does, ``/ping``
    answers 503 with that reason."""
    state = ModelState()
    if predictor is not None:
        state.predictor = predictor
    batcher = DynamicBatcher(
        lambda bodies: _decode_and_predict(_require_predictor(state), bodies),
        max_batch_size=config.max_batch_size,
        max_delay_s=config.max_batch_delay_ms / 1000.0,
        max_queue=config.max_queue,
        on_batch=metrics.observe_batch,
    )
    # Decoded pixels of the requests in flight (boxtune.serve.pixel_budget): images larger
    # than the working size decode on these threads, off the event loop and the inference
    # thread, and only the scaled-down pixels go on to the batcher
    budget = PixelBudget(config.inflight_pixel_budget)
    decoder = ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="boxtune-decode")

    def load_model() -> None:
        started = time.perf_counter()
        try:
            state.predictor = InProcessPredictor.load(
                config.model,
                backend=config.backend,
                score_threshold=config.score_threshold,
                max_detections=config.max_detections,
                max_image_pixels=config.max_image_pixels,
            )
            state.load_seconds = time.perf_counter() - started
            log.info("model ready in %.1f s: %s", state.load_seconds, state.predictor.description)
        except BoxtuneError as exc:
            state.error = str(exc)
            log.error("model failed to load: %s", exc)
            record_failure(exc)
        except Exception as exc:
            state.error = f"{type(exc).__name__}: {exc}"
            log.exception("model failed to load")
            record_failure(
                ModelError(
                    f"the model failed to load: {state.error}",
                    where=config.model,
                    hint="the server log above holds the traceback",
                )
            )

    def record_failure(error: BoxtuneError) -> None:
        state.failure = error
        if on_load_failure is not None:
            on_load_failure(error)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if predictor is None and load_before_serving:
            await asyncio.to_thread(load_model)
            if state.failure is not None:
                # uvicorn ends this worker; its parent then stops the others rather than
                # restarting workers that would fail the same way (boxtune.serve.server)
                raise RuntimeError("the model failed to load")
        elif predictor is None:
            threading.Thread(target=load_model, name="boxtune-load", daemon=True).start()
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            decoder.shutdown(wait=True)

    def not_ready() -> ErrorResponse:
        if state.error:
            return ErrorResponse(
                503,
                f"model failed to load: {state.error}",
                "fix the --model reference and restart the server",
                "load_failed",
            )
        return ErrorResponse(
            503,
            "model is still loading",
            "poll GET /ping until it answers 200",
            "loading",
            {"Retry-After": "1"},
        )

    async def ping(request: Request) -> Response:
        if state.predictor is None:
            return error_response(not_ready())
        return json_response({"status": "ready", "model": state.predictor.description})

    async def live(request: Request) -> Response:
        return json_response({"live": True})

    async def ready(request: Request) -> Response:
        if state.predictor is None:
            return json_response({"ready": False}, 503)
        return json_response({"ready": True})

    async def metrics_route(request: Request) -> Response:
        content, content_type = metrics.render()
        return Response(content, media_type=content_type)

    async def invocations(request: Request) -> Response:
        if not config.request_timeout_s:
            return await answer_invocation(request)
        try:
            async with asyncio.timeout(config.request_timeout_s):
                return await answer_invocation(request)
        except TimeoutError as exc:
            waited_for = getattr(request.state, "waiting_for_pixels", 0)
            if waited_for:  # the deadline passed while it waited for the pixel budget
                raise budget_exhausted(waited_for, config.request_timeout_s) from exc
            # The cancellation cancelled the batcher's future: a queued item is skipped
            raise ErrorResponse(
                504,
                f"no answer within the server's limit of {config.request_timeout_s:g} s",
                "retry later, send a smaller image, or start the server with a larger "
                "--request-timeout-s",
                "deadline_exceeded",
            ) from exc

    async def answer_invocation(request: Request) -> Response:
        if state.predictor is None:
            raise not_ready()
        predictor = state.predictor
        _check_content_type(request.headers.get("content-type"))
        response_format = _parse_accept(request.headers.get("accept"))
        with batcher.arriving():
            body = await _read_body(request, config.max_body_bytes)
        if not body:
            raise ErrorResponse(
                400,
                "empty body: no image bytes were sent",
                "send the raw bytes of one JPEG or PNG image as the body",
                "empty_body",
            )
        try:
            header = predictor.probe(body)  # the header only: cheap, on the event loop
            reservation = await reserve_pixels(request, header)
            try:
                image, detections = await batcher.submit(
                    await decode_to_working_size(predictor, body, header, reservation)
                )
            finally:
                reservation.release()
        except ErrorResponse:
            raise
        except ImageTooLargeError as exc:
            raise ErrorResponse(413, exc.message, exc.hint or "", "image_too_large") from exc
        except ImageDecodeError as exc:
            raise ErrorResponse(400, exc.message, exc.hint or "", "undecodable") from exc
        except QueueFullError as exc:
            raise ErrorResponse(
                503,
                f"server overloaded: {exc}",
                "retry after a moment, or run more --workers / a larger --max-queue",
                "queue_full",
                {"Retry-After": "1"},
            ) from exc
        except Exception as exc:  # the runner failed: log the trace here, answer without it
            log.error("inference failed", exc_info=exc)
            raise ErrorResponse(
                500,
                f"inference failed: {type(exc).__name__}",
                "the server log holds the details; report it if it persists",
                "inference_failed",
            ) from exc
        answer = predictor.respond(detections, image, response_format)
        return json_response(answer)

    async def reserve_pixels(request: Request, header: ImageHeader) -> Reservation:
        """The request's share of the pixel budget: waits for it, within the request's
        deadline (or DEFAULT_REQUEST_TIMEOUT_S without one), and answers 413 for an image
        larger than the whole budget."""
        pixels = header.decoded_pixels
        if pixels > budget.capacity:
            raise ErrorResponse(
                413,
                f"image too large for the server's in-flight pixel budget: the "
                f"{header.format} of {header.width}x{header.height} pixels decodes to "
                f"{pixels:,} pixels, over the budget of {budget.capacity:,} pixels",
                "downscale the image before sending it, or start the server with a larger "
                "--max-inflight-pixels",
                "exceeds_pixel_budget",
            )
        request.state.waiting_for_pixels = pixels  # left set if the deadline cancels the wait
        if config.request_timeout_s:
            reservation = await budget.acquire(pixels)
        else:
            try:
                async with asyncio.timeout(DEFAULT_REQUEST_TIMEOUT_S):
                    reservation = await budget.acquire(pixels)
            except TimeoutError as exc:
                raise budget_exhausted(pixels, DEFAULT_REQUEST_TIMEOUT_S) from exc
        request.state.waiting_for_pixels = 0
        return reservation

    def budget_exhausted(pixels: int, waited_s: float) -> ErrorResponse:
        return ErrorResponse(
            503,
            f"server busy: the images in flight hold its whole budget of "
            f"{budget.capacity:,} decoded pixels, and this one ({pixels:,} pixels) waited "
            f"{waited_s:g} s for its share",
            "retry after a moment or send smaller images; or start the server with a larger "
            "--max-inflight-pixels (memory) or more --workers",
            "pixel_budget_exhausted",
            {"Retry-After": "1"},
        )

    async def decode_to_working_size(
        predictor: InProcessPredictor, body: bytes, header: ImageHeader, reservation: Reservation
    ) -> bytes | DecodedImage:
        """What the batcher gets: the body of an image within the working size (decoded on
        the inference thread), or the decoded, scaled-down pixels of a larger one. The
        reservation shrinks to the pixels kept; if the request is cancelled mid-decode, the
        pixels stay reserved until the decoding thread lets go of them."""
        working = header.working_size(predictor.working_side)
        if working == (header.decoded_width, header.decoded_height):
            return body
        job = decoder.submit(predictor.decode, body)
        try:
            image = await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            _release_when_done(job, reservation.detach())
            raise
        reservation.shrink(int(image.pixels.shape[0]) * int(image.pixels.shape[1]))
        return image

    routes = [
        Route("/ping", ping, methods=["GET"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/metrics", metrics_route, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ErrorResponse: _error_exception,
            HTTPException: _http_exception,
            Exception: _unexpected,
        },
    )
    app.state.model = state
    app.state.pixel_budget = budget
    return _QuietLoadFailure(_MetricsMiddleware(app), state)


def app_from_env() -> ASGIApp:
    """App factory for uvicorn worker processes (``boxtune serve --workers N``): they log as
    the CLI process does, accept requests only once their model is loaded, and tell the
    parent why when it cannot load (the file named by ``$BOXTUNE_SERVE_LOAD_FAILURE``)."""
    from boxtune import console

    console.configure()
    return create_app(
        ServeConfig.from_env(), load_before_serving=True, on_load_failure=_report_to_parent
    )


def _report_to_parent(error: BoxtuneError) -> None:
    path = os.environ.get(LOAD_FAILURE_ENV)
    if path:
        write_load_failure(Path(path), error)


def _release_when_done(job: Future, reservation: Reservation) -> None:
    """Release ``reservation`` on the event loop once ``job`` (on a decoding thread) is over."""
    loop = asyncio.get_running_loop()

    def release(_: Future) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped
            loop.call_soon_threadsafe(reservation.release)

    job.add_done_callback(release)


def _decode_and_predict(predictor: InProcessPredictor, items: list[bytes | DecodedImage]) -> list:
    """Runs on the inference thread. Bodies of images within the working size are decoded
    here: it saves two thread hand-offs per request (they cost milliseconds on a busy CPU);
    larger images come decoded and scaled down already. One bad body fails only its own
    request."""
    outcomes: list = [None] * len(items)
    decoded: list[tuple[int, DecodedImage]] = []
    for index, item in enumerate(items):
        if isinstance(item, DecodedImage):
            decoded.append((index, item))
            continue
        try:
            decoded.append((index, predictor.decode(item)))
        except (ImageDecodeError, ImageTooLargeError) as exc:
            outcomes[index] = exc
    if decoded:
        results = predictor.predict_arrays([image.pixels for _, image in decoded])
        for (index, image), detections in zip(decoded, results, strict=True):
            outcomes[index] = (image, detections)
    return outcomes


def _require_predictor(state: ModelState) -> InProcessPredictor:
    if state.predictor is None:
        raise RuntimeError("model not loaded")
    return state.predictor


def _check_content_type(header: str | None) -> None:
    media_type = (header or "").split(";")[0].strip().lower()
    if media_type not in IMAGE_CONTENT_TYPES:
        shown = f"Content-Type {header!r}" if header else "no Content-Type"
        raise ErrorResponse(
            415,
            f"unsupported media type: {shown}",
            "send the image bytes with Content-Type: application/x-image "
            "(or application/octet-stream, image/jpeg, image/png)",
            "unsupported_content_type",
        )


def _parse_accept(header: str | None):
    try:
        return parse_accept(header)
    except UnsupportedAcceptError as exc:
        raise ErrorResponse(406, exc.message, exc.hint or "", "unsupported_accept") from exc
    except BadAcceptParameterError as exc:
        raise ErrorResponse(400, exc.message, exc.hint or "", "bad_accept_parameter") from exc


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = ErrorResponse(
        413,
        f"request body larger than the server's limit of {limit:,} bytes",
        "send a smaller (downscaled or more compressed) image, or start the server with a "
        "larger --max-body-bytes",
        "body_too_large",
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        if int(declared) <= DRAIN_LIMIT_BYTES:
            await _drain(request)
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise ErrorResponse(
            400,
            "client disconnected before sending the whole body",
            "resend the request",
            "client_disconnect",
        ) from exc
    return b"".join(chunks)


async def _drain(request: Request) -> None:
    try:
        async for _ in request.stream():
            pass
    except ClientDisconnect:
        pass


async def _error_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ErrorResponse)
    return error_response(exc)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err = ErrorResponse(
            404,
            f"no route {request.url.path}",
            "routes: GET /ping, POST /invocations, GET /metrics, "
            "GET /v2/health/live, GET /v2/health/ready",
            "not_found",
        )
    elif exc.status_code == 405:
        err = ErrorResponse(
            405,
            f"method {request.method} not allowed on {request.url.path}",
            "use POST /invocations and GET for the other routes",
            "method_not_allowed",
        )
    else:
        err = ErrorResponse(exc.status_code, str(exc.detail), "", "http_error")
    return error_response(err)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        ErrorResponse(
            500,
            f"internal error: {type(exc).__name__}",
            "the server log holds the details; report it if it persists",
            "internal",
        )
    )


class _QuietLoadFailure:
    """Starlette reports a failed lifespan startup with its traceback, which uvicorn logs; a
    model that cannot load was already logged as one clear line, so the traceback is dropped."""

    def __init__(self, app: ASGIApp, state: ModelState):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed" and self.state.failure is not None:
                message = {"type": message["type"], "message": ""}
            await send(message)

        await self.app(scope, receive, send_wrapper)


class _MetricsMiddleware:
    """Counts requests by route and status and times them (pure ASGI, no body buffering)."""

    def __init__(self, app: Starlette):
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in KNOWN_ROUTES else "other"
        started = time.perf_counter()
        status = 500
        reason = ""

        async def send_wrapper(message: Message) -> None:
            nonlocal status, reason
            if message["type"] == "http.response.start":
                status = message["status"]
                for key, value in message.get("headers", []):
                    if key == b"x-boxtune-error-reason":
                        reason = value.decode()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:
            status, reason = 499, "cancelled"
            raise
        finally:
            metrics.REQUESTS.labels(route, scope.get("method", ""), str(status)).inc()
            if status >= 400:
                metrics.ERRORS.labels(route, reason or str(status)).inc()
            metrics.LATENCY.labels(route).observe(time.perf_counter() - started)
