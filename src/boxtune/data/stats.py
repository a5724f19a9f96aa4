"""Dataset statistics: counts per class and the distribution of box sizes."""

from __future__ import annotations

import numpy as np

from boxtune.data.records import DetectionDataset

# COCO's size buckets, by box area in pixels of the original image.
SMALL_AREA, LARGE_AREA = 32**2, 96**2


def _summary(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {}
    quantiles = np.percentile(values, [0, 10, 50, 90, 100])
    return {
        name: round(float(v), 2)
        for name, v in zip(("min", "p10", "median", "p90", "max"), quantiles, strict=True)
    } | {"mean": round(float(values.mean()), 2)}


def dataset_stats(dataset: DetectionDataset) -> dict:
    """A JSON-ready summary of ``dataset``."""
    boxes = np.array([a.bbox for a in dataset.annotations], np.float64).reshape(-1, 4)
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    areas = widths * heights
    sizes = {r.id: (r.width, r.height) for r in dataset.images}
    rel = np.array(
        [
            max(a.width / sizes[a.image_id][0], a.height / sizes[a.image_id][1])
            for a in dataset.annotations
        ]
    )
    per_image = np.array([len(dataset.boxes_for(r.id)) for r in dataset.images])
    counts = dataset.class_counts()
    image_counts = {
        cid: len({a.image_id for a in dataset.annotations if a.category_id == cid})
        for cid in counts
    }
    return {
        "root": str(dataset.root),
        "images": len(dataset.images),
        "negatives": int((per_image == 0).sum()),
        "boxes": len(dataset.annotations),
        "boxes_per_image": _summary(per_image.astype(np.float64)),
        "classes": [
            {
                "id": cid,
                "name": dataset.categories[cid],
                "boxes": counts[cid],
                "images": image_counts[cid],
            }
            for cid in counts
        ],
        "image_width": _summary(np.array([r.width for r in dataset.images], np.float64)),
        "image_height": _summary(np.array([r.height for r in dataset.images], np.float64)),
        "box_width": _summary(widths),
        "box_height": _summary(heights),
        "box_aspect_ratio": _summary(widths / np.maximum(heights, 1e-9)),
        "box_relative_size": _summary(rel),
        "box_size_buckets": {
            "small (<32x32 px)": int((areas < SMALL_AREA).sum()),
            "medium": int(((areas >= SMALL_AREA) & (areas < LARGE_AREA)).sum()),
            "large (>=96x96 px)": int((areas >= LARGE_AREA).sum()),
        },
        "warnings": len(dataset.warnings),
    }


def render_stats(stats: dict) -> str:
    """The stats as aligned text for a terminal."""
    lines = [
        f"dataset   {stats['root']}",
        f"images    {stats['images']} ({stats['negatives']} without boxes)",
        f"boxes     {stats['boxes']}"
        + (
            f" (median {stats['boxes_per_image']['median']:g}, max "
            f"{stats['boxes_per_image']['max']:g} per image)"
            if stats["boxes_per_image"]
            else ""
        ),
        "",
        "classes",
    ]
    width = max([len(c["name"]) for c in stats["classes"]] + [4])
    total = max(1, stats["boxes"])
    for c in stats["classes"]:
        bar = "#" * round(30 * c["boxes"] / total)
        lines.append(
            f"  {c['id']:>4}  {c['name']:<{width}}  {c['boxes']:>6} boxes  "
            f"{c['images']:>5} images  {bar}"
        )
    lines += ["", "sizes (px)          min    p10  median    p90    max"]
    for key, label in (
        ("image_width", "image width"),
        ("image_height", "image height"),
        ("box_width", "box width"),
        ("box_height", "box height"),
        ("box_aspect_ratio", "box w/h"),
        ("box_relative_size", "box / image side"),
    ):
        s = stats[key]
        if s:
            lines.append(
                f"  {label:<16}"
                + "".join(f"{s[k]:>7g}" for k in ("min", "p10", "median", "p90", "max"))
            )
    buckets = ", ".join(f"{k}: {v}" for k, v in stats["box_size_buckets"].items())
    lines += ["", f"box areas  {buckets}"]
    if stats["warnings"]:
        lines.append(f"\n{stats['warnings']} validation warning(s): run `boxtune data validate`")
    return "\n".join(lines)
