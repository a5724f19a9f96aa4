"""The zoo's MobileNetV2 backbone and SSD FPN neck: checkpoint keys and shapes equal the zoo
manifests', and with the reference checkpoint loaded through the maps they reproduce the TF
Object Detection API's backbone endpoints and feature maps of ssd_mobilenet_v2_fpnlite_320x320.
"""

from __future__ import annotations

import pytest
from tests.engines.tensorflow.zoo import reference

from boxtune.engines.tensorflow.zoo.fpn import build_fpn, fpn_checkpoint_map
from boxtune.engines.tensorflow.zoo.mobilenet_v2 import (
    build_mobilenet_v2_backbone,
    endpoint_channels,
    mobilenet_v2_backbone_checkpoint_map,
)

BACKBONE_PREFIX = "model/_feature_extractor/classification_backbone/"
FPN_PREFIXES = (
    "model/_feature_extractor/_fpn_features_generator/",
    "model/_feature_extractor/_coarse_feature_layers/",
)
# The channels of the endpoints of levels 3, 4, 5 (the FPN's inputs) per feature extractor
FPN_INPUT_CHANNELS = {
    "ssd_resnet50_v1_fpn_keras": [512, 1024, 2048],
    "ssd_resnet101_v1_fpn_keras": [512, 1024, 2048],
    "ssd_resnet152_v1_fpn_keras": [512, 1024, 2048],
    "ssd_mobilenet_v1_fpn_keras": [256, 512, 1024],
    "ssd_mobilenet_v2_fpn_keras": endpoint_channels(min_level=3),
}
FPN_MODELS = [name for name in reference.ZOO_MODELS if "efficientdet" not in name]
MAX_ABS_DIFF = 1e-5  # measured: below 1e-6 everywhere


def shapes(mapping: dict) -> dict[str, tuple[int, ...]]:
    return {key: tuple(variable.shape) for key, variable in mapping.items()}


def manifest_part(zoo_name: str, prefixes: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    variables = reference.manifest_variables(zoo_name)
    return {key: shape for key, shape in variables.items() if key.startswith(prefixes)}


def fpn_for(zoo_name: str, *, name: str = "fpn"):
    extractor = reference.config_facts(zoo_name)["feature_extractor"]
    fpn = extractor["fpn"]
    depth = max(int(fpn["additional_layer_depth"] * extractor["depth_multiplier"]), 16)
    return build_fpn(
        input_channels=FPN_INPUT_CHANNELS[extractor["type"]],
        min_level=fpn["min_level"],
        max_level=fpn["max_level"],
        depth=depth,
        use_depthwise=extractor["use_depthwise"],
        name=name,
    )


@pytest.mark.parametrize(
    "zoo_name", [name for name in FPN_MODELS if "mobilenet_v2" in name], ids=str
)
def test_backbone_keys_and_shapes_equal_the_manifest(zoo_name):
    import keras

    facts = reference.config_facts(zoo_name)
    extractor = facts["feature_extractor"]
    backbone = build_mobilenet_v2_backbone(
        depth_multiplier=extractor["depth_multiplier"], min_depth=extractor["min_depth"]
    )
    mapping = mobilenet_v2_backbone_checkpoint_map(backbone)
    assert shapes(mapping) == manifest_part(zoo_name, (BACKBONE_PREFIX,))
    assert len(mapping) == len(backbone.weights)
    size = facts["image_size_hw"][0]
    endpoints = backbone(keras.Input((size, size, 3), batch_size=1))
    assert [tuple(e.shape) for e in endpoints] == [
        (1, size // 2**level, size // 2**level, channels)
        for level, channels in zip((2, 3, 4, 5), endpoint_channels(), strict=True)
    ]


@pytest.mark.parametrize("zoo_name", FPN_MODELS, ids=str)
def test_fpn_keys_and_shapes_equal_the_manifest(zoo_name):
    fpn = fpn_for(zoo_name)
    mapping = fpn_checkpoint_map(fpn)
    assert shapes(mapping) == manifest_part(zoo_name, FPN_PREFIXES)
    assert len(mapping) == len(fpn.weights)
    assert len(fpn.outputs) == 5  # levels 3..7


@pytest.fixture(scope="module")
def reference_network(tmp_path_factory):
    """The fpnlite 320's backbone and FPN, their checkpoint map, with the reference checkpoint
    loaded through it."""
    import tensorflow as tf

    zoo_name = reference.FPNLITE_320
    backbone = build_mobilenet_v2_backbone(name="mobilenet_v2")
    fpn = fpn_for(zoo_name)
    mapping = {**mobilenet_v2_backbone_checkpoint_map(backbone), **fpn_checkpoint_map(fpn)}
    prefix = reference.reference_checkpoint(zoo_name, tmp_path_factory.mktemp("ckpt"))
    checkpoint = tf.train.load_checkpoint(prefix)
    for key, variable in mapping.items():
        variable.assign(checkpoint.get_tensor(key + reference.SUFFIX))
    return backbone, fpn, mapping


def test_backbone_and_fpn_hold_the_whole_feature_extractor(reference_network):
    """Together they own every model/_feature_extractor/ key of the fpnlite models, once."""
    backbone, fpn, mapping = reference_network
    zoo_name = reference.FPNLITE_320
    assert shapes(mapping) == manifest_part(zoo_name, ("model/_feature_extractor/",))
    assert len({id(v) for v in mapping.values()}) == len(backbone.weights) + len(fpn.weights)


def test_min_level_3_feeds_the_fpn_directly():
    """With min_level=3 the backbone gives the FPN's three inputs and still holds every layer."""
    import keras

    backbone = build_mobilenet_v2_backbone(min_level=3, input_shape=(320, 320, 3), name="m3")
    assert [tuple(o.shape) for o in backbone.outputs] == [
        (None, 40, 40, 32),
        (None, 20, 20, 96),
        (None, 10, 10, 1280),
    ]
    assert shapes(mobilenet_v2_backbone_checkpoint_map(backbone)) == manifest_part(
        reference.FPNLITE_320, (BACKBONE_PREFIX,)
    )
    images = keras.Input((320, 320, 3))
    features = fpn_for(reference.FPNLITE_320, name="neck")(backbone(images))
    assert [tuple(f.shape[1:]) for f in features] == [
        (40, 40, 128),
        (20, 20, 128),
        (10, 10, 128),
        (5, 5, 128),
        (3, 3, 128),
    ]


@pytest.mark.parametrize("photo", ["", "chelsea/"], ids=["astronaut", "chelsea"])
def test_reproduces_the_reference_backbone_and_feature_maps(reference_network, photo):
    from boxtune.engines.tensorflow.zoo.preprocessing import ZooPreprocessing, preprocess_image

    backbone, fpn, _ = reference_network
    outputs = reference.reference_outputs(reference.FPNLITE_320)
    images, _ = preprocess_image(
        reference.photo(photo), ZooPreprocessing("mobilenet", "fixed", 320)
    )
    assert outputs.max_abs_diff(f"{photo}preprocessed_inputs", images) <= 1e-6
    endpoints = backbone(images, training=False)
    for i, endpoint in enumerate(endpoints):
        assert outputs.max_abs_diff(f"{photo}backbone/{i}", endpoint) <= MAX_ABS_DIFF, i
    feature_maps = fpn(list(endpoints[1:]), training=False)
    assert len(feature_maps) == 5
    for i, feature_map in enumerate(feature_maps):
        diff = outputs.max_abs_diff(f"{photo}predict/feature_maps/{i}", feature_map)
        assert diff <= MAX_ABS_DIFF, i
