"""``/api/data``: validate a dataset (local or ``s3://``), its stats and a contact sheet,
generate the sample dataset, unpack an uploaded zip. Datasets the console creates live in
``BOXTUNE_HOME/datasets/``."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from boxtune.errors import BoxtuneError
from boxtune.ui.responses import BadRequest, error_body, json_response, read_json, required

MAX_SAMPLE_IMAGES = 2000
PREVIEW_IMAGES = 12


def datasets_root() -> Path:
    from boxtune.paths import boxtune_home

    return boxtune_home() / "datasets"


def _free_folder(stem: str) -> Path:
    """A folder name under datasets/ from a user's file name: safe characters, not taken."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:48] or "dataset"
    root = datasets_root()
    candidate, n = root / name, 2
    while candidate.exists():
        candidate, n = root / f"{name}-{n}", n + 1
    return candidate


def validation_answer(location: str, *, decode_images: bool = True) -> dict[str, Any]:
    """The report (every issue with file, record, field, hint), and for a readable dataset its
    stats and where its contact sheet is drawn."""
    from boxtune.data import check_location
    from boxtune.data.stats import dataset_stats

    try:
        result = check_location(location, decode_images=decode_images)
    except BoxtuneError as exc:  # unreadable as a whole (e.g. an s3:// bucket that is missing)
        return {"ok": False, "location": location, "report": None, "failure": error_body(exc)}
    answer: dict[str, Any] = {
        "ok": result.report.ok,
        "location": location,
        "report": result.report.to_json(),
        "stats": None,
        "preview_url": None,
    }
    if result.report.ok and result.dataset is not None:
        answer["stats"] = dataset_stats(result.dataset)
        answer["preview_url"] = f"/api/data/preview.png?location={quote(location, safe='')}"
    return answer


async def validate(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    body = await read_json(request)
    location = required(body, "location")
    # The Train page checks headers only (fast); the Data page decodes every image.
    decode = body.get("decode_images", True) is not False
    return json_response(
        await run_in_threadpool(lambda: validation_answer(location, decode_images=decode))
    )


def preview(request: Request) -> Response:
    from boxtune.data import read_dataset
    from boxtune.data.preview import contact_sheet

    location = request.query_params.get("location", "")
    if not location:
        raise BadRequest("location is missing", where="location", hint="?location=DATASET")
    dataset = read_dataset(location, decode_images=False)
    with tempfile.TemporaryDirectory() as folder:
        path = contact_sheet(dataset, Path(folder) / "sheet.png", count=PREVIEW_IMAGES)
        png = path.read_bytes()
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


def _sample_count(raw: Any) -> int:
    try:
        count = int(raw)
    except (TypeError, ValueError):
        count = 0
    if not 1 <= count <= MAX_SAMPLE_IMAGES or str(raw).strip() != str(count):
        raise BadRequest(
            f"images={raw!r} is not a whole number from 1 to {MAX_SAMPLE_IMAGES}",
            where="images",
            hint="e.g. 40 for a quick run, 200 for the demo's size",
        )
    return count


async def sample(request: Request) -> Response:
    """Generate the synthetic sample dataset (the same images for the same count and seed, so
    an existing one is reused)."""
    from starlette.concurrency import run_in_threadpool

    from boxtune.data import generate_sample_dataset

    body = await read_json(request)
    count = _sample_count(body.get("images", 40))
    folder = datasets_root() / f"sample-{count}"
    if not (folder / "annotations.json").is_file():
        await run_in_threadpool(generate_sample_dataset, folder, count, 0, overwrite=True)
    return json_response({"location": str(folder)})


async def upload(request: Request) -> Response:
    """A zip of a dataset as the request body (``?filename=``), at most ``max_upload_bytes``."""
    from starlette.concurrency import run_in_threadpool

    from boxtune.data.uploads import import_dataset_zip

    limit: int = request.app.state.max_upload_bytes
    filename = Path(request.query_params.get("filename") or "dataset.zip").name
    if not filename.lower().endswith(".zip"):
        raise BadRequest(
            f"{filename} is not a .zip file",
            where=filename,
            hint="zip the dataset folder (images/ and annotations.json) and upload the zip",
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return _too_large(filename, limit)
    staging = datasets_root() / ".uploads"
    staging.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=staging, suffix=".zip") as tmp:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return _too_large(filename, limit)
            tmp.write(chunk)
        tmp.flush()
        if size == 0:
            raise BadRequest(f"{filename} is empty", where=filename, hint="choose the zip again")
        target = _free_folder(Path(filename).stem)
        await run_in_threadpool(import_dataset_zip, tmp.name, target, shown_name=filename)
    return json_response({"location": str(target)})


def _too_large(filename: str, limit: int) -> Response:
    from boxtune.fileio import human_bytes

    return json_response(
        {
            "error": f"{filename} is larger than the upload limit of {human_bytes(limit)}",
            "where": filename,
            "hint": "give the dataset's folder or s3:// URI instead, or start the console "
            "with a larger --max-upload-mb",
        },
        413,
    )


routes = [
    Route("/api/data/validate", validate, methods=["POST"]),
    Route("/api/data/preview.png", preview),
    Route("/api/data/sample", sample, methods=["POST"]),
    Route("/api/data/upload", upload, methods=["POST"]),
]
