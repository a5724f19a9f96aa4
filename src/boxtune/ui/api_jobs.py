"""``/api/jobs``: start a training job (the SDK's ``Estimator.fit``), follow it (status, log
tail, metrics, progress, charts), stop and resume it, evaluate and deploy what it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from boxtune.errors import BoxtuneError, DatasetError
from boxtune.ui import charts
from boxtune.ui.responses import json_response, read_json, required

LOG_TAIL_BYTES = 20_000


def _job_summary(job) -> dict[str, Any]:
    from boxtune.jobs.progress import training_progress

    data = job.to_json()
    data.pop("metrics", None)
    data["progress"] = training_progress(job).to_json()
    return data


def list_jobs(request: Request) -> Response:
    from boxtune.jobs import list_jobs as registry_jobs
    from boxtune.jobs import read_metrics
    from boxtune.jobs.evaluation import SUFFIX

    jobs = [job for job in registry_jobs(limit=200) if not job.name.endswith(SUFFIX)]
    for job in jobs:
        job.metrics = read_metrics(job)  # for the epochs column
    return json_response({"jobs": [_job_summary(job) for job in jobs]})


def _check_training_data(location: str, field: str) -> None:
    """The dataset is checked before a job exists, as `boxtune train` would at its start."""
    from boxtune.data import validate_dataset

    report = validate_dataset(location, decode_images=False)
    if not report.ok:
        first = report.errors[0]
        raise DatasetError(
            f"the {field} dataset is invalid: {len(report.errors)} error(s); first: "
            f"{first.location()}: {first.message}",
            where=field,
            hint="open it on the Data page to see every problem",
        )


def _start(body: dict[str, Any]) -> dict[str, Any]:
    from boxtune.sdk.estimator import Estimator
    from boxtune.train.hyperparameters import parse_hyperparameters

    model_id = required(body, "model_id")
    training = required(body, "training")
    validation = (body.get("validation") or "").strip() or None
    hyperparameters = body.get("hyperparameters") or {}
    if not isinstance(hyperparameters, dict):
        raise BoxtuneError("hyperparameters must be an object", where="hyperparameters")
    estimator = Estimator(model_id=model_id, hyperparameters=hyperparameters)
    # fit() checks them as well, but after the data: the form wants its per-field problems first.
    parse_hyperparameters(model_id, estimator.hyperparameters())
    _check_training_data(training, "training")
    if validation:
        _check_training_data(validation, "validation")
    channels = {"training": training, **({"validation": validation} if validation else {})}
    estimator.fit(channels, wait=False)
    assert estimator.latest_training_job is not None
    return {"name": estimator.latest_training_job.name}


async def start_job(request: Request) -> Response:
    body = await read_json(request)
    return json_response(await run_in_threadpool(_start, body), 201)


def show_job(request: Request) -> Response:
    from boxtune.jobs import get_job, list_endpoints
    from boxtune.jobs.evaluation import find_evaluation_job, report_dir
    from boxtune.jobs.logs import read_tail

    job = get_job(request.path_params["name"])
    data = _job_summary(job)
    data["metrics"] = job.metrics
    data["log_tail"] = read_tail(Path(job.log_path), LOG_TAIL_BYTES)
    evaluation = find_evaluation_job(job.name)
    data["evaluation"] = None
    if evaluation is not None:
        report = report_dir(job) / "report.html"
        data["evaluation"] = {
            "name": evaluation.name,
            "status": evaluation.status,
            "failure_reason": evaluation.failure_reason,
            "report_url": f"/api/jobs/{job.name}/report" if report.is_file() else None,
        }
    data["endpoints"] = [e.to_json() for e in list_endpoints() if e.job_name == job.name]
    return json_response(data)


def chart(request: Request) -> Response:
    from boxtune.jobs import get_job

    job = get_job(request.path_params["name"])
    svg = charts.metric_chart(request.path_params["kind"], job.metrics)
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


def stop(request: Request) -> Response:
    from boxtune.jobs import stop_job

    return json_response(_job_summary(stop_job(request.path_params["name"])))


def resume(request: Request) -> Response:
    from boxtune.jobs import resume_job

    return json_response(_job_summary(resume_job(request.path_params["name"])))


def evaluate(request: Request) -> Response:
    from boxtune.jobs.evaluation import submit_evaluation_job

    job = submit_evaluation_job(request.path_params["name"], source="ui")
    return json_response({"name": job.name, "status": job.status}, 201)


def report(request: Request) -> Response:
    from boxtune.jobs import get_job
    from boxtune.jobs.evaluation import report_dir

    job = get_job(request.path_params["name"], with_metrics=False)
    path = report_dir(job) / "report.html"
    if not path.is_file():
        raise BoxtuneError(
            f"training job {job.name} has no evaluation report yet",
            where=str(path),
            hint="press Evaluate on the job's page",
        )
    return FileResponse(path, media_type="text/html")


def deploy(request: Request) -> Response:
    from boxtune.jobs import get_job, start_endpoint
    from boxtune.jobs.evaluation import job_artifact

    job = get_job(request.path_params["name"], with_metrics=False)
    endpoint = start_endpoint(
        str(job_artifact(job)), model_id=job.model_id, job_name=job.name, wait=False
    )
    return json_response(endpoint.to_json(), 201)


routes = [
    Route("/api/jobs", list_jobs),
    Route("/api/jobs", start_job, methods=["POST"]),
    Route("/api/jobs/{name}", show_job),
    Route("/api/jobs/{name}/charts/{kind}.svg", chart),
    Route("/api/jobs/{name}/stop", stop, methods=["POST"]),
    Route("/api/jobs/{name}/resume", resume, methods=["POST"]),
    Route("/api/jobs/{name}/evaluate", evaluate, methods=["POST"]),
    Route("/api/jobs/{name}/report", report),
    Route("/api/jobs/{name}/deploy", deploy, methods=["POST"]),
]
