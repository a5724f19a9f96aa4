"""Torch loading for training and evaluation: decode once, resize once, augment in numpy.

Every image is decoded and stretched to S x S once, then served from an in-memory cache
(bounded in bytes) on later epochs. Randomness comes from a per-sample seed drawn by the
sampler, so a given ``seed`` gives the same batches whatever ``num_workers`` is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from boxtune.data.augment import AugmentConfig, augment_sample
from boxtune.data.images import load_rgb
from boxtune.data.records import DetectionDataset
from boxtune.errors import DatasetError
from boxtune.labels import LabelMap

# Decoded S x S images kept per process; 320 px images take 300 KB each.
DEFAULT_CACHE_BYTES = 1 << 30


@dataclass
class _Cache:
    limit: int
    used: int = 0

    def __post_init__(self) -> None:
        self.items: dict[int, np.ndarray] = {}

    def get(self, index: int) -> np.ndarray | None:
        return self.items.get(index)

    def put(self, index: int, array: np.ndarray) -> None:
        if self.used + array.nbytes <= self.limit:
            self.items[index] = array
            self.used += array.nbytes


class DetectionTorchDataset(Dataset):
    """Samples ``(uint8 tensor [3, S, S], target dict)``; indexed by ``(index, sample_seed)``
    or by a plain index."""

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
        """The image stretched to S x S (uint8 HxWx3), decoded at most once per process."""
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        record = self.records[index]
        path = self.dataset.image_path(record)
        try:
            image = load_rgb(path, target_size=self.image_size)
        except (OSError, ValueError) as exc:
            raise DatasetError(
                f"cannot decode image ({exc})",
                where=str(path),
                hint="run `boxtune data validate` on the dataset",
            ) from exc
        size = (self.image_size, self.image_size)
        # np.array (not asarray): a writable copy that torch can wrap without warnings.
        array = np.array(image.resize(size, Image.BILINEAR) if image.size != size else image)
        self._cache.put(index, array)
        return array

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, dict]:
        # A plain index (a caller's own sampler) gets fresh randomness; the loader's sampler
        # passes a seed so that runs repeat exactly.
        index, sample_seed = key if isinstance(key, tuple) else (key, None)
        record = self.records[index]
        image = self.base_image(index)
        boxes, labels = self._targets[index]
        if self.augment is not None:
            rng = np.random.default_rng(sample_seed)
            image, boxes, labels = augment_sample(image, boxes, labels, self.augment, rng)
        # numpy copies on one thread; torch ops here would contend with the training threads.
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        target = {
            "boxes": torch.from_numpy(np.ascontiguousarray(boxes, np.float32)).reshape(-1, 4),
            "labels": torch.from_numpy(np.ascontiguousarray(labels, np.int64)),
            "image_id": record.id,
            "orig_size": (record.height, record.width),
        }
        return tensor, target


class SeededSampler(Sampler):
    """Yields ``(index, sample_seed)``; epoch ``e`` uses ``default_rng([seed, e])``."""

    def __init__(self, length: int, *, shuffle: bool, seed: int):
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        order = rng.permutation(self.length) if self.shuffle else np.arange(self.length)
        seeds = rng.integers(0, 2**31 - 1, size=self.length)
        for position, index in enumerate(order):
            yield int(index), int(seeds[position])


def collate_detection(batch: list[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, list[dict]]:
    images = torch.from_numpy(np.stack([item[0].numpy() for item in batch]))
    return images, [item[1] for item in batch]


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
) -> DataLoader:
    """A DataLoader of ``(uint8 [B, 3, S, S], targets)`` with boxes in S x S pixels.

    Pass ``augment=None`` (or ``AugmentConfig.off()``) for validation. ``cache_bytes=0``
    turns the decoded-image cache off. With workers, they persist across epochs to keep
    their caches.
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
    torch_dataset = DetectionTorchDataset(ds, label_map, image_size, augment, cache_bytes)
    sampler = SeededSampler(len(torch_dataset), shuffle=shuffle, seed=seed)
    workers = max(0, min(num_workers, os.cpu_count() or 1))
    return DataLoader(
        torch_dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate_detection,
        num_workers=workers,
        drop_last=drop_last,
        persistent_workers=workers > 0,
    )
