"""Small datasets, detections and an independent COCO AP for the evaluation tests."""

from __future__ import annotations

import numpy as np

from boxtune.data.records import BoxAnnotation, DetectionDataset, ImageRecord
from boxtune.detections import Detections


def make_dataset(
    boxes_by_image: dict[int, list[tuple[tuple[float, float, float, float], int]]],
    categories: dict[int, str],
    size: tuple[int, int] = (200, 160),
    root=".",
) -> DetectionDataset:
    """boxes_by_image: image id -> [(corner box, category_id)]; an empty list is a negative."""
    from pathlib import Path

    images = [ImageRecord(i, f"img{i}.png", size[0], size[1]) for i in boxes_by_image]
    annotations = [
        BoxAnnotation(i, tuple(float(v) for v in box), cat)
        for i, items in boxes_by_image.items()
        for box, cat in items
    ]
    return DetectionDataset(Path(root), images, annotations, dict(categories))


def dets(items: list[tuple[tuple[float, float, float, float], int, float]]) -> Detections:
    """[(corner box, class index, score)] -> Detections sorted by score."""
    if not items:
        return Detections.empty()
    boxes = np.array([b for b, _, _ in items], np.float32)
    classes = np.array([c for _, c, _ in items], np.int64)
    scores = np.array([s for _, _, s in items], np.float32)
    return Detections(boxes, classes, scores).sorted()


def random_case(seed: int, images: int = 12, classes: int = 3, size=(320, 240)):
    """A dataset with jittered, missed, confused and spurious detections (and negatives)."""
    rng = np.random.default_rng(seed)
    categories = {10 + 5 * k: f"class{k}" for k in range(classes)}
    cat_ids = sorted(categories)
    boxes_by_image, predictions = {}, {}
    for image_id in range(1, images + 1):
        count = int(rng.integers(0, 5))
        items, det_items = [], []
        for _ in range(count):
            x, y = rng.uniform(0, size[0] - 60), rng.uniform(0, size[1] - 60)
            w, h = rng.uniform(4, 120), rng.uniform(4, 100)
            box = (x, y, min(x + w, size[0]), min(y + h, size[1]))
            k = int(rng.integers(0, classes))
            items.append((box, cat_ids[k]))
            roll = rng.uniform()
            if roll < 0.15:
                continue  # missed
            jitter = rng.normal(0, 0.12 * min(w, h), 4)
            det_box = tuple(np.array(box) + jitter)
            det_class = k if roll < 0.85 else int(rng.integers(0, classes))
            det_items.append((det_box, det_class, float(rng.uniform(0.05, 1.0))))
        for _ in range(int(rng.integers(0, 4))):  # spurious
            x, y = rng.uniform(0, size[0] - 40), rng.uniform(0, size[1] - 40)
            det_items.append(
                (
                    (x, y, x + rng.uniform(5, 40), y + rng.uniform(5, 40)),
                    int(rng.integers(0, classes)),
                    float(rng.uniform(0.0, 0.9)),
                )
            )
        boxes_by_image[image_id] = items
        predictions[image_id] = dets(det_items)
    return make_dataset(boxes_by_image, categories, size=size), predictions


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_ap(dataset, predictions, class_index: int, iou_threshold: float) -> float | None:
    """COCO AP of one class at one IoU, written from the COCO definition without any library.

    Greedy matching per image (score order, best unmatched box with IoU >= t), up to 100
    detections per image and class, 101-point interpolated precision.
    """
    category_id = dataset.label_map.category_ids[class_index]
    records = []  # (score, is_tp) in image order, then score order
    total_gt = 0
    for image in dataset.images:
        gts = [
            np.array(a.bbox)
            for a in dataset.annotations
            if a.image_id == image.id and a.category_id == category_id
        ]
        total_gt += len(gts)
        det = predictions.get(image.id) or Detections.empty()
        mine = [
            (float(s), np.array(b, np.float64))
            for b, c, s in zip(det.boxes, det.classes, det.scores, strict=True)
            if c == class_index
        ]
        mine.sort(key=lambda item: -item[0])
        mine = mine[:100]
        taken = [False] * len(gts)
        for score, box in mine:
            best, best_iou = -1, iou_threshold
            for g, gt in enumerate(gts):
                iou = _iou(box, gt)
                if not taken[g] and iou >= best_iou:
                    best, best_iou = g, iou
            if best >= 0:
                taken[best] = True
            records.append((score, best >= 0))
    if total_gt == 0:
        return None
    order = sorted(range(len(records)), key=lambda i: -records[i][0])
    tp = np.cumsum([records[i][1] for i in order], dtype=np.float64)
    fp = np.cumsum([not records[i][1] for i in order], dtype=np.float64)
    recall = tp / total_gt
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    points = []
    for r in np.linspace(0.0, 1.0, 101):
        hit = np.searchsorted(recall, r, side="left")
        points.append(precision[hit] if hit < len(precision) else 0.0)
    return float(np.mean(points))


class FakeRunner:
    """A Runner that recognises each dataset image by its pixels and answers with its ground
    truth, made imperfect the way real detectors are: jittered boxes, about one box in seven
    missed, one in ten given a wrong class, spurious low-score detections, and duplicates."""

    image_size = 320
    backend = "fake"

    def __init__(self, dataset, seed: int = 0):
        import hashlib

        from boxtune.engines.base import Runner
        from boxtune.evaluate.inference import image_path, read_pixels

        Runner.register(type(self))
        self.label_map = dataset.label_map
        self.calls = 0
        self._seed = seed
        self._truth: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
        index = {c: i for i, c in enumerate(self.label_map.category_ids)}
        for record in dataset.images:
            pixels = read_pixels(image_path(dataset, record))
            boxes, cats = dataset.box_array(record.id)
            classes = np.array([index[int(c)] for c in cats], np.int64)
            key = hashlib.sha1(pixels.tobytes()).hexdigest()
            self._truth[key] = (record.id, boxes.astype(np.float64), classes)
        self._hash = lambda pixels: hashlib.sha1(pixels.tobytes()).hexdigest()

    def predict(self, images):
        self.calls += 1
        return [self._one(pixels) for pixels in images]

    def _one(self, pixels: np.ndarray) -> Detections:
        image_id, boxes, classes = self._truth[self._hash(pixels)]
        rng = np.random.default_rng(self._seed * 100_003 + image_id)
        height, width = pixels.shape[:2]
        num_classes = len(self.label_map)
        out_boxes, out_classes, out_scores = [], [], []
        for box, cls in zip(boxes, classes, strict=True):
            roll = rng.uniform()
            if roll < 0.14:
                continue
            size = np.array([box[2] - box[0], box[3] - box[1]] * 2)
            jittered = box + rng.normal(0, 0.05, 4) * size
            if roll > 0.9 and num_classes > 1:
                cls = (cls + 1 + rng.integers(0, num_classes - 1)) % num_classes
            out_boxes.append(jittered)
            out_classes.append(cls)
            out_scores.append(rng.uniform(0.55, 0.99))
            if rng.uniform() < 0.2:  # a loose duplicate, usually scored lower
                out_boxes.append(jittered + rng.normal(0, 0.15, 4) * size)
                out_classes.append(cls)
                out_scores.append(rng.uniform(0.1, 0.6))
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, width - 40), rng.uniform(0, height - 40)
            w, h = rng.uniform(15, 90), rng.uniform(15, 90)
            out_boxes.append(np.array([x, y, min(x + w, width), min(y + h, height)]))
            out_classes.append(int(rng.integers(0, num_classes)))
            out_scores.append(rng.uniform(0.05, 0.75))
        if not out_boxes:
            return Detections.empty()
        boxes_out = np.clip(np.array(out_boxes), 0, [width, height, width, height])
        return Detections(
            boxes_out.astype(np.float32),
            np.array(out_classes, np.int64),
            np.array(out_scores, np.float32),
        ).sorted()


def training_history(epochs: int = 6) -> list[dict]:
    """A plausible per-epoch history as the trainer records it."""
    return [
        {
            "epoch": e,
            "loss": 1.6 * 0.7**e + 0.2,
            "val_localization": 0.5 * 0.75**e + 0.1,
            "val_classification": 0.9 * 0.72**e + 0.15,
            "val_loss": 1.4 * 0.73**e + 0.25,
            "val_map": 0.6 * (1 - 0.6 ** (e + 1)),
            "val_map50": 0.85 * (1 - 0.55 ** (e + 1)),
        }
        for e in range(epochs)
    ]


SHAPES = {1: "circle", 2: "square", 3: "triangle"}


def write_shapes_dataset(root, images: int = 20, seed: int = 0):
    """Write ``root/images/*.png`` + ``root/annotations.json``: coloured shapes on a textured
    background, 0-4 per image, every fifth image a negative. Returns ``root``."""
    import json
    from pathlib import Path

    from PIL import Image, ImageDraw

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records, annotations = [], []
    for image_id in range(1, images + 1):
        width, height = int(rng.choice([320, 400, 480])), int(rng.choice([240, 300]))
        ramp = np.linspace(0, 1, width)[None, :, None] * rng.uniform(20, 60, 3)
        noise = rng.normal(0, 8, (height, width, 3))
        base = rng.uniform(60, 170, 3)
        pixels = np.clip(base + ramp + noise, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        count = 0 if image_id % 5 == 0 else int(rng.integers(1, 5))
        for _ in range(count):
            w, h = rng.uniform(24, 110, 2)
            x0, y0 = rng.uniform(2, width - w - 2), rng.uniform(2, height - h - 2)
            box = (float(x0), float(y0), float(x0 + w), float(y0 + h))
            category = int(rng.integers(1, 4))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            if category == 1:
                draw.ellipse(box, fill=colour, outline=(0, 0, 0))
            elif category == 2:
                draw.rectangle(box, fill=colour, outline=(0, 0, 0))
            else:
                draw.polygon(
                    [(box[0], box[3]), ((box[0] + box[2]) / 2, box[1]), (box[2], box[3])],
                    fill=colour,
                    outline=(0, 0, 0),
                )
            annotations.append(
                {"image_id": image_id, "bbox": [round(v, 2) for v in box], "category_id": category}
            )
        file_name = f"shapes_{image_id:03d}.png"
        image.save(root / "images" / file_name)
        records.append({"file_name": file_name, "height": height, "width": width, "id": image_id})
    document = {
        "images": records,
        "annotations": annotations,
        "categories": [{"id": c, "name": n} for c, n in SHAPES.items()],
    }
    (root / "annotations.json").write_text(json.dumps(document, indent=1))
    return root


def fake_runner_from_env(backend: str):
    """``--model py:evaluate_fixtures:fake_runner_from_env``: a FakeRunner for the dataset
    named by ``EVALUATE_TEST_DATA`` (so the CLI can be driven without a trained model)."""
    import os

    from boxtune.data import read_dataset

    return FakeRunner(read_dataset(os.environ["EVALUATE_TEST_DATA"]), seed=2)
