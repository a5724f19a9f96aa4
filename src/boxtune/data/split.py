"""Deterministic train/validation split by image, stratified so every class is validated."""

from __future__ import annotations

import numpy as np

from boxtune.data.records import DetectionDataset
from boxtune.errors import DatasetError


def split_dataset(
    dataset: DetectionDataset, ratio: float = 0.2, seed: int = 0
) -> tuple[DetectionDataset, DetectionDataset]:
    """Split ``dataset`` into ``(train, validation)`` with about ``ratio`` of the images held out.

    Each class that appears in at least two images gets at least one validation image, and no
    class loses all its training images. Negatives are split like any other image. The result
    depends only on the image ids, their boxes, ``ratio`` and ``seed``.
    """
    if not 0.0 < ratio < 1.0:
        raise DatasetError(
            f"validation split ratio {ratio} is not in (0, 1)",
            hint="use e.g. 0.2 to hold out 20% of the images",
        )
    ids = sorted(record.id for record in dataset.images)
    if len(ids) < 2:
        raise DatasetError(
            f"cannot split {len(ids)} image(s) into training and validation",
            where=str(dataset.root),
            hint="add images or pass a separate validation dataset",
        )
    rng = np.random.default_rng(seed)
    order = [ids[i] for i in rng.permutation(len(ids))]
    classes_of = {iid: {a.category_id for a in dataset.boxes_for(iid)} for iid in ids}
    images_with: dict[int, int] = {}
    for cats in classes_of.values():
        for cid in cats:
            images_with[cid] = images_with.get(cid, 0) + 1
    target = min(len(ids) - 1, max(1, round(ratio * len(ids))))
    val: list[int] = []
    chosen: set[int] = set()
    left_in_train = dict(images_with)

    def can_take(iid: int) -> bool:
        return all(left_in_train[c] > 1 for c in classes_of[iid])

    def take(iid: int) -> None:
        val.append(iid)
        chosen.add(iid)
        for c in classes_of[iid]:
            left_in_train[c] -= 1

    # Covering every class may hold out a few more images than the ratio asks, never more
    # than half of them. Rarest classes first: an image chosen for a rare class often also
    # covers common ones.
    class_cap = max(target, min(len(images_with), len(ids) // 2))
    for cid in sorted(images_with, key=lambda c: (images_with[c], c)):
        if len(val) >= class_cap or images_with[cid] < 2:
            continue
        if any(cid in classes_of[v] for v in val):
            continue
        for iid in order:
            if iid not in chosen and cid in classes_of[iid] and can_take(iid):
                take(iid)
                break
    for iid in order:
        if len(val) >= target:
            break
        if iid not in chosen and can_take(iid):
            take(iid)
    train_ids = [i for i in ids if i not in chosen]
    return dataset.subset(train_ids), dataset.subset(sorted(val))
