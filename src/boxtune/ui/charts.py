"""Line charts of a job's per-epoch metrics, drawn as SVG on the server (no chart script)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from boxtune.errors import BoxtuneError

WIDTH, HEIGHT = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 44, 40
LEGEND_Y = 30  # between the title and the plot
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea")


@dataclass(frozen=True)
class ChartSpec:
    title: str
    series: tuple[tuple[str, str], ...]  # (metrics.jsonl key, legend label)


CHARTS = {
    "loss": ChartSpec(
        "Loss per epoch", (("loss", "training loss"), ("val_loss", "validation loss"))
    ),
    "map": ChartSpec(
        "Validation mAP per epoch",
        (("val_map", "mAP@[.5:.95]"), ("val_map50", "mAP@.5")),
    ),
}


def _points(records: list[dict], key: str) -> list[tuple[float, float]]:
    points = []
    for record in records:
        value, epoch = record.get(key), record.get("epoch")
        if isinstance(value, int | float) and isinstance(epoch, int) and math.isfinite(value):
            points.append((float(epoch), float(value)))
    return points


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / (count - 1)
    return [low + i * step for i in range(count)]


def metric_chart(kind: str, records: list[dict]) -> str:
    """An SVG document: one line per series over the epochs so far (a placeholder text until
    the first epoch ends)."""
    spec = CHARTS.get(kind)
    if spec is None:
        raise BoxtuneError(
            f"no chart named {kind!r}", where="chart", hint=f"one of {', '.join(CHARTS)}"
        )
    series = [(label, _points(records, key)) for key, label in spec.series]
    series = [(label, points) for label, points in series if points]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(spec.title)}" data-points="'
        f'{sum(len(p) for _, p in series)}">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
        f'<text x="{LEFT}" y="18" font-size="14" font-family="sans-serif" '
        f'font-weight="bold">{escape(spec.title)}</text>',
    ]
    if not series:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="13" '
            'font-family="sans-serif" fill="#666">waiting for the first epoch to end</text>'
        )
        return "".join(parts) + "</svg>"
    xs = [x for _, points in series for x, _ in points]
    ys = [y for _, points in series for _, y in points]
    x_low, x_high = min(xs), max(max(xs), min(xs) + 1)
    y_low, y_high = min(0.0, min(ys)), max(ys)
    if y_high <= y_low:
        y_high = y_low + 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - (y - y_low) / (y_high - y_low) * plot_h

    for tick in _ticks(y_low, y_high):
        y = sy(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'font-family="sans-serif">{tick:.3g}</text>'
        )
    for epoch in sorted(set(xs)):
        parts.append(
            f'<text x="{sx(epoch):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
            f'font-size="11" font-family="sans-serif">{int(epoch)}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle" font-size="12" '
        'font-family="sans-serif">epoch</text>'
    )
    for index, (label, points) in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        parts.append(
            f'<polyline class="series" points="{path}" fill="none" stroke="{colour}" '
            'stroke-width="2"/>'
        )
        parts += [
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>' for x, y in points
        ]
        legend_x = LEFT + index * 170
        parts.append(
            f'<rect x="{legend_x}" y="{LEGEND_Y - 4}" width="12" height="3" fill="{colour}"/>'
            f'<text x="{legend_x + 16}" y="{LEGEND_Y}" font-size="11" '
            f'font-family="sans-serif">{escape(label)}</text>'
        )
    return "".join(parts) + "</svg>"
