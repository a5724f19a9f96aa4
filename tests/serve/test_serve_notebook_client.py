"""The managed platform's example notebook, run against boxtune: its boxes land on the objects.

The client below follows the notebook line by line (raw bytes POSTed as application/x-image,
``json.loads``, ``left, bot, right, top = box``, scaled by the image's width and height,
``labels[int(class)]``, matplotlib Rectangle patches); only the endpoint call is plain HTTP.
"""

from __future__ import annotations

import json

import httpx
import matplotlib
import numpy as np
import pytest
from PIL import Image
from serve_fakes import encode, scene

matplotlib.use("Agg")
import matplotlib.patches as patches
import matplotlib.pyplot as plt

OBJECTS = {0: (40, 30, 140, 110), 1: (300, 60, 420, 200), 2: (90, 220, 250, 300)}
NAMES = {0: "red thing", 1: "green thing", 2: "blue thing"}


def query_endpoint(url: str, input_img: bytes) -> bytes:
    response = httpx.post(
        f"{url}/invocations",
        content=input_img,
        headers={
            "Content-Type": "application/x-image",
            "Accept": "application/json;verbose;n_predictions=5",
        },
    )
    return response.content


def parse_response(query_response: bytes):
    model_predictions = json.loads(query_response)
    normalized_boxes, classes, scores, labels = (
        model_predictions["normalized_boxes"],
        model_predictions["classes"],
        model_predictions["scores"],
        model_predictions["labels"],
    )
    # Substitute the classes index with the classes name
    class_names = [labels[int(idx)] for idx in classes]
    return normalized_boxes, class_names, scores


def display_predictions(img_jpg: str, normalized_boxes, classes_names, confidences):
    colors = list(matplotlib.colors.TABLEAU_COLORS.values())
    image_np = np.array(Image.open(img_jpg))
    fig = plt.figure(figsize=(8, 6))
    ax = plt.axes()
    ax.imshow(image_np)
    drawn = []
    for idx in range(len(normalized_boxes)):
        left, bot, right, top = normalized_boxes[idx]
        x, w = [val * image_np.shape[1] for val in [left, right - left]]
        y, h = [val * image_np.shape[0] for val in [bot, top - bot]]
        color = colors[hash(classes_names[idx]) % len(colors)]
        rect = patches.Rectangle((x, y), w, h, linewidth=3, edgecolor=color, facecolor="none")
        ax.add_patch(rect)
        ax.text(x, y, f"{classes_names[idx]} {100 * confidences[idx]:.0f}%", color=color)
        drawn.append((classes_names[idx], rect))
    fig.savefig(img_jpg + ".pred.png")
    plt.close(fig)
    return drawn


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_notebook_client_draws_boxes_on_the_objects(fake_server, tmp_path, fmt):
    image_path = tmp_path / f"scene.{fmt.lower()}"
    image_path.write_bytes(
        encode(scene(480, 320, OBJECTS, seed=7), fmt, quality=95)
        if fmt == "JPEG"
        else encode(scene(480, 320, OBJECTS, seed=7), fmt)
    )
    with open(image_path, "rb") as file:
        input_img = file.read()
    normalized_boxes, class_names, scores = parse_response(
        query_endpoint(fake_server.url, input_img)
    )
    drawn = display_predictions(str(image_path), normalized_boxes, class_names, scores)
    confident = {name: rect for name, rect in drawn[:3]}
    assert set(confident) == set(NAMES.values())
    for class_index, (x0, y0, x1, y1) in OBJECTS.items():
        rect = confident[NAMES[class_index]]
        assert rect.get_x() == pytest.approx(x0, abs=2)
        assert rect.get_y() == pytest.approx(y0, abs=2)  # y from the top, as imshow draws
        assert rect.get_width() == pytest.approx(x1 - x0, abs=3)
        assert rect.get_height() == pytest.approx(y1 - y0, abs=3)
    assert (tmp_path / f"scene.{fmt.lower()}.pred.png").stat().st_size > 0
