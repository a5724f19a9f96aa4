"""The console's ASGI app: pages, static files and the JSON API, behind the optional token."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from boxtune.errors import BoxtuneError
from boxtune.ui import api_data, api_endpoints, api_jobs, api_models, pages
from boxtune.ui.auth import TokenGate
from boxtune.ui.responses import boxtune_error, http_error, unexpected_error
from boxtune.ui.server import DEFAULT_MAX_UPLOAD_BYTES

STATIC = Path(__file__).parent / "static"


def create_app(
    *, token: str | None = None, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
) -> ASGIApp:
    """The console; with ``token``, every route needs it (see :mod:`boxtune.ui.auth`)."""
    app = Starlette(
        routes=[
            *pages.routes,
            *api_models.routes,
            *api_data.routes,
            *api_jobs.routes,
            *api_endpoints.routes,
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={
            BoxtuneError: boxtune_error,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )
    app.state.max_upload_bytes = max_upload_bytes
    return TokenGate(app, token)
