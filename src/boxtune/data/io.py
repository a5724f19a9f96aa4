"""Reading and writing datasets in the managed layout (``images/`` + ``annotations.json``)."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from boxtune.data.records import BBox, BoxAnnotation, DetectionDataset, ImageRecord
from boxtune.data.validate import ANNOTATIONS, IMAGES_DIR, check_dataset
from boxtune.errors import DatasetError, file_error, os_error
from boxtune.fileio import replace_directory
from boxtune.storage import is_remote, local_copy

ImageSource = bytes | os.PathLike | str | Image.Image


def read_dataset(location: str | os.PathLike, *, decode_images: bool = True) -> DetectionDataset:
    """Read and validate a dataset from a local folder or an ``s3://`` prefix.

    Raises ``DatasetError`` listing every error; warnings are kept on ``dataset.warnings``.
    ``decode_images=False`` reads only image headers (faster for large datasets, but a
    truncated file is then found only when it is loaded).
    """
    root = local_copy(location, kind="dataset") if is_remote(location) else Path(location)
    with dataset_read_errors(root):
        result = check_dataset(root.expanduser(), decode_images=decode_images)
    result.report.root = str(location)
    result.report.raise_for_errors()
    assert result.dataset is not None
    return result.dataset


@contextmanager
def dataset_read_errors(root: str | os.PathLike) -> Iterator[None]:
    """What reading the dataset at ``root`` can raise besides its report, as DatasetErrors: an
    OSError (an unreadable annotations file, a path under a file) and the RecursionError of a
    hostile nesting depth in annotations.json."""
    try:
        yield
    except RecursionError as exc:
        # Only json.loads of annotations.json recurses as deep as the user's file nests.
        raise file_error(exc, path=Path(root) / ANNOTATIONS) from exc
    except OSError as exc:
        raise os_error(exc, action="reading the dataset", kind=DatasetError) from exc


class DatasetWriter:
    """Builds a dataset in a temporary folder and moves it into place only when complete.

    >>> with DatasetWriter(dst, categories={1: "person"}) as writer:
    ...     writer.add_image("a.png", png_bytes, boxes=[((10, 20, 50, 90), 1)])
    """

    def __init__(
        self,
        dst: str | os.PathLike,
        *,
        categories: dict[int, str] | None = None,
        overwrite: bool = False,
    ):
        self.dst = Path(dst)
        self.overwrite = overwrite
        self.categories = dict(categories or {})
        self.images: list[ImageRecord] = []
        self.annotations: list[BoxAnnotation] = []
        self._tmp: Path | None = None
        self._names: set[str] = set()

    def __enter__(self) -> DatasetWriter:
        if self.dst.exists() and not self.overwrite and any(self.dst.iterdir()):
            raise DatasetError(
                "destination already exists and is not empty",
                where=str(self.dst),
                hint="choose a new folder or pass --overwrite",
            )
        self.dst.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(dir=self.dst.parent, prefix=f".{self.dst.name}.partial-"))
        (self._tmp / IMAGES_DIR).mkdir()
        return self

    def add_image(
        self,
        file_name: str,
        source: ImageSource,
        *,
        boxes: Iterable[tuple[BBox, int]] = (),
        image_id: int | None = None,
        size: tuple[int, int] | None = None,
    ) -> ImageRecord:
        """Add one image (bytes, a file path or a PIL image) with its ``(bbox, category_id)``s.

        ``size`` (width, height) skips reading the header when the caller already knows it.
        """
        assert self._tmp is not None, "use DatasetWriter as a context manager"
        if file_name in self._names:
            raise DatasetError(
                f"file name '{file_name}' added twice",
                where=str(self.dst),
                hint="give every image a unique file name",
            )
        target = self._tmp / IMAGES_DIR / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Image.Image):
            source.save(target)
            size = size or source.size
        elif isinstance(source, bytes):
            target.write_bytes(source)
        else:
            shutil.copyfile(source, target)
        if size is None:
            with Image.open(target) as img:
                size = img.size
        record = ImageRecord(
            id=len(self.images) + 1 if image_id is None else image_id,
            file_name=file_name,
            width=int(size[0]),
            height=int(size[1]),
        )
        self.images.append(record)
        self._names.add(file_name)
        for bbox, category_id in boxes:
            self.annotations.append(
                BoxAnnotation(record.id, tuple(float(v) for v in bbox), int(category_id))
            )
            self.categories.setdefault(int(category_id), str(category_id))
        return record

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._tmp is not None
        if exc_type is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        dataset = DetectionDataset(self._tmp, self.images, self.annotations, self.categories)
        (self._tmp / ANNOTATIONS).write_text(json.dumps(dataset.to_json(), indent=1) + "\n")
        replace_directory(self._tmp, self.dst)


def write_dataset(
    dst: str | os.PathLike, dataset: DetectionDataset, *, overwrite: bool = False
) -> Path:
    """Write ``dataset`` (e.g. a subset, or one with clipped boxes) as a new folder, atomically.

    Image files are copied as they are; ids and file names are kept.
    """
    with DatasetWriter(dst, categories=dataset.categories, overwrite=overwrite) as writer:
        for record in dataset.images:
            writer.add_image(
                record.file_name,
                dataset.image_path(record),
                image_id=record.id,
                size=(record.width, record.height),
                boxes=[(a.bbox, a.category_id) for a in dataset.boxes_for(record.id)],
            )
    return Path(dst)


def encode_image(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()
