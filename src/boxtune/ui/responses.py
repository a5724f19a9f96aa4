"""JSON answers of the console's API: errors carry what, where, how to fix, and per field."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from boxtune.errors import BoxtuneError, HyperparameterError

log = logging.getLogger("boxtune.ui")


def json_response(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, default=str), status_code=status, media_type="application/json"
    )


def error_body(error: BoxtuneError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error.message, "where": error.where, "hint": error.hint}
    if isinstance(error, HyperparameterError) and error.problems:
        body["problems"] = error.problems
    return body


class BadRequest(BoxtuneError):
    """The request itself is malformed (a missing field, a body that is not JSON)."""


async def read_json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(
            f"the request body is not JSON ({exc})", hint="send a JSON object"
        ) from None
    if not isinstance(body, dict):
        raise BadRequest("the request body is not a JSON object", hint="send a JSON object")
    return body


def required(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{field} is missing", where=field, hint=f"fill in {field}")
    return value.strip()


async def boxtune_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BoxtuneError)
    status = 422 if isinstance(exc, HyperparameterError) else 400
    return json_response(error_body(exc), status)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error in %s %s", request.method, request.url.path)
    return json_response(
        {
            "error": f"internal error: {type(exc).__name__}: {exc}",
            "where": request.url.path,
            "hint": "this is a bug in boxtune; the console's log has the details",
        },
        500,
    )


async def http_error(request: Request, exc: Exception) -> Response:
    from starlette.exceptions import HTTPException

    assert isinstance(exc, HTTPException)
    if not request.url.path.startswith("/api/"):
        return Response(f"{exc.status_code} {exc.detail}", exc.status_code, media_type="text/plain")
    return json_response(
        {
            "error": f"{request.method} {request.url.path}: {exc.detail}",
            "where": request.url.path,
            "hint": "the console's routes are under /api/models, /api/data, /api/jobs and "
            "/api/endpoints",
        },
        exc.status_code,
    )
