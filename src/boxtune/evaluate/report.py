"""The report directory: ``metrics.json``, ``report.html`` (self-contained) and ``plots/*.png``.

Files are staged in a hidden temp directory inside the output and moved into place one by one
with ``os.replace``; ``report.html`` goes last, so a reader never sees a report whose pictures
are missing and an interrupted run leaves the previous report intact.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boxtune.evaluate.metrics import EvaluationResult
from boxtune.fileio import remove_path

PLOT_TITLES = {
    "ap_per_class": "Average precision per class",
    "pr_curves": "Precision-recall curves per class",
    "confusion_matrix": "Confusion matrix",
    "score_distribution": "Score distribution of true and false positives",
    "training_history": "Training history",
}


@dataclass
class ReportContent:
    """Everything the report shows besides the metrics."""

    plots: dict[str, bytes]  # name (see PLOT_TITLES) -> PNG
    # (file name of the drawn image, caption, PNG)
    predictions: list[tuple[str, str, bytes]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)  # model, data, created, version


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:0;
 color:#1f2328;background:#f6f8fa}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 12px;
 border-bottom:1px solid #d0d7de;padding-bottom:6px}
.meta{color:#57606a;font-size:13px}.meta code{background:#eaeef2;padding:1px 4px;border-radius:4px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:16px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 16px;min-width:120px}
.card .v{font-size:22px;font-weight:600}.card .k{font-size:12px;color:#57606a}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:right}
th{background:#eaeef2}td:first-child,th:first-child{text-align:left}
.tables{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
figure{margin:0 0 16px;background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:8px}
figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:12px;color:#57606a;margin-top:4px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px;
 align-items:start}
.legend span{display:inline-block;margin-right:16px;font-size:13px}
.sw{display:inline-block;width:14px;height:10px;margin-right:6px;vertical-align:middle}
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px 12px;
 margin:12px 0 0;font-size:14px}
.note{font-size:12px;color:#57606a;max-width:900px}
"""


def _summary_cards(result: EvaluationResult) -> str:
    t, speed = result.at_threshold, result.speed or {}
    cards = [
        ("mAP@[.5:.95]", _fmt(result.summary.get("map"))),
        ("mAP50", _fmt(result.summary.get("map50"))),
        ("mAP75", _fmt(result.summary.get("map75"))),
        (f"precision @ {t['score_threshold']:g}", _fmt(t["precision"])),
        (f"recall @ {t['score_threshold']:g}", _fmt(t["recall"])),
        (f"F1 @ {t['score_threshold']:g}", _fmt(t["f1"])),
    ]
    if speed:
        cards += [
            (
                "latency mean / p95 (ms)",
                f"{_fmt(speed.get('mean_ms'), 1)} / {_fmt(speed.get('p95_ms'), 1)}",
            ),
            ("images / s", _fmt(speed.get("images_per_second"), 1)),
        ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="v">{v}</div><div class="k">{html.escape(k)}</div></div>'
            for k, v in cards
        )
        + "</div>"
    )


def _table(headers: list[str], rows: list[list[Any]], digits: int = 3) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(v, digits)}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary_table(result: EvaluationResult) -> str:
    s, t, c = result.summary, result.at_threshold, result.counts
    rows = [
        ["mAP@[.5:.95]", s.get("map")],
        ["mAP@.50", s.get("map50")],
        ["mAP@.75", s.get("map75")],
        ["mAP small (< 32² px)", s.get("map_small")],
        ["mAP medium", s.get("map_medium")],
        ["mAP large (> 96² px)", s.get("map_large")],
        ["AR@1", s.get("ar1")],
        ["AR@10", s.get("ar10")],
        ["AR@100", s.get("ar100")],
        ["AR small", s.get("ar_small")],
        ["AR medium", s.get("ar_medium")],
        ["AR large", s.get("ar_large")],
    ]
    counts = [
        ["images", c["images"]],
        ["images without boxes", c["images_without_boxes"]],
        ["ground-truth boxes", c["ground_truth"]],
        ["detections (all scores)", c["detections"]],
        [f"detections with score ≥ {t['score_threshold']:g}", c["detections_above_threshold"]],
        ["true positives", t["true_positives"]],
        ["false positives", t["false_positives"]],
        ["missed boxes", t["misses"]],
        ["precision", t["precision"]],
        ["recall", t["recall"]],
        ["F1", t["f1"]],
    ]
    parts = [
        _table(["COCO metric", "value"], rows),
        _table(
            [f"at score ≥ {t['score_threshold']:g}, IoU ≥ {t['iou_threshold']:g}", "value"], counts
        ),
    ]
    speed = result.speed
    if speed:
        machine = speed.get("machine", {})
        parts.append(
            _table(
                ["speed (1 image per call)", "value"],
                [
                    ["mean latency (ms)", _fmt(speed.get("mean_ms"), 1)],
                    ["p50 latency (ms)", _fmt(speed.get("p50_ms"), 1)],
                    ["p95 latency (ms)", _fmt(speed.get("p95_ms"), 1)],
                    ["max latency (ms)", _fmt(speed.get("max_ms"), 1)],
                    ["images / s", _fmt(speed.get("images_per_second"), 1)],
                    ["warm-up, first call (ms)", _fmt(speed.get("warmup_ms"), 1)],
                    ["image decode, mean (ms)", _fmt(speed.get("decode_mean_ms"), 1)],
                    ["runner", speed.get("runner")],
                    ["backend", speed.get("backend")],
                    [
                        "machine",
                        f"{machine.get('processor', '?')}, {machine.get('cpu_count', '?')} CPUs",
                    ],
                ],
            )
        )
    return '<div class="tables">' + "".join(parts) + "</div>"


def _class_table(result: EvaluationResult) -> str:
    rows = [
        [
            c.name,
            c.category_id,
            c.ground_truth,
            c.ap,
            c.ap50,
            c.ap75,
            c.detections,
            c.true_positives,
            c.false_positives,
            c.misses,
            c.precision,
            c.recall,
            c.f1,
        ]
        for c in result.per_class
        if c.ground_truth or c.detections
    ]
    hidden = len(result.per_class) - len(rows)
    t = result.at_threshold["score_threshold"]
    table = _table(
        [
            "class",
            "category_id",
            "boxes",
            "AP",
            "AP50",
            "AP75",
            f"detections ≥ {t:g}",
            "TP",
            "FP",
            "missed",
            "precision",
            "recall",
            "F1",
        ],
        rows,
    )
    if hidden:
        table += (
            f'<p class="note">{hidden} classes with neither ground truth nor detections '
            "are not listed.</p>"
        )
    return table


def render_html(result: EvaluationResult, content: ReportContent) -> str:
    ctx = content.context
    meta = " · ".join(
        f"{html.escape(k)} <code>{html.escape(str(v))}</code>"
        for k, v in ctx.items()
        if v is not None
    )
    sections = [
        f"<h1>{html.escape(str(ctx.get('title') or 'boxtune evaluation report'))}</h1>",
        f'<div class="meta">{meta}</div>',
        "".join(f'<p class="warn">⚠ {html.escape(w)}</p>' for w in result.warnings()),
        _summary_cards(result),
        "<h2>Summary</h2>",
        _summary_table(result),
        "<h2>Per class</h2>",
        _class_table(result),
    ]
    for name, title in PLOT_TITLES.items():
        png = content.plots.get(name)
        if png is None:
            continue
        sections.append(f"<h2>{html.escape(title)}</h2>")
        sections.append(
            f'<figure><img src="{_data_uri(png)}" alt="{html.escape(title)}">'
            f"<figcaption>plots/{name}.png</figcaption></figure>"
        )
    if content.predictions:
        t = result.at_threshold
        sections += [
            "<h2>Predictions on validation images</h2>",
            '<p class="legend">'
            '<span><i class="sw" style="background:#2ea043"></i>true positive</span>'
            '<span><i class="sw" style="background:#dc2626"></i>false positive '
            "(or wrong class: “is …”)</span>"
            '<span><i class="sw" style="background:#ffa500"></i>missed box (dashed)</span>'
            f"<span>score ≥ {t['score_threshold']:g}, IoU ≥ {t['iou_threshold']:g}</span></p>",
            '<div class="grid">',
        ]
        for file_name, caption, png in content.predictions:
            sections.append(
                f'<figure><img src="{_data_uri(png)}" alt="{html.escape(file_name)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        sections.append("</div>")
    sections.append(
        '<h2>How to read this</h2><p class="note">COCO metrics come from faster-coco-eval '
        "(101-point interpolated precision, up to 100 detections per image, box area sets the "
        "small/medium/large bucket). Counts, precision, recall, F1 and the confusion matrix "
        "come from a greedy match at the score and IoU thresholds above: a detection first "
        "takes the best-overlapping unmatched box of its own class (true positive), then of "
        "another class (confusion); what is left is a false detection or a missed box. "
        "Classes without ground-truth boxes have no AP (shown as –).</p>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(str(ctx.get('title') or 'boxtune evaluation report'))}</title>"
        f"<style>{CSS}</style></head><body><main>{''.join(sections)}</main></body></html>\n"
    )


def metrics_document(result: EvaluationResult, context: dict[str, Any]) -> dict[str, Any]:
    return {"report": {k: v for k, v in context.items() if v is not None}, **result.to_json()}


def _remove_stale_pictures(folder: Path, written: set[str]) -> None:
    """Drawn images of an earlier run into the same directory would mix with this one's."""
    if folder.is_dir():
        for path in folder.glob("*.png"):
            if f"plots/predictions/{path.name}" not in written:
                path.unlink(missing_ok=True)


def write_report(output_dir: Path, result: EvaluationResult, content: ReportContent) -> Path:
    """Write the report files into ``output_dir`` (created if needed); returns report.html."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for leftover in output_dir.glob(".report-partial-*"):  # from a killed earlier run
        remove_path(leftover)
    staging = Path(tempfile.mkdtemp(dir=output_dir, prefix=".report-partial-"))
    try:
        files: list[str] = []

        def stage(relative: str, data: bytes) -> None:
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            files.append(relative)

        for name, png in content.plots.items():
            stage(f"plots/{name}.png", png)
        for file_name, _, png in content.predictions:
            stage(f"plots/predictions/{file_name}", png)
        document = metrics_document(result, content.context)
        stage("metrics.json", (json.dumps(document, indent=2, allow_nan=False) + "\n").encode())
        stage("report.html", render_html(result, content).encode("utf-8"))
        for relative in files:  # report.html was staged last, so it moves last
            (output_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / relative, output_dir / relative)
        _remove_stale_pictures(output_dir / "plots" / "predictions", set(files))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir / "report.html"
