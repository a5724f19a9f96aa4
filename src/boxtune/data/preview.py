"""Contact sheets: a grid of dataset images with their boxes drawn, to check data by eye."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageDraw

from boxtune.data.images import load_rgb
from boxtune.data.records import DetectionDataset
from boxtune.fileio import atomic_path

BOX_COLOURS = ["#ff2d2d", "#2dff2d", "#2d8cff", "#ffe12d", "#ff2dff", "#2dffff"]


def contact_sheet(
    dataset: DetectionDataset,
    path: str | os.PathLike,
    *,
    count: int = 16,
    columns: int = 4,
    cell: int = 320,
) -> Path:
    """Save the first ``count`` images (boxes and labels drawn) as one PNG at ``path``."""
    records = dataset.images[:count]
    rows = max(1, -(-len(records) // columns))
    sheet = Image.new("RGB", (columns * cell, rows * cell), (255, 255, 255))
    index_of = {cid: i for i, cid in enumerate(sorted(dataset.categories))}
    for n, record in enumerate(records):
        image = load_rgb(dataset.image_path(record))
        scale = min(cell / image.width, cell / image.height)
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        )
        draw = ImageDraw.Draw(image)
        for ann in dataset.boxes_for(record.id):
            colour = BOX_COLOURS[index_of.get(ann.category_id, 0) % len(BOX_COLOURS)]
            x1, y1, x2, y2 = (v * scale for v in ann.bbox)
            draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
            draw.text((x1 + 2, y1 + 1), dataset.categories.get(ann.category_id, "?"), fill=colour)
        draw.text((4, 4), f"id {record.id}", fill="white")
        sheet.paste(image, ((n % columns) * cell, (n // columns) * cell))
    path = Path(path)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path
