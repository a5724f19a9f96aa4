from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import boxtune.data.loader as loader_module
from boxtune.data import AugmentConfig, DatasetWriter, make_loader, read_dataset
from boxtune.errors import DatasetError
from boxtune.labels import LabelMap


def _batches(loader) -> list[tuple[torch.Tensor, list[dict]]]:
    return list(loader)


def test_batches_have_the_documented_shapes_and_scaled_boxes(sample_dir: Path) -> None:
    ds = read_dataset(sample_dir)
    loader = make_loader(ds, ds.label_map, image_size=160, batch_size=4)
    images, targets = next(iter(loader))
    assert images.shape == (4, 3, 160, 160) and images.dtype == torch.uint8
    assert len(targets) == 4
    for record, target in zip(ds.images[:4], targets, strict=True):
        assert target["image_id"] == record.id
        assert target["orig_size"] == (record.height, record.width)
        boxes, cats = ds.box_array(record.id)
        expected = boxes * np.array([160 / record.width, 160 / record.height] * 2, np.float32)
        assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
        assert np.allclose(target["boxes"].numpy(), expected, atol=1e-4)
        assert target["labels"].tolist() == [ds.label_map.index_of(int(c)) for c in cats]
    assert sum(len(t) for _, t in _batches(loader)) == len(ds)


def test_same_seed_same_batches_whatever_the_workers(sample_dir: Path) -> None:
    ds = read_dataset(sample_dir).subset(range(1, 13))
    kwargs = dict(image_size=96, batch_size=4, augment=AugmentConfig(), shuffle=True, seed=7)
    first = _batches(make_loader(ds, ds.label_map, **kwargs))
    again = _batches(make_loader(ds, ds.label_map, **kwargs))
    workers = _batches(make_loader(ds, ds.label_map, num_workers=2, **kwargs))
    for (a, ta), (b, tb), (c, tc) in zip(first, again, workers, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
        for x, y, z in zip(ta, tb, tc, strict=True):
            assert torch.equal(x["boxes"], y["boxes"]) and torch.equal(x["boxes"], z["boxes"])


def test_epochs_differ_and_validation_loader_is_stable(sample_dir: Path) -> None:
    ds = read_dataset(sample_dir).subset(range(1, 9))
    train = make_loader(ds, ds.label_map, 96, 8, augment=AugmentConfig(), shuffle=True, seed=1)
    e1, e2 = _batches(train)[0], _batches(train)[0]
    assert [t["image_id"] for t in e1[1]] != [t["image_id"] for t in e2[1]]
    val = make_loader(ds, ds.label_map, 96, 8)
    v1, v2 = _batches(val)[0], _batches(val)[0]
    assert torch.equal(v1[0], v2[0])
    assert [t["image_id"] for t in v1[1]] == [r.id for r in ds.images]


def test_drop_last_and_decode_once(sample_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = read_dataset(sample_dir).subset(range(1, 11))
    calls: list[Path] = []
    real = loader_module.load_rgb

    def counting(path, **kwargs):
        calls.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(loader_module, "load_rgb", counting)
    loader = make_loader(ds, ds.label_map, 64, 4, drop_last=True, augment=AugmentConfig())
    assert [len(t) for _, t in _batches(loader)] == [4, 4]
    _batches(loader)
    assert len(calls) == 8  # the cache serves the second epoch
    uncached = make_loader(ds, ds.label_map, 64, 5, cache_bytes=0)
    _batches(uncached)
    _batches(uncached)
    assert len(calls) == 8 + 20


def test_augmented_boxes_stay_on_their_objects(tmp_path: Path) -> None:
    """A white square on black, through the real loader with every augmentation on."""
    dst = tmp_path / "marks"
    with DatasetWriter(dst, categories={5: "mark"}) as writer:
        for i in range(6):
            array = np.zeros((120, 200, 3), np.uint8)
            x1, y1 = 20 + 20 * i, 30 + 5 * i
            array[y1 : y1 + 40, x1 : x1 + 50] = 255
            writer.add_image(
                f"{i}.png", Image.fromarray(array), boxes=[((x1, y1, x1 + 50, y1 + 40), 5)]
            )
    ds = read_dataset(dst)
    config = AugmentConfig(crop_probability=0.7, zoom_out_probability=0.3, zoom_out_fill=(0, 0, 0))
    loader = make_loader(ds, ds.label_map, 128, 6, augment=config, shuffle=True, seed=3)
    for _ in range(3):
        images, targets = next(iter(loader))
        for image, target in zip(images, targets, strict=True):
            if not len(target["boxes"]):
                continue
            assert target["labels"].tolist() == [0]
            mask = image.float().mean(0) > 127
            ys, xs = torch.nonzero(mask, as_tuple=True)
            extent = [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
            assert np.allclose(extent, target["boxes"][0].numpy(), atol=3.5), (extent, target)


def test_classes_outside_the_label_map_are_rejected(sample_dir: Path) -> None:
    ds = read_dataset(sample_dir)
    with pytest.raises(DatasetError, match="not in the label map"):
        make_loader(ds, LabelMap((1, 2), ("circle", "triangle")), 64, 2)
    with pytest.raises(DatasetError, match="batch_size"):
        make_loader(ds, ds.label_map, 64, 0)
