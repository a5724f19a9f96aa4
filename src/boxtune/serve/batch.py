"""Batch prediction over a folder (local or s3://): one ``<file_name>.out`` JSON per image.

Each ``.out`` holds the endpoint's verbose answer. Outputs are written atomically, so an
interrupted run resumes by skipping images whose outputs exist. A bad image is reported and
counted; the others go on. With an ``s3://`` output every file is written locally first, then
uploaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from boxtune.data.images import (
    IMAGE_SUFFIXES,
    ImageProblem,
    byte_limit,
    check_file,
    decode_open_file,
)
from boxtune.errors import BoxtuneError, os_error
from boxtune.fileio import atomic_path
from boxtune.paths import boxtune_home
from boxtune.serve.codec import DecodedImage
from boxtune.serve.contract import ResponseFormat
from boxtune.serve.predictor import InProcessPredictor
from boxtune.serve.visualize import DEFAULT_MIN_SCORE, draw_answer
from boxtune.storage import filesystem, is_remote, local_copy, upload

OUTPUT_SUFFIX = ".out"
_log = logging.getLogger(__name__)
VISUALIZATION_DIR = "visualizations"
SUMMARY_NAME = "predict-summary.json"
VERBOSE = ResponseFormat(verbose=True)


@dataclass
class BatchSummary:
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    output: str = ""

    def to_json(self) -> dict:
        return {
            "total": self.total,
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "failures": self.failures,
            "output": self.output,
        }

    def line(self) -> str:
        return (
            f"{self.done} predicted, {self.skipped} skipped (already done), "
            f"{self.failed} failed, of {self.total} images -> {self.output}"
        )


def list_images(root: Path, exclude: Path | None = None) -> list[str]:
    """Relative POSIX paths of image files under root (recursive, hidden entries skipped),
    leaving out the ``exclude`` folder (an output folder inside the input) and boxtune's own
    visualisations when input and output are the same folder."""
    found = []
    skip = exclude.resolve() if exclude is not None else None
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(
            d for d in subdirs if not d.startswith(".") and (Path(directory) / d).resolve() != skip
        )
        for name in sorted(files):
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            rel = (Path(directory) / name).relative_to(root).as_posix()
            if not rel.startswith(f"{VISUALIZATION_DIR}/"):
                found.append(rel)
    return found


class _Output:
    """Where outputs go: a local folder, or a local staging folder mirrored to a URI."""

    def __init__(self, location: str):
        self.location = location
        self.remote = is_remote(location)
        if self.remote:
            digest = hashlib.sha256(location.encode()).hexdigest()[:16]
            self.root = boxtune_home() / "predict-staging" / digest
            self._existing = self._list_remote()
        else:
            self.root = Path(location).expanduser()
            self._existing = set()
        self.root.mkdir(parents=True, exist_ok=True)

    def _list_remote(self) -> set[str]:
        fs, path = filesystem(self.location)
        try:
            if not fs.exists(path):
                return set()
            prefix = path.rstrip("/") + "/"
            return {p[len(prefix) :] for p in fs.find(path) if p.startswith(prefix)}
        except Exception as exc:
            raise BoxtuneError(
                f"cannot list {self.location}: {exc}",
                where="--output",
                hint="check the URI and your S3 credentials/endpoint",
            ) from exc

    def exists(self, rel: str) -> bool:
        return rel in self._existing if self.remote else (self.root / rel).exists()

    def write(self, rel: str, write_to: Callable[[Path], None]) -> None:
        """Write via a temp file in the same folder, rename, then upload if remote."""
        target = self.root / rel
        try:
            with atomic_path(target) as tmp:
                write_to(tmp)
        except OSError as exc:  # a full disk stops the run: every later write would fail too
            raise os_error(exc, action="writing the prediction", path=target) from exc
        if self.remote:
            upload(target, f"{self.location.rstrip('/')}/{rel}")
            self._existing.add(rel)


def predict_folder(
    predictor: InProcessPredictor,
    input_location: str,
    output_location: str,
    *,
    visualize: bool = False,
    min_score: float = DEFAULT_MIN_SCORE,
    batch_size: int = 4,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> BatchSummary:
    """Predict every image under ``input_location``; see the module docstring. ``report``
    receives the per-file problems (default: this module's logger, as warnings)."""
    from tqdm import tqdm

    root = local_copy(input_location, kind="predict-input")
    if not root.exists():
        raise BoxtuneError(
            f"{input_location} does not exist", where="--input", hint="check the path"
        )
    if not root.is_dir():
        raise BoxtuneError(
            f"{input_location} is not a folder",
            where="--input",
            hint="give a folder of images (local or s3:// prefix)",
        )
    output = _Output(output_location)
    images = list_images(root, exclude=None if output.remote else output.root)
    if not images:
        raise BoxtuneError(
            f"no images in {input_location}",
            where="--input",
            hint=f"image files end with {', '.join(sorted(IMAGE_SUFFIXES))}",
        )
    summary = BatchSummary(total=len(images), output=output_location)

    def finished(rel: str) -> bool:
        return output.exists(rel + OUTPUT_SUFFIX) and (
            not visualize or output.exists(f"{VISUALIZATION_DIR}/{rel}.png")
        )

    todo = [rel for rel in images if not finished(rel)]
    summary.skipped = len(images) - len(todo)
    bar = tqdm(
        total=len(images),
        initial=summary.skipped,
        unit="img",
        disable=not progress,
        desc="predict",
        dynamic_ncols=True,
    )

    def fail(rel: str, reason: str) -> None:
        summary.failed += 1
        summary.failures[rel] = reason
        message = f"failed: {rel}: {reason}"
        if progress:
            bar.write(message, file=sys.stderr)
        else:
            (report or _log.warning)(message)

    try:
        for chunk in _chunks(todo, batch_size):
            decoded: list[tuple[str, DecodedImage]] = []
            for rel in chunk:
                try:
                    decoded.append((rel, decode_file(predictor, root / rel, rel)))
                except (BoxtuneError, ImageProblem) as exc:
                    fail(rel, exc.message)
                    bar.update(1)
                except OSError as exc:
                    fail(rel, os_error(exc, action="reading the image").message)
                    bar.update(1)
            for rel, image, answer in _predict(predictor, decoded, fail):
                output.write(rel + OUTPUT_SUFFIX, lambda p, a=answer: _write_json(p, a))
                if visualize:
                    drawn = draw_answer(image.pixels, answer, predictor.labels, min_score=min_score)
                    output.write(
                        f"{VISUALIZATION_DIR}/{rel}.png", lambda p, d=drawn: d.save(p, format="PNG")
                    )
                summary.done += 1
            bar.update(len(decoded))
            bar.set_postfix(done=summary.done, failed=summary.failed, refresh=False)
    finally:
        bar.close()
    output.write(SUMMARY_NAME, lambda p: _write_json(p, summary.to_json()))
    return summary


def decode_file(predictor: InProcessPredictor, path: Path, source: str) -> DecodedImage:
    """The pixels of the image file ``path``, read as a stream: a file over the byte limit is
    refused by its size (stat) and one over the pixel limit by its header, before either is
    read whole. Raises ImageProblem, or the predictor's own error (ImageDecodeError) for a file
    that is not a decodable image."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer; check_file then refuses it.
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
        check_file(handle)
        try:
            fmt, pixels = decode_open_file(handle, max_pixels=predictor.max_image_pixels)
        except ImageProblem:
            raise
        except Exception:
            # Let the endpoint's decoder word the reason ("truncated PNG", "HEIC"); the file is
            # within the byte limit, so reading it whole is bounded.
            handle.seek(0)
            return predictor.decode(handle.read(byte_limit() + 1), source=source)
    return DecodedImage(pixels=pixels, format=fmt)


def _predict(predictor: InProcessPredictor, decoded: list[tuple[str, DecodedImage]], fail):
    """(rel, image, answer) per decoded image; a failing batch is retried image by image so
    one bad image does not sink the others."""
    if not decoded:
        return
    try:
        results = predictor.predict_arrays([image.pixels for _, image in decoded])
    except Exception as exc:
        if len(decoded) == 1:
            rel, _ = decoded[0]
            fail(rel, f"the model failed on this image: {type(exc).__name__}: {exc}")
            return
        for item in decoded:
            yield from _predict(predictor, [item], fail)
        return
    for (rel, image), detections in zip(decoded, results, strict=True):
        yield rel, image, predictor.respond(detections, image, VERBOSE)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n")
