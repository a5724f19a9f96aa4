"""The report's charts as PNG bytes (matplotlib, no pyplot: no global state, no display)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from boxtune.evaluate.metrics import EvaluationResult

# Beyond these, charts stay readable by showing the classes that matter most.
MAX_PR_PANELS = 20
MAX_MATRIX_CLASSES = 25
TP_COLOUR, FP_COLOUR = "#2e7d32", "#c62828"


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _message(text: str, width: float = 6, height: float = 2.5) -> bytes:
    figure = _figure(width, height)
    axes = figure.add_subplot()
    axes.axis("off")
    axes.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="#555")
    return _png(figure)


def pr_curves(result: EvaluationResult) -> bytes:
    """One panel per class: precision over recall at IoU 0.5 (solid) and 0.75 (dashed)."""
    ground_truth = {c.index: c.ground_truth for c in result.per_class}
    curves = sorted(result.pr_curves, key=lambda c: -ground_truth[c["index"]])
    if not curves:
        return _message("No precision-recall curves: the dataset holds no ground-truth boxes.")
    shown = curves[:MAX_PR_PANELS]
    columns = min(4, len(shown))
    rows = math.ceil(len(shown) / columns)
    figure = _figure(3.2 * columns, 2.9 * rows)
    for n, curve in enumerate(shown):
        axes = figure.add_subplot(rows, columns, n + 1)
        recall = np.asarray(curve["recall"])
        for key, style, label in (("precision", "-", "IoU .50"), ("precision75", "--", "IoU .75")):
            precision = np.asarray(curve[key], dtype=float)
            # The library pads precision with 0 beyond the highest recall reached; stop there.
            reached = precision > 0
            last = int(np.flatnonzero(reached)[-1]) + 1 if reached.any() else 1
            axes.plot(
                recall[:last],
                precision[:last],
                style,
                color="#1565c0",
                label=label,
                drawstyle="steps-post",
            )
        if not np.any(np.asarray(curve["precision"], dtype=float) > 0):
            axes.text(
                0.5,
                0.5,
                "no detection matches\na box at IoU ≥ 0.5",
                ha="center",
                va="center",
                fontsize=9,
                color="#888",
                transform=axes.transAxes,
            )
        ap50 = curve["ap50"]
        axes.set_title(f"{curve['name']}  AP50 {ap50:.3f}", fontsize=10)
        axes.set_xlim(0, 1.0)
        axes.set_ylim(0, 1.05)
        axes.set_xlabel("recall", fontsize=8)
        axes.set_ylabel("precision", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
        if n == 0:
            axes.legend(fontsize=7, loc="lower left")
    if len(curves) > len(shown):
        figure.suptitle(f"{len(shown)} of {len(curves)} classes (most ground truth first)")
    return _png(figure)


def _matrix_classes(matrix: np.ndarray) -> list[int]:
    """Indices of classes to show: all, or those involved in the most boxes."""
    num_classes = matrix.shape[0] - 1
    if num_classes <= MAX_MATRIX_CLASSES:
        return list(range(num_classes))
    involvement = matrix[:num_classes].sum(axis=1) + matrix[:, :num_classes].sum(axis=0)
    top = np.argsort(-involvement, kind="stable")[:MAX_MATRIX_CLASSES]
    return sorted(int(i) for i in top if involvement[i] > 0) or [0]


def confusion_matrix(result: EvaluationResult) -> bytes:
    """Counts, coloured by share of each ground-truth row (background row by its own total)."""
    matrix = np.asarray(result.confusion_matrix["matrix"])
    labels = result.confusion_matrix["labels"]
    keep = [*_matrix_classes(matrix), matrix.shape[0] - 1]
    shown = matrix[np.ix_(keep, keep)]
    names = [labels[i] for i in keep]
    row_totals = shown.sum(axis=1, keepdims=True)
    shares = np.divide(shown, row_totals, out=np.zeros(shown.shape), where=row_totals > 0)
    size = max(4.0, 0.55 * len(keep) + 2.2)
    figure = _figure(size + 1.0, size)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for r in range(len(keep)):
        for c in range(len(keep)):
            if shown[r, c]:
                colour = "white" if shares[r, c] > 0.55 else "#222"
                axes.text(
                    c,
                    r,
                    str(int(shown[r, c])),
                    ha="center",
                    va="center",
                    color=colour,
                    fontsize=9 if len(keep) < 12 else 7,
                )
    axes.set_xticks(range(len(keep)), names, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(len(keep)), names, fontsize=8)
    axes.set_xlabel("predicted class (background = missed box)")
    axes.set_ylabel("true class (background = false detection)")
    threshold = result.at_threshold
    title = f"Confusion at score ≥ {threshold['score_threshold']:g}, IoU ≥ "
    title += f"{threshold['iou_threshold']:g}"
    if len(keep) - 1 < matrix.shape[0] - 1:
        title += f"\n({len(keep) - 1} of {matrix.shape[0] - 1} classes shown)"
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, shrink=0.8, label="share of row")
    return _png(figure)


def ap_per_class(result: EvaluationResult) -> bytes:
    rows = [c for c in result.per_class if c.ap is not None]
    if not rows:
        return _message("No AP per class: no class has ground-truth boxes.")
    rows.sort(key=lambda c: (c.ap50 or 0, c.ap or 0))
    rows = rows[-40:]
    figure = _figure(7.5, max(2.2, 0.32 * len(rows) + 1.2))
    axes = figure.add_subplot()
    y = np.arange(len(rows))
    axes.barh(y + 0.2, [c.ap50 for c in rows], height=0.4, color="#90caf9", label="AP50")
    axes.barh(y - 0.2, [c.ap for c in rows], height=0.4, color="#1565c0", label="AP@[.5:.95]")
    for n, c in enumerate(rows):
        axes.text(min(c.ap50 or 0, 0.9) + 0.01, n + 0.2, f"{c.ap50:.2f}", va="center", fontsize=7)
        axes.text(min(c.ap, 0.9) + 0.01, n - 0.2, f"{c.ap:.2f}", va="center", fontsize=7)
    axes.set_yticks(y, [f"{c.name} ({c.ground_truth})" for c in rows], fontsize=8)
    axes.set_xlim(0, 1)
    axes.set_xlabel("average precision  (class name with its number of ground-truth boxes)")
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def score_distribution(result: EvaluationResult) -> bytes:
    dist = result.score_distribution
    bins = np.asarray(dist["bins"], dtype=float)
    tp = np.asarray(dist["true_positives"])
    fp = np.asarray(dist["false_positives"])
    if tp.sum() + fp.sum() == 0:
        return _message("No detections: nothing to show in the score distribution.")
    figure = _figure(7.5, 3.4)
    axes = figure.add_subplot()
    centres, width = (bins[:-1] + bins[1:]) / 2, np.diff(bins)
    axes.bar(centres, tp, width=width * 0.9, color=TP_COLOUR, alpha=0.8, label="true positive")
    axes.bar(
        centres,
        fp,
        width=width * 0.9,
        bottom=tp,
        color=FP_COLOUR,
        alpha=0.7,
        label="false positive",
    )
    threshold = result.at_threshold["score_threshold"]
    axes.axvline(threshold, color="#333", linestyle="--", linewidth=1)
    top = float((tp + fp).max()) * 1.3  # headroom for the legend and the threshold label
    axes.set_ylim(0, top)
    axes.text(threshold + 0.01, top * 0.97, f"score threshold {threshold:g}", fontsize=8, va="top")
    axes.set_xlim(0, 1)
    iou = dist["iou_threshold"]
    axes.set_xlabel(f"detection score (every detection, matched at IoU ≥ {iou:g})")
    axes.set_ylabel("detections")
    # The legend on the side away from the threshold line, so that its label stays readable.
    axes.legend(fontsize=8, loc="upper right" if threshold < 0.5 else "upper left", ncols=2)
    return _png(figure)


def _series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for n, entry in enumerate(history):
        value = entry.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            xs.append(float(entry.get("epoch", n)))
            ys.append(float(value))
    return xs, ys


def training_history(history: Sequence[dict[str, Any]]) -> bytes | None:
    """Losses (left) and validation mAP (right) per epoch; None without a usable history."""
    keys = sorted({k for entry in history for k in entry if k != "epoch"})
    loss_keys = [k for k in keys if any(w in k for w in ("loss", "localization", "classification"))]
    map_keys = [k for k in keys if "map" in k.lower()]
    loss_keys = [k for k in loss_keys if _series(history, k)[0]]
    map_keys = [k for k in map_keys if _series(history, k)[0]]
    if not loss_keys and not map_keys:
        return None
    from matplotlib.ticker import MaxNLocator

    panels = [p for p in (("loss per epoch", loss_keys), ("validation mAP", map_keys)) if p[1]]
    figure = _figure(5.2 * len(panels), 4.0)
    for n, (title, names) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), n + 1)
        highest = 0.0
        for key in names:
            xs, ys = _series(history, key)
            axes.plot(xs, ys, marker="o", markersize=3, label=key)
            highest = max(highest, *ys)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        # Below the axes: a legend inside would hide the curves it explains.
        axes.legend(
            fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3, frameon=False
        )
        if "mAP" in title:
            # From 0, so that progress reads honestly; not to 1, so that a weak start shows.
            axes.set_ylim(0, min(1.0, max(0.05, highest * 1.15)))
    return _png(figure)
