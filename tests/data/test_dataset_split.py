from __future__ import annotations

from pathlib import Path

import pytest

from boxtune.data import read_dataset, split_dataset
from boxtune.data.records import BoxAnnotation, DetectionDataset, ImageRecord
from boxtune.errors import DatasetError


def _dataset(boxes_per_image: list[list[int]]) -> DetectionDataset:
    images = [ImageRecord(i + 1, f"{i}.png", 10, 10) for i in range(len(boxes_per_image))]
    anns = [
        BoxAnnotation(i + 1, (0, 0, 5, 5), c)
        for i, cats in enumerate(boxes_per_image)
        for c in cats
    ]
    cats = sorted({c for cs in boxes_per_image for c in cs})
    return DetectionDataset(Path("."), images, anns, {c: str(c) for c in cats})


def test_split_is_deterministic_disjoint_and_complete(sample_dir: Path) -> None:
    ds = read_dataset(sample_dir)
    train, val = split_dataset(ds, 0.2, seed=5)
    again_train, again_val = split_dataset(ds, 0.2, seed=5)
    assert [r.id for r in val.images] == [r.id for r in again_val.images]
    assert [r.id for r in train.images] == [r.id for r in again_train.images]
    train_ids, val_ids = {r.id for r in train.images}, {r.id for r in val.images}
    assert not train_ids & val_ids
    assert train_ids | val_ids == {r.id for r in ds.images}
    assert len(val_ids) == 8
    assert all(n > 0 for n in val.class_counts().values())
    assert train.label_map == val.label_map == ds.label_map
    other = {r.id for r in split_dataset(ds, 0.2, seed=6)[1].images}
    assert other != val_ids


def test_every_class_reaches_validation_when_possible() -> None:
    # Class 9 is in 2 of 30 images; a random 20% split would often miss it.
    per_image = [[1]] * 26 + [[9], [1, 9], [2], [2]]
    for seed in range(20):
        train, val = split_dataset(_dataset(per_image), 0.2, seed=seed)
        assert val.class_counts()[9] >= 1 and train.class_counts()[9] >= 1
        assert val.class_counts()[2] >= 1 and train.class_counts()[2] >= 1


def test_a_class_with_one_image_stays_in_training() -> None:
    train, val = split_dataset(_dataset([[1], [1], [1], [1], [5]]), 0.4, seed=0)
    assert train.class_counts()[5] == 1
    assert val.class_counts()[5] == 0


def test_bad_ratio_and_tiny_datasets_are_rejected() -> None:
    with pytest.raises(DatasetError, match="ratio"):
        split_dataset(_dataset([[1], [1]]), 1.5)
    with pytest.raises(DatasetError, match="cannot split"):
        split_dataset(_dataset([[1]]), 0.2)
