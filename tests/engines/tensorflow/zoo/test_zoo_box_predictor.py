"""The zoo's WeightSharedConvolutionalBoxPredictor: its checkpoint keys and shapes are those of
every zoo model's ckpt-0, and loaded with a reference checkpoint it gives the TF Object
Detection API's own box encodings and class logits for the reference feature maps."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from tests.engines.tensorflow.zoo import reference

import boxtune.engines.tensorflow  # noqa: F401  (before keras: environment, import order)
from boxtune.engines.tensorflow.zoo.box_predictor import (
    CONFIG_ACTIVATIONS,
    box_predictor_checkpoint_map,
    build_weight_shared_box_predictor,
    class_head_layers,
    is_box_predictor_key,
    is_class_head_key,
)
from boxtune.engines.tensorflow.zoo.checkpoint import read_checkpoint, restore


def predictor_options(zoo_name: str) -> dict:
    """The builder's arguments, read from the model's config facts (its pipeline.config)."""
    facts = reference.config_facts(zoo_name)
    predictor = facts["box_predictor"]
    hyperparams = predictor["conv_hyperparams"]
    anchors = facts["anchor_generator"]
    return {
        "num_classes": facts["num_classes"],
        "depth": predictor["depth"],
        "num_layers_before_predictor": predictor["num_layers_before_predictor"],
        "kernel_size": predictor["kernel_size"],
        "use_depthwise": predictor["use_depthwise"],
        "share_prediction_tower": predictor["share_prediction_tower"],
        "anchors_per_location": anchors["anchors_per_location"],
        "class_prediction_bias_init": predictor["class_prediction_bias_init"],
        "bn_momentum": hyperparams["batch_norm"]["decay"],
        "bn_epsilon": hyperparams["batch_norm"]["epsilon"],
        "add_background_class": facts["add_background_class"],
        "activation": CONFIG_ACTIVATIONS[hyperparams["activation"]],
        "tower_use_bias": bool(hyperparams.get("force_use_bias", False)),
    }


def feature_depth(zoo_name: str) -> int:
    extractor = reference.config_facts(zoo_name)["feature_extractor"]
    if "bifpn" in extractor:
        return extractor["bifpn"]["num_filters"]
    return extractor["fpn"]["additional_layer_depth"]


def build(zoo_name: str) -> keras.Model:
    levels = reference.config_facts(zoo_name)["anchor_generator"]
    count = levels["max_level"] - levels["min_level"] + 1
    return build_weight_shared_box_predictor(
        feature_channels=[feature_depth(zoo_name)] * count, **predictor_options(zoo_name)
    )


@pytest.mark.parametrize("zoo_name", reference.ZOO_MODELS)
def test_the_checkpoint_map_has_every_box_predictor_key_with_its_shape(zoo_name):
    model = build(zoo_name)
    mapping = box_predictor_checkpoint_map(model)
    expected = {
        key: shape
        for key, shape in reference.manifest_variables(zoo_name).items()
        if is_box_predictor_key(key)
    }
    assert sorted(mapping) == sorted(expected)
    assert {key: tuple(v.shape) for key, v in mapping.items()} == expected
    # every variable of the sub-model exactly once
    assert len({id(v) for v in mapping.values()}) == len(mapping) == len(model.weights)
    assert {id(v) for v in model.weights} == {id(v) for v in mapping.values()}


def test_the_class_head_is_the_layer_of_the_class_logits():
    zoo_name = reference.EFFICIENTDET_D0
    model = build(zoo_name)
    (head,) = class_head_layers(model)
    mapping = box_predictor_checkpoint_map(model)
    class_keys = [key for key in mapping if is_class_head_key(key)]
    assert len(class_keys) == 3  # depthwise, pointwise kernel, bias
    assert {id(mapping[key]) for key in class_keys} == {id(v) for v in head.weights}
    # 9 anchors per location x 90 classes (EfficientDet: no background column)
    assert tuple(head.bias.shape) == (810,)
    np.testing.assert_allclose(head.bias.numpy(), -4.6, atol=1e-6)


@pytest.fixture(scope="module", params=reference.REFERENCE_MODELS)
def loaded(request, tmp_path_factory):
    """(zoo name, its predictor holding the reference checkpoint's values)."""
    zoo_name = request.param
    prefix = reference.reference_checkpoint(zoo_name, tmp_path_factory.mktemp("ckpt"))
    values = read_checkpoint(prefix)
    model = build(zoo_name)
    report = restore(
        box_predictor_checkpoint_map(model),
        {k: v for k, v in values.items() if is_box_predictor_key(k)},
        where=prefix,
    )
    assert report.num_restored == len(model.weights) and not report.skipped
    return zoo_name, model


def test_it_gives_the_apis_box_encodings_and_class_logits(loaded):
    zoo_name, model = loaded
    outputs = reference.reference_outputs(zoo_name)
    features = [outputs.full(f"predict/feature_maps/{i}") for i in range(5)]
    box_encodings, class_predictions = model(features, training=False)
    assert outputs.max_abs_diff("predict/box_encodings", box_encodings) <= 1e-4
    assert (
        outputs.max_abs_diff("predict/class_predictions_with_background", class_predictions) <= 1e-4
    )
