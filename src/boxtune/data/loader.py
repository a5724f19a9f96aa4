"""Framework-free batches for training and evaluation: decode once, resize once, augment in numpy.

Every image is decoded and stretched to S x S once, then served from an in-memory cache
(bounded in bytes) on later epochs. Epoch ``e`` draws its order and one seed per sample from
``default_rng([seed, e])``, and each batch is a pure function of those, so a given ``seed`` gives
the same batches whatever ``num_workers`` is.

Batches are numpy (``images`` uint8 ``[B, S, S, 3]``, RGB, channels last); each engine converts
them itself. With ``num_workers`` > 0, a pool of threads (kept across epochs, sharing one cache)
builds whole batches a few ahead of the consumer: PIL's decode, resize and colour steps and
numpy's copies release the GIL, so they overlap with each other and with a training step
running in the main thread.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from boxtune.data.augment import AugmentConfig, augment_sample
from boxtune.data.images import load_rgb
from boxtune.data.records import DetectionDataset
from boxtune.errors import DatasetError
from boxtune.labels import LabelMap

# Decoded S x S images kept per loader; 320 px images take 300 KB each.
DEFAULT_CACHE_BYTES = 1 << 30
# Batches in flight per worker thread (as torch's prefetch_factor).
PREFETCH_PER_WORKER = 2
# Name prefix of the worker threads.
WORKER_THREAD_PREFIX = "boxtune-loader"

Plan = list[tuple[int, int]]  # (index, sample_seed) of each sample of one batch


class Batch(NamedTuple):
    """``images`` uint8 ``[B, S, S, 3]`` (RGB, C-contiguous) and one target dict per image:
    ``boxes`` float32 ``[N, 4]`` corner pixels in the S x S image, ``labels`` int64 ``[N]`` class
    indices, ``image_id`` int and ``orig_size`` ``(height, width)``."""

    images: np.ndarray
    targets: list[dict[str, Any]]


class _Cache:
    """Decoded images by index, up to ``limit`` bytes; safe to share between threads."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self.items: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def get(self, index: int) -> np.ndarray | None:
        return self.items.get(index)

    def put(self, index: int, array: np.ndarray) -> None:
        with self._lock:
            if index not in self.items and self.used + array.nbytes <= self.limit:
                self.items[index] = array
                self.used += array.nbytes


class DetectionSamples:
    """The samples of a dataset at one size: ``(uint8 [S, S, 3], target dict)`` by index."""

    def __init__(
        self,
        dataset: DetectionDataset,
        label_map: LabelMap,
        image_size: int,
        augment: AugmentConfig | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ):
        self.dataset = dataset
        self.image_size = int(image_size)
        self.augment = augment
        self.records = list(dataset.images)
        self._cache = _Cache(cache_bytes)
        unknown = sorted({a.category_id for a in dataset.annotations} - set(label_map.category_ids))
        if unknown:
            raise DatasetError(
                f"category ids {unknown} are not in the label map {list(label_map.category_ids)}",
                where=str(dataset.root),
                hint="the validation data must use the training data's classes",
            )
        index_of = {cid: i for i, cid in enumerate(label_map.category_ids)}
        self._targets: list[tuple[np.ndarray, np.ndarray]] = []
        for record in self.records:
            boxes, cats = dataset.box_array(record.id)
            scale = np.array(
                [image_size / record.width, image_size / record.height] * 2, np.float32
            )
            labels = np.array([index_of[int(c)] for c in cats], np.int64)
            self._targets.append((boxes * scale, labels))

    def __len__(self) -> int:
        return len(self.records)

    def base_image(self, index: int) -> np.ndarray:
        """The image stretched to S x S (uint8 HxWx3, read-only), decoded at most once while it
        fits in the cache."""
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        record = self.records[index]
        path = self.dataset.image_path(record)
        size = (self.image_size, self.image_size)
        try:
            image = load_rgb(path, target_size=self.image_size)
            if image.size != size:
                image = image.resize(size, Image.BILINEAR)
            array = np.asarray(image)
        except (OSError, ValueError) as exc:
            raise DatasetError(
                f"cannot decode image ({exc})",
                where=str(path),
                hint="run `boxtune data validate` on the dataset",
            ) from exc
        if array.flags.writeable:
            array.setflags(write=False)  # shared by every epoch: nothing may change it
        self._cache.put(index, array)
        return array

    def sample(
        self, index: int, sample_seed: int | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """One sample; with augmentation, ``sample_seed`` fixes its randomness (None: fresh)."""
        record = self.records[index]
        image = self.base_image(index)
        boxes, labels = self._targets[index]
        if self.augment is not None:
            rng = np.random.default_rng(sample_seed)
            image, boxes, labels = augment_sample(image, boxes, labels, self.augment, rng)
        target = {
            # Copies: the consumer may change them; the stored targets serve every epoch.
            "boxes": np.array(boxes, np.float32).reshape(-1, 4),
            "labels": np.array(labels, np.int64).reshape(-1),
            "image_id": record.id,
            "orig_size": (record.height, record.width),
        }
        return image, target

    def batch(self, plan: Plan) -> Batch:
        size = self.image_size
        images = np.empty((len(plan), size, size, 3), np.uint8)
        targets = []
        for row, (index, sample_seed) in enumerate(plan):
            image, target = self.sample(index, sample_seed)
            images[row] = image
            targets.append(target)
        return Batch(images, targets)


class _Prefetch:
    """One iteration over worker threads: keeps ``window`` batches in flight, yields in order.

    Closing it (at the end, on an error, when it is dropped midway) cancels what has not
    started; the threads stay with the loader for the next epoch.
    """

    def __init__(self, owner: BatchLoader, plans: list[Plan], window: int):
        self._owner = owner  # keeps the loader, hence its threads, alive while iterating
        self._plans = iter(plans)
        self._pending: deque[Future[Batch]] = deque()
        for _ in range(window):
            self._submit()

    def _submit(self) -> None:
        plan = next(self._plans, None)
        if plan is not None:
            self._pending.append(self._owner._submit(plan))

    def __iter__(self) -> _Prefetch:
        return self

    def __next__(self) -> Batch:
        if not self._pending:
            raise StopIteration
        future = self._pending.popleft()
        self._submit()
        try:
            return future.result()
        except BaseException:  # a DatasetError from a worker, or Ctrl-C while waiting
            self.close()
            raise

    def close(self) -> None:
        self._plans = iter(())
        while self._pending:
            self._pending.popleft().cancel()

    def __del__(self) -> None:
        self.close()


class BatchLoader:
    """Iterable of :class:`Batch`; each iteration is one epoch.

    An iteration uses epoch :attr:`epoch` and advances it by one; :meth:`set_epoch` chooses the
    epoch of the next iteration (a resumed run calls it to see the batches an uninterrupted run
    would).
    """

    def __init__(
        self,
        samples: DetectionSamples,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        num_workers: int = 0,
    ):
        self.samples = samples
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.num_workers = num_workers
        self._epoch = 0
        self._executor: ThreadPoolExecutor | None = None
        self._finalizer: weakref.finalize | None = None
        self._lock = threading.Lock()

    @property
    def epoch(self) -> int:
        """The epoch the next iteration will use."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        epoch = int(epoch)
        if epoch < 0:
            raise ValueError(f"epoch {epoch} must be >= 0")
        self._epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(len(self.samples), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def plans(self, epoch: int) -> list[Plan]:
        """The ``(index, sample_seed)`` of every batch of ``epoch``."""
        count = len(self.samples)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(count) if self.shuffle else np.arange(count)
        seeds = rng.integers(0, 2**31 - 1, size=count)
        pairs = [(int(i), int(s)) for i, s in zip(order, seeds, strict=True)]
        stop = len(self) * self.batch_size
        return [pairs[start : start + self.batch_size] for start in range(0, stop, self.batch_size)]

    def __iter__(self) -> Iterator[Batch]:
        plans = self.plans(self._epoch)
        self._epoch += 1
        if self.num_workers <= 0:
            return map(self.samples.batch, plans)
        return _Prefetch(self, plans, PREFETCH_PER_WORKER * self.num_workers)

    def _submit(self, plan: Plan) -> Future[Batch]:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.num_workers, thread_name_prefix=WORKER_THREAD_PREFIX
                )
                # Stops the threads when the loader is collected, without a reference to it.
                self._finalizer = weakref.finalize(
                    self, self._executor.shutdown, wait=False, cancel_futures=True
                )
            return self._executor.submit(self.samples.batch, plan)

    def close(self) -> None:
        """Stop the worker threads (idle ones at once, busy ones after their batch); a later
        iteration starts new ones."""
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._executor = self._finalizer = None

    def __enter__(self) -> BatchLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_loader(
    ds: DetectionDataset,
    label_map: LabelMap,
    image_size: int,
    batch_size: int,
    augment: AugmentConfig | None = None,
    shuffle: bool = False,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
    *,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> BatchLoader:
    """A :class:`BatchLoader` of ``Batch(images uint8 [B, S, S, 3], targets)`` with boxes in
    S x S pixels.

    Pass ``augment=None`` (or ``AugmentConfig.off()``) for validation. ``cache_bytes=0`` turns
    the decoded-image cache off. ``num_workers`` threads (at most one per CPU) build batches
    ahead of the consumer and persist across epochs; 0 builds them in the caller's thread.
    """
    if batch_size < 1:
        raise DatasetError(
            f"batch_size {batch_size} must be at least 1",
            hint="set batch_size to a positive integer",
        )
    if len(ds) == 0:
        raise DatasetError(
            "dataset has no images", where=str(ds.root), hint="add images to the dataset"
        )
    samples = DetectionSamples(ds, label_map, image_size, augment, cache_bytes)
    workers = max(0, min(num_workers, os.cpu_count() or 1))
    return BatchLoader(
        samples, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, num_workers=workers
    )
