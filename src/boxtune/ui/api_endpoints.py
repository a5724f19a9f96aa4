"""``/api/endpoints``: running endpoints, deploying a catalog model as is, *Try it* (the
image goes to the endpoint's ``/invocations`` and its answer comes back as it is) and stop."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from boxtune.errors import BoxtuneError
from boxtune.ui.responses import BadRequest, json_response, read_json, required

VERBOSE_JSON = "application/json;verbose"
TRY_TIMEOUT_S = 120.0


def list_endpoints(request: Request) -> Response:
    from boxtune.jobs import STARTING, check_startup
    from boxtune.jobs import list_endpoints as registry_endpoints

    endpoints = [check_startup(e.name) if e.status == STARTING else e for e in registry_endpoints()]
    return json_response({"endpoints": [e.to_json() for e in endpoints]})


async def deploy_model(request: Request) -> Response:
    """Deploy a catalog model as is (its pretrained classes), like ``JumpStartModel.deploy``."""
    from boxtune.jobs import start_endpoint
    from boxtune.model_ref import deployable_spec

    model_id = required(await read_json(request), "model_id")
    deployable_spec(model_id, where="model_id")  # not deployable as is: says why, before a start
    endpoint = await run_in_threadpool(start_endpoint, model_id, model_id=model_id, wait=False)
    return json_response(endpoint.to_json(), 201)


def show_endpoint(request: Request) -> Response:
    from boxtune.jobs import check_startup
    from boxtune.jobs.logs import read_tail

    endpoint = check_startup(request.path_params["name"])
    data = endpoint.to_json()
    data["log_tail"] = read_tail(Path(endpoint.log_path), 8_000)
    return json_response(data)


def stop(request: Request) -> Response:
    from boxtune.jobs import stop_endpoint

    return json_response(stop_endpoint(request.path_params["name"]).to_json())


def _invoke(url: str, body: bytes, content_type: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/invocations",
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Accept": VERBOSE_JSON},
    )
    try:
        with urllib.request.urlopen(request, timeout=TRY_TIMEOUT_S) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise BoxtuneError(
            f"the endpoint at {url} did not answer ({exc})",
            where=url,
            hint="it may have stopped; see its log on this page",
        ) from exc
    try:
        return {"status": status, "answer": json.loads(raw)}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"status": status, "answer": raw.decode("utf-8", "replace")[:2000]}


async def try_it(request: Request) -> Response:
    """The endpoint's own status and JSON for the uploaded bytes: a 4xx from the endpoint (a
    file that is not an image) is its answer, shown as such, not a failure of this route."""
    from boxtune.jobs import get_endpoint

    endpoint = await run_in_threadpool(get_endpoint, request.path_params["name"])
    if not endpoint.is_active:
        raise BoxtuneError(
            f"endpoint {endpoint.name} is {endpoint.status}",
            hint="deploy the model again from its job or the Models page",
        )
    limit: int = request.app.state.max_upload_bytes
    body = await request.body()
    if not body:
        raise BadRequest("no image in the request", hint="choose or drop an image file")
    if len(body) > limit:
        raise BadRequest("the image is larger than the upload limit", hint="use a smaller image")
    content_type = request.headers.get("content-type") or "application/x-image"
    answer = await run_in_threadpool(_invoke, endpoint.url, body, content_type)
    answer["endpoint"] = endpoint.name
    return json_response(answer)


routes = [
    Route("/api/endpoints", list_endpoints),
    Route("/api/endpoints", deploy_model, methods=["POST"]),
    Route("/api/endpoints/{name}", show_endpoint),
    Route("/api/endpoints/{name}/stop", stop, methods=["POST"]),
    Route("/api/endpoints/{name}/invocations", try_it, methods=["POST"]),
]
