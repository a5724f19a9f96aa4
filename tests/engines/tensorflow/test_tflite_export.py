"""``boxtune export --format tflite``: a TFLite flatbuffer that gives the SavedModel's boxes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from boxtune import cli
from boxtune.artifacts import load_artifact

tf = pytest.importorskip("tensorflow")
skimage_data = pytest.importorskip("skimage.data")


# person_artifact: the pretrained person detector's artifact (conftest.py)


def test_the_tflite_export_gives_the_saved_models_boxes(person_artifact, tmp_path, capsys):
    from boxtune.engines.tensorflow.tflite_export import TFLiteModel

    target = tmp_path / "person.tflite"
    code = cli.main(["export", "--model", str(person_artifact), "--format", "tflite",
                     "--output", str(target)])  # fmt: skip
    assert code == 0 and target.stat().st_size > 1_000_000
    assert "checked: boxes within" in capsys.readouterr().out
    image = np.array(Image.fromarray(skimage_data.astronaut()).resize((300, 300)))
    lite = TFLiteModel(target.read_bytes())(image)
    saved = tf.saved_model.load(str(load_artifact(person_artifact).directory / "saved_model"))
    reference = {
        k: v.numpy() for k, v in saved.signatures["detect_batch"](images=image[None]).items()
    }
    count = 5
    assert lite["detection_scores"][0, 0] > 0.85 and lite["detection_classes"][0, 0] == 1.0
    np.testing.assert_allclose(
        lite["detection_boxes"][0, :count], reference["detection_boxes"][0, :count], atol=1e-2
    )
    np.testing.assert_allclose(
        lite["detection_scores"][0, :count], reference["detection_scores"][0, :count], atol=1e-2
    )


def test_an_unknown_format_is_named_and_writes_nothing(person_artifact, tmp_path, capsys):
    target = tmp_path / "model.onnx"
    code = cli.main(["export", "--model", str(person_artifact), "--format", "onnx",
                     "--output", str(target)])  # fmt: skip
    assert code == 1 and not target.exists()
    assert "no export format 'onnx'" in capsys.readouterr().err
