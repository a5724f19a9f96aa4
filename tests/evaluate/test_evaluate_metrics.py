"""evaluate_detections against hand-computed cases, an independent AP and pycocotools."""

from __future__ import annotations

import contextlib
import io
import json
import time

import numpy as np
import pytest
from evaluate_fixtures import dets, make_dataset, random_case, reference_ap

from boxtune.detections import Detections
from boxtune.errors import DatasetError, ModelError
from boxtune.evaluate import evaluate_detections
from boxtune.labels import LabelMap

CATS = {1: "cat", 2: "dog"}
A = (10.0, 10.0, 60.0, 50.0)
B = (100.0, 40.0, 180.0, 150.0)
C = (20.0, 90.0, 70.0, 140.0)


def strict_json(result) -> dict:
    data = result.to_json()
    json.dumps(data, allow_nan=False)  # raises on NaN/inf
    return data


def test_perfect_predictions_score_one():
    ds = make_dataset({1: [(A, 1), (B, 2)], 2: [(C, 1)], 3: []}, CATS)
    preds = {1: dets([(A, 0, 0.9), (B, 1, 0.8)]), 2: dets([(C, 0, 0.7)])}
    result = evaluate_detections(ds, preds, ds.label_map)
    for key in ("map", "map50", "map75", "ar100"):
        assert result.summary[key] == pytest.approx(1.0)
    assert [c.ap for c in result.per_class] == [pytest.approx(1.0)] * 2
    t = result.at_threshold
    assert (t["true_positives"], t["false_positives"], t["misses"]) == (3, 0, 0)
    assert t["precision"] == t["recall"] == t["f1"] == 1.0
    assert result.confusion_matrix["matrix"].tolist() == [[2, 0, 0], [0, 1, 0], [0, 0, 0]]
    strict_json(result)


def test_no_predictions_score_zero_and_stay_valid_json():
    ds = make_dataset({1: [(A, 1), (B, 2)], 2: []}, CATS)
    for preds in ({}, {1: Detections.empty(), 2: Detections.empty()}):
        result = evaluate_detections(ds, preds, ds.label_map)
        assert result.map == 0.0 and result.map50 == 0.0
        assert result.at_threshold["recall"] == 0.0
        assert result.at_threshold["precision"] is None  # nothing detected: undefined, not NaN
        assert result.confusion_matrix["matrix"].tolist() == [[0, 0, 1], [0, 0, 1], [0, 0, 0]]
        data = strict_json(result)
        assert data["counts"] == {
            "images": 2,
            "images_without_boxes": 1,
            "ground_truth": 2,
            "detections": 0,
            "detections_above_threshold": 0,
            "highest_score": None,
        }
        assert data["warnings"] == ["the model returned no detection on any image"]


def test_warns_when_nothing_passes_the_score_threshold():
    ds = make_dataset({1: [(A, 1)]}, CATS)
    result = evaluate_detections(ds, {1: dets([(A, 0, 0.04)])}, ds.label_map)
    assert result.map50 == pytest.approx(1.0)  # mAP uses every score
    assert result.at_threshold["true_positives"] == 0
    (warning,) = strict_json(result)["warnings"]
    assert "no detection scores at least 0.5" in warning and "0.040" in warning


def test_half_right_one_correct_one_wrong_class():
    # Two cats; one found as cat, the other called a dog. Cat AP50: recall reaches 0.5 with
    # precision 1 -> 51 of the 101 recall points (0.00..0.50) -> 51/101. Dog has no ground
    # truth, so its AP is undefined and mAP is the cat's AP.
    ds = make_dataset({1: [(A, 1)], 2: [(B, 1)]}, CATS)
    preds = {1: dets([(A, 0, 0.9)]), 2: dets([(B, 1, 0.8)])}
    result = evaluate_detections(ds, preds, ds.label_map)
    assert result.per_class[0].ap50 == pytest.approx(51 / 101)
    assert result.per_class[1].ap50 is None and result.per_class[1].ap is None
    assert result.map50 == pytest.approx(51 / 101)
    assert result.confusion_matrix["matrix"].tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 0]]
    cat, dog = result.per_class
    assert (cat.true_positives, cat.misses, cat.precision, cat.recall) == (1, 1, 1.0, 0.5)
    assert (dog.false_positives, dog.precision, dog.recall) == (1, 0.0, None)
    assert [c["name"] for c in result.pr_curves] == ["cat"]  # dog: no curve without truth
    strict_json(result)


def test_interpolated_precision_by_hand():
    # Three cats; detections by score: hit, false, hit. Recall 1/3, 1/3, 2/3; precision
    # 1, 1/2, 2/3 -> interpolated 1, 2/3, 2/3. Recall points 0.00..0.33 -> 1 (34 points),
    # 0.34..0.66 -> 2/3 (33 points), above -> 0. AP50 = (34 + 33 * 2/3) / 101 = 56/101.
    ds = make_dataset({1: [(A, 1), (B, 1), (C, 1)]}, CATS)
    far = (150.0, 5.0, 190.0, 30.0)
    preds = {1: dets([(A, 0, 0.9), (far, 0, 0.8), (B, 0, 0.7)])}
    result = evaluate_detections(ds, preds, ds.label_map, score_threshold=0.75)
    assert result.per_class[0].ap50 == pytest.approx(56 / 101)
    curve = result.pr_curves[0]
    assert curve["precision"][0] == 1.0 and curve["precision"][50] == pytest.approx(2 / 3)
    assert curve["precision"][80] == 0.0 and curve["max_recall"] == pytest.approx(2 / 3)
    # At threshold 0.75 only the first two count: 1 TP, 1 FP, 2 misses.
    t = result.at_threshold
    assert (t["true_positives"], t["false_positives"], t["misses"]) == (1, 1, 2)
    # Score distribution uses every detection: two hits (0.9, 0.7), one false (0.8).
    dist = result.score_distribution
    assert sum(dist["true_positives"]) == 2 and sum(dist["false_positives"]) == 1
    assert dist["false_positives"][16] == 1  # bin [0.80, 0.85)


def test_localization_quality_separates_map50_from_map75():
    # A taller box over A with IoU 0.62: a hit at IoU thresholds .50, .55, .60, a miss above.
    loose = (10.0, 10.0, 60.0, 10.0 + 40.0 / 0.62)
    ds = make_dataset({1: [(A, 1)], 2: [(B, 1)]}, CATS)
    preds = {1: dets([(loose, 0, 0.9)]), 2: dets([(B, 0, 0.95)])}
    result = evaluate_detections(ds, preds, ds.label_map)
    assert result.map50 == pytest.approx(1.0)
    # At .75 the exact box (higher score) gives recall 0.5 at precision 1: 51/101.
    assert result.map75 == pytest.approx(51 / 101)
    assert result.map == pytest.approx((3 * 1.0 + 7 * 51 / 101) / 10)


def test_negatives_and_absent_classes():
    cats = {1: "cat", 2: "dog", 3: "bird"}
    ds = make_dataset({1: [(A, 1)], 2: [], 3: []}, cats)
    preds = {1: dets([(A, 0, 0.9)]), 2: dets([(C, 1, 0.95)]), 3: dets([(B, 2, 0.3)])}
    result = evaluate_detections(ds, preds, ds.label_map)
    assert result.map == pytest.approx(1.0)  # COCO ignores classes without ground truth
    assert [c.ap for c in result.per_class][1:] == [None, None]
    matrix = result.confusion_matrix["matrix"].tolist()
    assert matrix[3] == [0, 1, 0, 0]  # the dog on a negative image is a false detection
    data = strict_json(result)
    assert data["per_class"][2]["f1"] is None


def test_dataset_without_any_boxes_gives_nulls_not_nan():
    ds = make_dataset({1: [], 2: []}, CATS)
    result = evaluate_detections(ds, {1: dets([(A, 0, 0.9)])}, ds.label_map)
    data = strict_json(result)
    assert all(v is None for v in data["summary"].values())
    assert data["at_threshold"]["recall"] is None and data["at_threshold"]["precision"] == 0.0


def test_categories_matched_by_name_when_ids_differ():
    ds = make_dataset({1: [(A, 7)], 2: [(B, 9)]}, {7: "cat", 9: "dog"})
    model_labels = LabelMap((1, 2, 3), ("cat", "dog", "person"))
    preds = {1: dets([(A, 0, 0.9)]), 2: dets([(B, 1, 0.9)])}
    result = evaluate_detections(ds, preds, model_labels)
    assert result.map == pytest.approx(1.0)
    assert [c.category_id for c in result.per_class] == [1, 2, 3]


def test_unknown_ground_truth_category_is_a_clear_error():
    ds = make_dataset({1: [(A, 7)]}, {7: "zebra"})
    with pytest.raises(DatasetError, match=r"7 \('zebra'\).*model classes: 1='cat'"):
        evaluate_detections(ds, {}, LabelMap((1, 2), ("cat", "dog")))


def test_bad_predictions_are_rejected():
    ds = make_dataset({1: [(A, 1)]}, CATS)
    with pytest.raises(ModelError, match="class index 5"):
        evaluate_detections(ds, {1: dets([(A, 5, 0.9)])}, ds.label_map)
    with pytest.raises(ModelError, match="class index -1"):
        evaluate_detections(ds, {1: dets([(A, 0, 0.9), (B, -1, 0.8)])}, ds.label_map)
    with pytest.raises(ModelError, match="NaN"):
        evaluate_detections(ds, {1: dets([((0.0, 0.0, float("nan"), 5.0), 0, 0.9)])}, ds.label_map)
    with pytest.raises(ModelError, match="not in the dataset"):
        evaluate_detections(ds, {99: dets([(A, 0, 0.9)])}, ds.label_map)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_per_class_ap_matches_independent_implementation(seed):
    ds, preds = random_case(seed)
    result = evaluate_detections(ds, preds, ds.label_map)
    thresholds = np.linspace(0.5, 0.95, 10)
    all_values = []
    for k, metrics in enumerate(result.per_class):
        per_iou = [reference_ap(ds, preds, k, float(t)) for t in thresholds]
        if per_iou[0] is None:
            assert metrics.ap is None
            continue
        assert metrics.ap50 == pytest.approx(per_iou[0], abs=1e-9)
        assert metrics.ap75 == pytest.approx(per_iou[5], abs=1e-9)
        assert metrics.ap == pytest.approx(np.mean(per_iou), abs=1e-9)
        all_values += per_iou
    assert result.map == pytest.approx(np.mean(all_values), abs=1e-9)


@pytest.mark.parametrize("seed", [4, 5])
def test_summary_matches_pycocotools(seed):
    pycocotools = pytest.importorskip("pycocotools.cocoeval")
    from pycocotools.coco import COCO

    ds, preds = random_case(seed, images=20)
    result = evaluate_detections(ds, preds, ds.label_map)
    # Built here, independently of boxtune's conversion: corners -> [x, y, w, h].
    gt = {
        "images": [{"id": r.id, "width": r.width, "height": r.height} for r in ds.images],
        "annotations": [
            {
                "id": n + 1,
                "image_id": a.image_id,
                "category_id": a.category_id,
                "bbox": [a.bbox[0], a.bbox[1], a.bbox[2] - a.bbox[0], a.bbox[3] - a.bbox[1]],
                "area": (a.bbox[2] - a.bbox[0]) * (a.bbox[3] - a.bbox[1]),
                "iscrowd": 0,
            }
            for n, a in enumerate(ds.annotations)
        ],
        "categories": [{"id": c, "name": n} for c, n in ds.categories.items()],
    }
    ids = ds.label_map.category_ids
    res = [
        {
            "image_id": i,
            "category_id": ids[c],
            "score": float(s),
            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
        }
        for i, d in preds.items()
        for b, c, s in zip(d.boxes, d.classes, d.scores, strict=True)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        evaluator = pycocotools.COCOeval(coco_gt, coco_gt.loadRes(res), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    keys = [
        "map",
        "map50",
        "map75",
        "map_small",
        "map_medium",
        "map_large",
        "ar1",
        "ar10",
        "ar100",
        "ar_small",
        "ar_medium",
        "ar_large",
    ]
    for key, expected in zip(keys, evaluator.stats, strict=True):
        got = result.summary[key]
        assert (got is None) == (expected < 0), key
        if got is not None:
            # Detections go through float32 (Detections' dtype) here and there alike.
            assert got == pytest.approx(expected, abs=1e-6), key


def _large_case(images=200, per_image=100, classes=5):
    rng = np.random.default_rng(7)
    boxes_by_image, preds = {}, {}
    cats = {k + 1: f"c{k}" for k in range(classes)}
    for image_id in range(1, images + 1):
        n = int(rng.integers(0, 8))
        xy = rng.uniform(0, 500, (n, 2))
        gt = np.concatenate([xy, xy + rng.uniform(8, 150, (n, 2))], 1)
        labels = rng.integers(0, classes, n)
        boxes_by_image[image_id] = [(tuple(b), int(c) + 1) for b, c in zip(gt, labels, strict=True)]
        m = per_image - n
        rxy = rng.uniform(0, 500, (m, 2))
        boxes = np.concatenate(
            [
                gt + rng.normal(0, 4, gt.shape),
                np.concatenate([rxy, rxy + rng.uniform(8, 150, (m, 2))], 1),
            ]
        )
        preds[image_id] = Detections(
            boxes.astype(np.float32),
            np.concatenate([labels, rng.integers(0, classes, m)]),
            np.concatenate([rng.uniform(0.4, 1, n), rng.uniform(0, 0.6, m)]).astype(np.float32),
        ).sorted()
    return make_dataset(boxes_by_image, cats, size=(640, 640)), preds


def test_fast_and_quiet_for_per_epoch_validation(capfd):
    ds, preds = _large_case()
    evaluate_detections(ds, preds, ds.label_map)  # first call imports the library
    # This thread's CPU time: not wall time (another process on the same cores) and not the
    # process's (thread pools and servers that earlier tests in this process left running;
    # a CI run counted 2.45 s of those). The evaluation itself runs on the calling thread.
    started = time.thread_time()
    result = evaluate_detections(ds, preds, ds.label_map)
    elapsed = time.thread_time() - started
    assert result.counts["detections"] == 200 * 100
    assert elapsed < 1.0, f"200 images x 100 detections took {elapsed:.2f} s of CPU"
    out, err = capfd.readouterr()
    assert out == "" and err == ""
