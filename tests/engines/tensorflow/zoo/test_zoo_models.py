"""The 13 assembled zoo detectors: every checkpoint key placed by rule, parameter counts equal
to the manifests', and the reference fpnlite model reproduced end to end through the restore."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from tests.engines.tensorflow.zoo import reference
from tests.engines.tensorflow.zoo.test_zoo_postprocess import assert_detections_equal

import boxtune.engines.tensorflow  # noqa: F401  (before keras: environment, import order)
from boxtune.engines.tensorflow.architecture import TFArchitecture, build_network
from boxtune.engines.tensorflow.postprocess import clip_window, detect
from boxtune.engines.tensorflow.zoo.checkpoint import CheckpointMismatchError
from boxtune.engines.tensorflow.zoo.configs import ZOO_CONFIGS
from boxtune.engines.tensorflow.zoo.preprocessing import ZooPreprocessing, preprocess_image
from boxtune.engines.tensorflow.zoo.weights import class_head_keys, restore_zoo_weights


@pytest.mark.parametrize("zoo_name", reference.ZOO_MODELS)
def test_a_manifest_checkpoint_restores_every_key_and_the_parameter_counts_agree(
    zoo_name, tmp_path
):
    """A checkpoint with exactly the manifest's keys and shapes (random values) loads with
    every key consumed, every variable set, and the counts equal the manifest's."""
    config = ZOO_CONFIGS[zoo_name]
    network = build_network(TFArchitecture(zoo_name, config.image_size, 90))
    shapes = {key: tuple(v.shape) for key, v in network.checkpoint_map.items()}
    assert shapes == reference.manifest_variables(zoo_name)
    params = sum(int(np.prod(v.shape)) for v in network.model.weights)
    assert params == reference.manifest_params_total(zoo_name)
    assert len({id(v) for v in network.checkpoint_map.values()}) == len(network.model.weights)

    prefix = reference.random_checkpoint(zoo_name, tmp_path)
    report = restore_zoo_weights(
        network, prefix, mode="full", anchors_per_location=config.anchors.anchors_per_location
    )
    assert set(report.restored) == set(shapes) and not report.skipped
    assert not report.not_restored and report.restored_parameters == params
    values = reference.random_values(zoo_name)
    for key, variable in network.checkpoint_map.items():
        np.testing.assert_array_equal(np.asarray(variable), values[key], err_msg=key)


# The detections of the reference outputs: fpnlite's pipeline.config box coder; EfficientDet's
# as the zoo tarball's config has it (1, 1, 1, 1), which is what boxtune builds.
DETECTIONS = {
    reference.FPNLITE_320: "postprocess/",
    reference.EFFICIENTDET_D0: "postprocess_zoo_tarball_config/",
}


@pytest.mark.parametrize("zoo_name", reference.REFERENCE_MODELS)
def test_the_reference_model_is_reproduced_through_the_restore(zoo_name, tmp_path):
    """Checkpoint -> restore by rule -> preprocess -> network -> post-processing, each stage
    against the reference implementation's outputs on two real photos."""
    config = ZOO_CONFIGS[zoo_name]
    prefix = reference.reference_checkpoint(zoo_name, tmp_path)
    network = build_network(TFArchitecture(zoo_name, config.image_size, 90))
    report = restore_zoo_weights(network, prefix, mode="full", anchors_per_location=6)
    assert not report.skipped and not report.not_restored
    outputs = reference.reference_outputs(zoo_name)
    assert outputs.max_abs_diff("predict/anchors", network.anchors) < 1e-6
    # The reference clips to the true image window (keep-aspect padding); boxtune's own inputs
    # are stretched to the full square, so its default config has no window.
    postprocess = dataclasses.replace(
        network.postprocess, prune_outside_window=True, change_coordinate_frame=True
    )
    preprocessing = ZooPreprocessing(config.normalization, config.resizer, config.image_size)
    for photo in ("", "chelsea/"):
        images, true_shape = preprocess_image(reference.photo(photo), preprocessing)
        assert outputs.max_abs_diff(f"{photo}preprocessed_inputs", images) <= 1e-5
        codes, logits = network.model(images, training=False)
        assert outputs.max_abs_diff(f"{photo}predict/box_encodings", codes) < 1e-4
        assert (
            outputs.max_abs_diff(f"{photo}predict/class_predictions_with_background", logits) < 1e-4
        )
        window = clip_window([true_shape], (config.image_size, config.image_size))
        found = detect(codes, logits, tf.constant(network.anchors), postprocess, clip_window=window)
        assert_detections_equal(
            found, logits.numpy(), outputs, photo + DETECTIONS[zoo_name], postprocess
        )


def test_a_new_head_restore_skips_only_the_class_predictor(tmp_path):
    zoo_name = reference.FPNLITE_320
    prefix = reference.reference_checkpoint(zoo_name, tmp_path)
    network = build_network(TFArchitecture(zoo_name, 320, 3))
    report = restore_zoo_weights(network, prefix, mode="new_head", anchors_per_location=6)
    head = class_head_keys(network)
    assert head and all("class" in key.lower() for key in head)
    assert set(report.skipped) == head


def test_the_detection_mode_restores_the_feature_extractor_only(tmp_path):
    zoo_name = reference.FPNLITE_320
    prefix = reference.reference_checkpoint(zoo_name, tmp_path)
    network = build_network(TFArchitecture(zoo_name, 320, 90))
    report = restore_zoo_weights(network, prefix, mode="detection", anchors_per_location=6)
    assert all(key.startswith("model/_box_predictor/") for key in report.skipped)
    assert len(report.skipped) == 385 - 1 - 290  # the manifest: 290 feature-extractor keys


def test_a_checkpoint_that_does_not_fit_is_refused_naming_every_key(tmp_path):
    zoo_name = reference.FPNLITE_320
    values = reference.random_values(zoo_name)
    removed = sorted(values)[0]
    del values[removed]
    values["model/_box_predictor/an_extra_layer/kernel"] = np.zeros((3, 3), np.float32)
    reshaped = next(key for key in sorted(values) if key.endswith("/bias"))
    values[reshaped] = np.zeros(values[reshaped].shape[0] + 1, np.float32)
    prefix = reference.write_checkpoint(values, tmp_path)
    network = build_network(TFArchitecture(zoo_name, 320, 90))
    before = [v.numpy().copy() for v in network.model.weights]

    with pytest.raises(CheckpointMismatchError) as info:
        restore_zoo_weights(network, prefix, mode="full", anchors_per_location=6)
    error = info.value
    assert error.missing_keys == (removed,)
    assert error.unplaced_keys == ("model/_box_predictor/an_extra_layer/kernel",)
    assert [key for key, _, _ in error.shape_mismatches] == [reshaped]
    message = str(error)
    assert removed in message and "an_extra_layer" in message and reshaped in message
    assert prefix in message  # where: the checkpoint
    # All or nothing: not one variable was assigned.
    for old, variable in zip(before, network.model.weights, strict=True):
        np.testing.assert_array_equal(old, variable.numpy())
