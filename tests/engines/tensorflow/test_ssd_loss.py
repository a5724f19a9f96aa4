"""The SSD loss against a plain-numpy loop re-implementation of the TF OD API's rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from boxtune.engines.tensorflow.ssd_loss import (  # noqa: E402
    SSDLossConfig,
    assign_targets,
    hard_example_mask,
    match_anchors,
    ssd_losses,
)

NUM_CLASSES = 3  # foreground; logits have NUM_CLASSES + 1 columns
MAX_BOXES = 4
SCALES = (10.0, 10.0, 5.0, 5.0)
DEFAULT_CONFIG = SSDLossConfig()


def _anchors() -> np.ndarray:
    """30 anchors: a 3 x 5 grid of centres, two square sizes each."""
    rows = []
    for cy in (1 / 6, 3 / 6, 5 / 6):
        for cx in (0.1, 0.3, 0.5, 0.7, 0.9):
            for size in (0.2, 0.4):
                rows.append([cy - size / 2, cx - size / 2, cy + size / 2, cx + size / 2])
    return np.array(rows, np.float32)


ANCHORS = _anchors()


# --- the numpy reference: loops, float64 ---------------------------------------------------


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ih = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    iw = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = ih * iw
    if inter == 0.0:
        return 0.0
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _np_match(boxes, valid, threshold=0.5) -> np.ndarray:
    num_anchors = len(ANCHORS)
    iou = np.array([[_iou(g, a) for a in ANCHORS] for g in boxes], np.float64)
    matches = np.full(num_anchors, -1)
    for j in range(num_anchors):
        best, best_i = -1.0, -1
        for i in range(len(boxes)):
            if valid[i] and iou[i, j] > best:
                best, best_i = iou[i, j], i
        if best >= threshold:
            matches[j] = best_i
    claimed: set[int] = set()
    for i in range(len(boxes)):  # ascending: the lower gt index keeps a shared best anchor
        if not valid[i]:
            continue
        j = int(np.argmax(iou[i]))
        if j not in claimed:
            matches[j] = i
            claimed.add(j)
    return matches


def _np_encode(box, anchor) -> np.ndarray:
    eps = 1e-8
    ha, wa = anchor[2] - anchor[0] + eps, anchor[3] - anchor[1] + eps
    h, w = box[2] - box[0] + eps, box[3] - box[1] + eps
    yca, xca = (anchor[0] + anchor[2]) / 2, (anchor[1] + anchor[3]) / 2
    yc, xc = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return np.array(
        [
            (yc - yca) / ha * SCALES[0],
            (xc - xca) / wa * SCALES[1],
            math.log(h / ha) * SCALES[2],
            math.log(w / wa) * SCALES[3],
        ]
    )


def _np_targets(boxes, classes, valid):
    matches = _np_match(boxes, valid)
    cls = np.zeros((len(ANCHORS), NUM_CLASSES + 1))
    reg = np.zeros((len(ANCHORS), 4))
    for j, m in enumerate(matches):
        if m < 0:
            cls[j, 0] = 1.0
        else:
            cls[j, classes[m] + 1] = 1.0
            reg[j] = _np_encode(boxes[m].astype(np.float64), ANCHORS[j].astype(np.float64))
    return matches, cls, reg


def _np_mine(cls_losses, positive, num_hard=3000, per_positive=3.0, min_negatives=3):
    order = sorted(range(len(cls_losses)), key=lambda j: -cls_losses[j])[:num_hard]
    max_negatives = max(min_negatives, int(per_positive * sum(positive[j] for j in order)))
    kept, negatives = set(), 0
    for j in order:
        if positive[j]:
            kept.add(j)
        elif negatives < max_negatives:
            kept.add(j)
            negatives += 1
    return kept


def _huber(x: float) -> float:
    return 0.5 * x * x if abs(x) <= 1.0 else abs(x) - 0.5


def _bce(label: float, logit: float) -> float:
    return max(logit, 0.0) - logit * label + math.log1p(math.exp(-abs(logit)))


def _np_losses(codes, logits, boxes, classes, valid, num_hard=3000):
    total_loc = total_cls = 0.0
    total_positives = 0
    mined_per_image = []
    for b in range(len(codes)):
        matches, cls_t, reg_t = _np_targets(boxes[b], classes[b], valid[b])
        positive = matches >= 0
        loc = [sum(_huber(codes[b, j, k] - reg_t[j, k]) for k in range(4)) for j in range(30)]
        cls = [sum(_bce(cls_t[j, k], logits[b, j, k]) for k in range(4)) for j in range(30)]
        kept = _np_mine(cls, positive, num_hard=num_hard)
        mined_per_image.append(kept)
        total_loc += sum(loc[j] for j in kept if positive[j])
        total_cls += sum(cls[j] for j in kept)
        total_positives += int(positive.sum())
    normalizer = max(total_positives, 1)
    return {
        "localization": total_loc / normalizer,
        "classification": total_cls / normalizer,
        "loss": (total_loc + total_cls) / normalizer,
        "num_positives": float(total_positives),
        "mined": mined_per_image,
    }


# --- data -----------------------------------------------------------------------------------


def _hand_image():
    """Boxes built for the matcher's corner cases (asserted in the tests)."""
    boxes = np.array(
        [
            [0.46, 0.46, 0.54, 0.54],  # tiny: best IoU < 0.5, forced onto its best anchor
            [0.05, 0.0, 0.28, 0.2],  # shares its best anchor with the next box ...
            [0.07, 0.0, 0.27, 0.2],  # ... which overlaps that anchor more, yet loses it
            list(ANCHORS[20]),  # a perfect overlap, but a padded row
        ],
        np.float32,
    )
    return boxes, np.array([0, 1, 2, 1], np.int32), np.array([True, True, True, False])


def _random_batch(seed: int, batch: int = 3, empty_images: tuple[int, ...] = ()):
    rng = np.random.default_rng(seed)
    boxes = np.zeros((batch, MAX_BOXES, 4), np.float32)
    classes = np.zeros((batch, MAX_BOXES), np.int32)
    valid = np.zeros((batch, MAX_BOXES), bool)
    for b in range(batch):
        count = 0 if b in empty_images else int(rng.integers(1, MAX_BOXES + 1))
        for i in range(count):
            h, w = rng.uniform(0.1, 0.5, size=2)
            y, x = rng.uniform(0, 1 - h), rng.uniform(0, 1 - w)
            boxes[b, i] = [y, x, y + h, x + w]
            classes[b, i] = rng.integers(0, NUM_CLASSES)
            valid[b, i] = True
    codes = rng.normal(size=(batch, len(ANCHORS), 4)).astype(np.float32)
    logits = rng.normal(size=(batch, len(ANCHORS), NUM_CLASSES + 1)).astype(np.float32)
    return codes, logits, boxes, classes, valid


def _with_hand_image(seed: int):
    codes, logits, boxes, classes, valid = _random_batch(seed)
    boxes[0], classes[0], valid[0] = _hand_image()
    return codes, logits, boxes, classes, valid


def _tf_losses(codes, logits, boxes, classes, valid, config=DEFAULT_CONFIG):
    return {
        k: float(v)
        for k, v in ssd_losses(
            tf.constant(codes),
            tf.constant(logits),
            tf.constant(ANCHORS),
            tf.constant(boxes),
            tf.constant(classes),
            tf.constant(valid),
            config=config,
        ).items()
    }


# --- matcher and targets --------------------------------------------------------------------


def test_hand_image_corner_cases():
    boxes, _, valid = _hand_image()
    iou = np.array([[_iou(g, a) for a in ANCHORS] for g in boxes])
    matches = match_anchors(
        tf.constant(ANCHORS), tf.constant(boxes[None]), tf.constant(valid[None])
    )
    matches = matches.numpy()[0]
    # Forced match below 0.5.
    tiny_best = int(np.argmax(iou[0]))
    assert iou[0, tiny_best] < 0.5 and matches[tiny_best] == 0
    # Shared best anchor: the lower gt index keeps it although the other overlaps it more.
    shared = int(np.argmax(iou[1]))
    assert shared == int(np.argmax(iou[2])) and iou[2, shared] > iou[1, shared] >= 0.5
    assert matches[shared] == 1
    # The padded row never matches, not even its perfectly overlapping anchor.
    assert iou[3, 20] > 0.999 and 3 not in matches and matches[20] == -1


@pytest.mark.parametrize("seed", range(5))
def test_matches_and_targets_match_numpy(seed):
    _, _, boxes, classes, valid = _with_hand_image(seed)
    matches, cls_t, reg_t = assign_targets(
        tf.constant(ANCHORS),
        tf.constant(boxes),
        tf.constant(classes),
        tf.constant(valid),
        NUM_CLASSES + 1,
    )
    for b in range(len(boxes)):
        want_matches, want_cls, want_reg = _np_targets(boxes[b], classes[b], valid[b])
        np.testing.assert_array_equal(matches.numpy()[b], want_matches)
        np.testing.assert_array_equal(cls_t.numpy()[b], want_cls)
        np.testing.assert_allclose(reg_t.numpy()[b], want_reg, rtol=1e-5, atol=1e-5)


# --- mining and the loss --------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_losses_match_numpy(seed):
    codes, logits, boxes, classes, valid = _with_hand_image(seed)
    got = _tf_losses(codes, logits, boxes, classes, valid)
    want = _np_losses(codes, logits, boxes, classes, valid)
    for key in ("loss", "localization", "classification", "num_positives"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)
    assert got["loss"] == pytest.approx(got["localization"] + got["classification"])


@pytest.mark.parametrize("seed", range(3))
def test_mined_set_matches_numpy(seed):
    codes, logits, boxes, classes, valid = _with_hand_image(seed)
    matches, cls_t, _ = assign_targets(
        tf.constant(ANCHORS),
        tf.constant(boxes),
        tf.constant(classes),
        tf.constant(valid),
        NUM_CLASSES + 1,
    )
    cls_losses = tf.reduce_sum(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=cls_t, logits=tf.constant(logits)), -1
    )
    mask = hard_example_mask(cls_losses, matches >= 0).numpy()
    want = _np_losses(codes, logits, boxes, classes, valid)["mined"]
    for b in range(len(boxes)):
        assert set(np.flatnonzero(mask[b])) == want[b]
        positives = int((matches.numpy()[b] >= 0).sum())
        negatives = int(mask[b].sum()) - positives
        assert negatives == min(max(3 * positives, 3), len(ANCHORS) - positives)


def test_num_hard_examples_caps_the_selection():
    """With fewer hard examples than anchors, low-loss positives drop out (as in the API)."""
    config = SSDLossConfig(num_hard_examples=10)
    for seed in range(3):
        codes, logits, boxes, classes, valid = _with_hand_image(seed)
        got = _tf_losses(codes, logits, boxes, classes, valid, config)
        want = _np_losses(codes, logits, boxes, classes, valid, num_hard=10)
        for key in ("loss", "localization", "classification"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)


def test_gradients_are_finite_and_zero_off_the_mined_set():
    codes, logits, boxes, classes, valid = _with_hand_image(7)
    codes_v, logits_v = tf.Variable(codes), tf.Variable(logits)
    with tf.GradientTape() as tape:
        out = ssd_losses(
            codes_v,
            logits_v,
            tf.constant(ANCHORS),
            tf.constant(boxes),
            tf.constant(classes),
            tf.constant(valid),
        )
    d_codes, d_logits = (g.numpy() for g in tape.gradient(out["loss"], [codes_v, logits_v]))
    assert np.isfinite(d_codes).all() and np.isfinite(d_logits).all()
    mined = _np_losses(codes, logits, boxes, classes, valid)["mined"]
    for b in range(len(boxes)):
        positive = _np_match(boxes[b], valid[b]) >= 0
        for j in range(len(ANCHORS)):
            if not positive[j]:
                assert not d_codes[b, j].any()
            if j in mined[b]:
                assert np.abs(d_logits[b, j]).sum() > 0
            else:
                assert not d_logits[b, j].any()


def test_an_empty_image_mines_three_negatives():
    codes, logits, boxes, classes, valid = _random_batch(3, empty_images=(1,))
    got = _tf_losses(codes, logits, boxes, classes, valid)
    want = _np_losses(codes, logits, boxes, classes, valid)
    assert len(want["mined"][1]) == 3
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)


def test_an_all_empty_batch():
    codes, logits, boxes, classes, valid = _random_batch(4, empty_images=(0, 1, 2))
    got = _tf_losses(codes, logits, boxes, classes, valid)
    assert got["localization"] == 0.0 and got["num_positives"] == 0.0
    assert math.isfinite(got["loss"]) and got["loss"] > 0
    top3 = 0.0
    for b in range(len(codes)):
        per_anchor = [
            sum(_bce(float(k == 0), logits[b, j, k]) for k in range(4)) for j in range(30)
        ]
        top3 += sum(sorted(per_anchor)[-3:])
    np.testing.assert_allclose(got["classification"], top3, rtol=1e-5)


def test_a_fixed_signature_function_traces_once():
    batch, num_anchors = 3, len(ANCHORS)
    traces = []
    signature = [
        tf.TensorSpec([batch, num_anchors, 4], tf.float32),
        tf.TensorSpec([batch, num_anchors, NUM_CLASSES + 1], tf.float32),
        tf.TensorSpec([batch, MAX_BOXES, 4], tf.float32),
        tf.TensorSpec([batch, MAX_BOXES], tf.int32),
        tf.TensorSpec([batch, MAX_BOXES], tf.bool),
    ]
    anchors = tf.constant(ANCHORS)

    @tf.function(input_signature=signature)
    def step(codes, logits, boxes, classes, valid):
        traces.append(1)  # Python side: runs once per trace
        return ssd_losses(codes, logits, anchors, boxes, classes, valid)

    for seed, empty in enumerate([(), (0,), (0, 1, 2), (2,), ()]):
        data = _random_batch(seed, empty_images=empty)
        got = {k: float(v) for k, v in step(*(tf.constant(x) for x in data)).items()}
        want = _np_losses(*data)
        np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
    assert len(traces) == 1


# --- the TF2 zoo configs: focal loss, with and without a background column -----------------


def _np_focal_losses(codes, logits, boxes, classes, valid, *, background, gamma, alpha=0.25):
    """``weighted_sigmoid_focal`` over every anchor and column, no mining, the localization
    sum divided by the code size, ``encode_background_as_zeros``: an unmatched anchor's target
    is all zeros; without a background column class k is column k."""
    total_loc = total_cls = 0.0
    total_positives = 0
    for b in range(len(codes)):
        matches, cls_t, reg_t = _np_targets(boxes[b], classes[b], valid[b])
        cls_t = (
            cls_t[:, 1:]
            if not background
            else np.concatenate([np.zeros_like(cls_t[:, :1]), cls_t[:, 1:]], axis=1)
        )
        positive = matches >= 0
        for j in range(len(ANCHORS)):
            if positive[j]:
                total_loc += sum(_huber(codes[b, j, k] - reg_t[j, k]) for k in range(4)) / 4
            for k in range(cls_t.shape[1]):
                label, logit = cls_t[j, k], logits[b, j, k]
                p = 1 / (1 + math.exp(-logit))
                p_t = p if label else 1 - p
                alpha_t = alpha if label else 1 - alpha
                total_cls += alpha_t * (1 - p_t) ** gamma * _bce(label, logit)
        total_positives += int(positive.sum())
    normalizer = max(total_positives, 1)
    return {"localization": total_loc / normalizer, "classification": total_cls / normalizer}


@pytest.mark.parametrize("background", [True, False], ids=["fpn", "efficientdet"])
def test_the_focal_loss_matches_numpy(background):
    codes, logits, boxes, classes, valid = _with_hand_image(7)
    if not background:
        logits = logits[:, :, 1:]  # one column per class
    gamma = 2.0 if background else 1.5
    config = SSDLossConfig(
        focal_gamma=gamma,
        normalize_loc_loss_by_codesize=True,
        background_column=background,
        encode_background_as_zeros=True,
    )
    got = _tf_losses(codes, logits, boxes, classes, valid, config=config)
    want = _np_focal_losses(
        codes, logits, boxes, classes, valid, background=background, gamma=gamma
    )
    for key in ("localization", "classification"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)


def test_without_a_background_column_unmatched_anchors_have_no_class_target():
    _, _, boxes, classes, valid = _with_hand_image(0)
    config = SSDLossConfig(background_column=False)
    matches, cls_t, _ = assign_targets(
        tf.constant(ANCHORS),
        tf.constant(boxes),
        tf.constant(classes),
        tf.constant(valid),
        NUM_CLASSES,
        config=config,
    )
    matches, cls_t = matches.numpy(), cls_t.numpy()
    assert cls_t.shape == (len(boxes), len(ANCHORS), NUM_CLASSES)
    np.testing.assert_array_equal(cls_t.sum(axis=-1), (matches >= 0).astype(np.float32))
    for b, j in zip(*np.nonzero(matches >= 0), strict=True):
        assert cls_t[b, j, classes[b, matches[b, j]]] == 1.0
