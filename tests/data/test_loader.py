from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import boxtune.data.loader as loader_module
from boxtune.data import (
    AugmentConfig,
    Batch,
    BatchLoader,
    DatasetWriter,
    DetectionDataset,
    make_loader,
    read_dataset,
)
from boxtune.errors import DatasetError
from boxtune.labels import LabelMap


def _batches(loader) -> list[Batch]:
    return list(loader)


def _worker_threads() -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith(loader_module.WORKER_THREAD_PREFIX) and t.is_alive()
    ]


def _assert_same(first: list[Batch], second: list[Batch]) -> None:
    assert len(first) == len(second)
    for (a, ta), (b, tb) in zip(first, second, strict=True):
        assert np.array_equal(a, b)
        for x, y in zip(ta, tb, strict=True):
            assert x["image_id"] == y["image_id"]
            assert np.array_equal(x["boxes"], y["boxes"])
            assert np.array_equal(x["labels"], y["labels"])


def _ids(batches: list[Batch]) -> list[int]:
    return [t["image_id"] for _, targets in batches for t in targets]


def _wait_gone(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(timeout=10)
    assert not [t for t in threads if t.is_alive()]


@pytest.fixture
def corrupt_dir(tmp_path: Path) -> Path:
    """Six images; ``3.png`` keeps a valid header but is cut short (fails only on decode)."""
    dst = tmp_path / "corrupt"
    with DatasetWriter(dst, categories={1: "thing"}) as writer:
        rng = np.random.default_rng(0)
        for i in range(6):
            array = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
            writer.add_image(f"{i}.png", Image.fromarray(array), boxes=[((5, 5, 40, 30), 1)])
    path = dst / "images" / "3.png"
    path.write_bytes(path.read_bytes()[:200])
    return dst


def test_batches_have_the_documented_shapes_and_scaled_boxes(sample_dir: Path) -> None:
    ds = read_dataset(sample_dir)
    loader = make_loader(ds, ds.label_map, image_size=160, batch_size=4)
    assert isinstance(loader, BatchLoader)
    batch = next(iter(loader))
    assert isinstance(batch, Batch)
    images, targets = batch
    assert isinstance(images, np.ndarray) and images.dtype == np.uint8
    assert images.shape == (4, 160, 160, 3) and images.flags.c_contiguous
    assert len(targets) == 4
    for record, target, image in zip(ds.images[:4], targets, images, strict=True):
        assert target["image_id"] == record.id
        assert target["orig_size"] == (record.height, record.width)
        boxes, cats = ds.box_array(record.id)
        expected = boxes * np.array([160 / record.width, 160 / record.height] * 2, np.float32)
        assert target["boxes"].dtype == np.float32 and target["labels"].dtype == np.int64
        assert target["boxes"].shape == (len(cats), 4)
        assert np.allclose(target["boxes"], expected, atol=1e-4)
        assert target["labels"].tolist() == [ds.label_map.index_of(int(c)) for c in cats]
        # RGB, channels last: the image stretched to S x S by PIL.
        with Image.open(ds.image_path(record)) as source:
            resized = np.asarray(source.convert("RGB").resize((160, 160), Image.BILINEAR))
        assert np.abs(image.astype(int) - resized.astype(int)).max() <= 1
    assert sum(len(t) for _, t in _batches(loader)) == len(ds)


def test_negatives_have_empty_box_arrays(tmp_path: Path) -> None:
    dst = tmp_path / "neg"
    with DatasetWriter(dst, categories={1: "thing"}) as writer:
        writer.add_image("a.png", Image.new("RGB", (50, 40)), boxes=[((1, 2, 30, 20), 1)])
        writer.add_image("b.png", Image.new("RGB", (50, 40)))
    ds = read_dataset(dst)
    for augment in (None, AugmentConfig()):
        _, targets = next(iter(make_loader(ds, ds.label_map, 32, 2, augment=augment)))
        negative = next(t for t in targets if t["image_id"] == ds.images[1].id)
        assert negative["boxes"].shape == (0, 4) and negative["boxes"].dtype == np.float32
        assert negative["labels"].shape == (0,) and negative["labels"].dtype == np.int64


def test_same_seed_same_batches_whatever_the_workers(sample_dir: Path) -> None:
    ds = read_dataset(sample_dir).subset(range(1, 13))
    kwargs = dict(image_size=96, batch_size=4, augment=AugmentConfig(), shuffle=True, seed=7)
    first = _batches(make_loader(ds, ds.label_map, **kwargs))
    again = _batches(make_loader(ds, ds.label_map, **kwargs))
    workers = _batches(make_loader(ds, ds.label_map, num_workers=2, **kwargs))
    _assert_same(first, again)
    _assert_same(first, workers)


def test_epochs_differ_and_validation_loader_is_stable(sample_dir: Path) -> None:
    ds = read_dataset(sample_dir).subset(range(1, 9))
    train = make_loader(ds, ds.label_map, 96, 8, augment=AugmentConfig(), shuffle=True, seed=1)
    assert train.epoch == 0
    e1, e2 = _batches(train)[0], _batches(train)[0]
    assert train.epoch == 2  # each iteration advances to the next epoch
    assert [t["image_id"] for t in e1[1]] != [t["image_id"] for t in e2[1]]
    val = make_loader(ds, ds.label_map, 96, 8)
    v1 = _batches(val)[0]
    # Batches are the caller's: changing them leaves later epochs alone.
    v1_images = v1.images.copy()
    v1.images[:] = 0
    v1.targets[0]["boxes"][:] = -1
    v2 = _batches(val)[0]
    assert np.array_equal(v1_images, v2.images)
    assert (v2.targets[0]["boxes"] >= 0).all()
    assert [t["image_id"] for t in v1[1]] == [r.id for r in ds.images]


@pytest.mark.parametrize("workers", [0, 2])
def test_set_epoch_gives_the_batches_of_an_uninterrupted_run(
    sample_dir: Path, workers: int
) -> None:
    ds = read_dataset(sample_dir).subset(range(1, 11))
    kwargs = dict(augment=AugmentConfig(), shuffle=True, seed=5, num_workers=workers)
    uninterrupted = make_loader(ds, ds.label_map, 64, 4, **kwargs)
    epochs = [_batches(uninterrupted) for _ in range(4)]
    resumed = make_loader(ds, ds.label_map, 64, 4, **kwargs)
    resumed.set_epoch(2)
    assert resumed.epoch == 2
    _assert_same(_batches(resumed), epochs[2])
    _assert_same(_batches(resumed), epochs[3])  # and goes on from there
    resumed.set_epoch(0)
    _assert_same(_batches(resumed), epochs[0])
    with pytest.raises(ValueError):
        resumed.set_epoch(-1)


@pytest.mark.parametrize("workers", [0, 2])
def test_an_abandoned_iteration_does_not_disturb_the_next(sample_dir: Path, workers: int) -> None:
    ds = read_dataset(sample_dir).subset(range(1, 21))
    kwargs = dict(augment=AugmentConfig(), shuffle=True, seed=2, num_workers=workers)
    reference = make_loader(ds, ds.label_map, 64, 2, **kwargs)
    expected = [_batches(reference) for _ in range(2)]
    before = set(_worker_threads())
    loader = make_loader(ds, ds.label_map, 64, 2, **kwargs)
    for step, (images, _) in enumerate(loader):
        assert images.shape[0] == 2
        if step == 1:
            break
    started = set(_worker_threads()) - before
    assert loader.epoch == 1
    _assert_same(_batches(loader), expected[1])
    assert set(_worker_threads()) - before == started  # the same threads serve the new epoch
    assert len(started) <= workers
    # A half-consumed iterator that is still referenced does not disturb a new one either.
    pending = iter(loader)
    next(pending)
    assert len(_batches(loader)) == len(loader)
    del pending


@pytest.mark.parametrize("workers", [0, 2])
def test_a_decode_error_surfaces_as_dataset_error(corrupt_dir: Path, workers: int) -> None:
    ds = read_dataset(corrupt_dir, decode_images=False)
    loader = make_loader(ds, ds.label_map, 32, 2, num_workers=workers)
    for _ in range(2):  # a broken image is not cached: each epoch reports it again
        with pytest.raises(DatasetError, match="cannot decode image") as info:
            _batches(loader)
        assert info.value.where == str(corrupt_dir / "images" / "3.png")
        assert "boxtune data validate" in info.value.hint
    loader.close()


def test_worker_threads_end_with_the_loader(sample_dir: Path) -> None:
    ds = read_dataset(sample_dir).subset(range(1, 21))
    loader = make_loader(ds, ds.label_map, 64, 2, augment=AugmentConfig(), num_workers=2)
    before = set(_worker_threads())
    for step, _ in enumerate(loader):
        if step == 2:
            break
    _batches(loader)
    mine = [t for t in _worker_threads() if t not in before]
    assert 1 <= len(mine) <= 2  # persistent across epochs, at most num_workers
    del loader
    gc.collect()
    _wait_gone(mine)
    # close() (and the context manager) stop them too; a later epoch starts new ones.
    with make_loader(ds, ds.label_map, 64, 2, num_workers=2) as loader:
        _batches(loader)
        mine = [t for t in _worker_threads() if t not in before]
        assert mine
    _wait_gone(mine)
    assert len(_batches(loader)) == len(loader)
    loader.close()


def test_interrupt_while_loading_exits_promptly(sample_dir: Path) -> None:
    """Ctrl-C while the main thread waits for a batch, with another loader's iteration left
    midway: the interpreter exits without hanging."""
    script = textwrap.dedent(
        f"""
        import os, signal, threading, time
        import boxtune.data.loader as loader_module
        from boxtune.data import AugmentConfig, make_loader, read_dataset

        ds = read_dataset({str(sample_dir)!r}, decode_images=False)
        left = make_loader(ds, ds.label_map, 64, 2, num_workers=2)
        left_iter = iter(left)
        next(left_iter)
        real = loader_module.load_rgb

        def slow(path, **kwargs):
            time.sleep(0.1)
            return real(path, **kwargs)

        loader_module.load_rgb = slow
        loader = make_loader(ds, ds.label_map, 64, 2, augment=AugmentConfig(), num_workers=2)
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            for images, targets in loader:
                pass
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "interrupted" in done.stdout


@pytest.mark.parametrize(
    ("count", "batch_size", "drop_last", "expected"),
    [(10, 4, False, 3), (10, 4, True, 2), (8, 4, False, 2), (8, 4, True, 2), (3, 4, True, 0)],
)
def test_len_counts_batches(
    sample_dir: Path, count: int, batch_size: int, drop_last: bool, expected: int
) -> None:
    ds = read_dataset(sample_dir).subset(range(1, count + 1))
    loader = make_loader(ds, ds.label_map, 32, batch_size, drop_last=drop_last, shuffle=True)
    assert len(loader) == expected
    batches = _batches(loader)
    assert len(batches) == expected
    assert all(len(t) == batch_size for _, t in batches[: count // batch_size])


@pytest.mark.parametrize("workers", [0, 2])
def test_drop_last_and_decode_once(
    sample_dir: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    ds = read_dataset(sample_dir).subset(range(1, 11))
    calls: list[Path] = []
    real = loader_module.load_rgb

    def counting(path, **kwargs):
        calls.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(loader_module, "load_rgb", counting)
    loader = make_loader(
        ds, ds.label_map, 64, 4, drop_last=True, augment=AugmentConfig(), num_workers=workers
    )
    assert [len(t) for _, t in _batches(loader)] == [4, 4]
    _batches(loader)
    assert len(calls) == 8  # the cache serves the second epoch
    uncached = make_loader(ds, ds.label_map, 64, 5, cache_bytes=0, num_workers=workers)
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
            mask = image.astype(np.float32).mean(-1) > 127  # channels last
            ys, xs = np.nonzero(mask)
            extent = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert np.allclose(extent, target["boxes"][0], atol=3.5), (extent, target)


def test_classes_outside_the_label_map_are_rejected(sample_dir: Path) -> None:
    ds = read_dataset(sample_dir)
    with pytest.raises(DatasetError, match="not in the label map"):
        make_loader(ds, LabelMap((1, 2), ("circle", "triangle")), 64, 2)
    with pytest.raises(DatasetError, match="batch_size"):
        make_loader(ds, ds.label_map, 64, 0)
    empty = DetectionDataset(root=sample_dir, images=[], annotations=[], categories={1: "a"})
    with pytest.raises(DatasetError, match="no images"):
        make_loader(empty, empty.label_map, 64, 2)


def test_the_data_layer_imports_no_framework() -> None:
    code = (
        "import sys, boxtune.data, boxtune.data.loader; "
        "assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
