"""The HTML pages: one template each over ``base.html``; their scripts fill them from /api."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

NAVIGATION = (
    ("models", "Models", "/models"),
    ("data", "Data", "/data"),
    ("train", "Train", "/train"),
    ("jobs", "Jobs", "/jobs"),
    ("endpoints", "Endpoints", "/endpoints"),
)


def _page(template: str, section: str, **context):
    def render(request: Request) -> Response:
        return TEMPLATES.TemplateResponse(
            request,
            template,
            {
                "section": section,
                "navigation": NAVIGATION,
                "path_params": request.path_params,
                "max_upload_mb": request.app.state.max_upload_bytes >> 20,
                **context,
            },
        )

    return render


def home(request: Request) -> Response:
    return RedirectResponse("/models", status_code=303)


routes = [
    Route("/", home),
    Route("/models", _page("models.html", "models")),
    Route("/data", _page("data.html", "data")),
    Route("/train", _page("train.html", "train")),
    Route("/jobs", _page("jobs.html", "jobs")),
    Route("/jobs/{name}", _page("job.html", "jobs")),
    Route("/endpoints", _page("endpoints.html", "endpoints")),
    Route("/endpoints/{name}", _page("endpoint.html", "endpoints")),
]
