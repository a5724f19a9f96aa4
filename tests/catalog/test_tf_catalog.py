"""The managed algorithm's TensorFlow models in the catalog: the 13 fine-tunable TF2 zoo
detectors (``tensorflow-od1-…``) and the 36 TF Hub inference models (``tensorflow-od-…``)."""

from __future__ import annotations

import json

import pytest
from tests.engines.tensorflow.zoo.reference import ZOO_MODELS, config_facts, manifest_params_total

from boxtune.catalog import (
    COCO_91_CATEGORIES,
    check_fine_tunable,
    get_spec,
    is_hub_spec,
    is_zoo_spec,
    list_specs,
)
from boxtune.catalog.tf_hub import HUB_MODELS, hub_model
from boxtune.catalog.tf_zoo import ZOO_BY_ID, zoo_model
from boxtune.cli import main
from boxtune.errors import ModelError
from boxtune.sdk.listing import list_models
from boxtune.train.hyperparameters import retrieve_default

# The ids as the managed algorithm names them (its documentation's table): D0-D2 say tpu-8
# where the zoo's names say tpu-32.
_OD1_TABLE = """
    ssd-resnet50-v1-fpn-640x640-coco17-tpu-8        ssd_resnet50_v1_fpn_640x640_coco17_tpu-8
    ssd-resnet50-v1-fpn-1024x1024-coco17-tpu-8      ssd_resnet50_v1_fpn_1024x1024_coco17_tpu-8
    ssd-resnet101-v1-fpn-640x640-coco17-tpu-8       ssd_resnet101_v1_fpn_640x640_coco17_tpu-8
    ssd-resnet101-v1-fpn-1024x1024-coco17-tpu-8     ssd_resnet101_v1_fpn_1024x1024_coco17_tpu-8
    ssd-resnet152-v1-fpn-640x640-coco17-tpu-8       ssd_resnet152_v1_fpn_640x640_coco17_tpu-8
    ssd-resnet152-v1-fpn-1024x1024-coco17-tpu-8     ssd_resnet152_v1_fpn_1024x1024_coco17_tpu-8
    ssd-mobilenet-v1-fpn-640x640-coco17-tpu-8       ssd_mobilenet_v1_fpn_640x640_coco17_tpu-8
    ssd-mobilenet-v2-fpnlite-320x320-coco17-tpu-8   ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8
    ssd-mobilenet-v2-fpnlite-640x640-coco17-tpu-8   ssd_mobilenet_v2_fpnlite_640x640_coco17_tpu-8
    ssd-efficientdet-d0-512x512-coco17-tpu-8        efficientdet_d0_coco17_tpu-32
    ssd-efficientdet-d1-640x640-coco17-tpu-8        efficientdet_d1_coco17_tpu-32
    ssd-efficientdet-d2-768x768-coco17-tpu-8        efficientdet_d2_coco17_tpu-32
    ssd-efficientdet-d3-896x896-coco17-tpu-32       efficientdet_d3_coco17_tpu-32
"""
OD1_IDS = {
    f"tensorflow-od1-{suffix}": zoo_name
    for suffix, zoo_name in (line.split() for line in _OD1_TABLE.strip().splitlines())
}
# The ids the API's mscoco_label_map.pbtxt leaves out of 1..90, and a few it holds.
UNUSED_COCO_IDS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
SOME_COCO_IDS = {1: "person", 3: "car", 18: "dog", 44: "bottle", 72: "tv", 90: "toothbrush"}
ZOO_URL = "http://download.tensorflow.org/models/object_detection/tf2/20200711/"

OD1_SPECS = [get_spec(model_id) for model_id in OD1_IDS]
HUB_SPECS = [s for s in list_specs() if s.model_id.startswith("tensorflow-od-")]


def test_the_13_zoo_ids_map_onto_the_zoo_names():
    od1 = [s for s in list_specs() if is_zoo_spec(s)]
    assert {s.model_id: s.architecture for s in od1} == OD1_IDS
    assert sorted(OD1_IDS.values()) == sorted(ZOO_MODELS)  # the in-repo reference data's set
    assert od1[0].model_id == "tensorflow-od1-ssd-resnet50-v1-fpn-640x640-coco17-tpu-8"


@pytest.mark.parametrize("spec", OD1_SPECS, ids=lambda s: s.model_id)
def test_zoo_spec_facts(spec):
    zoo_name = spec.architecture
    assert spec.engine == "tensorflow" and spec.deployable and spec.fine_tunable
    assert not spec.offline and spec.license == "Apache-2.0"
    weights = spec.weights
    assert weights.describes == "detector" and weights.sha256 == ""  # none published
    assert weights.file_name == f"{zoo_name}.tar.gz"
    assert weights.url == ZOO_URL + weights.file_name
    # the parameters boxtune's network must have, and the input size, from the manifests
    assert spec.params_m == round(manifest_params_total(zoo_name) / 1e6, 2)
    assert zoo_model(spec).params == manifest_params_total(zoo_name)
    assert [spec.image_size] * 2 == config_facts(zoo_name)["image_size_hw"]
    assert config_facts(zoo_name)["num_classes"] == len(spec.class_names) == 90
    assert spec.coco_map > 20 and spec.speed_ms > 0
    assert zoo_model(zoo_name) is zoo_model(spec.model_id) is ZOO_BY_ID[spec.model_id]


def test_published_numbers_of_the_zoo_table():
    table = {
        s.model_id.removeprefix("tensorflow-od1-"): (s.coco_map, s.speed_ms) for s in OD1_SPECS
    }
    assert table["ssd-resnet50-v1-fpn-640x640-coco17-tpu-8"] == (34.3, 46)
    assert table["ssd-mobilenet-v2-fpnlite-320x320-coco17-tpu-8"] == (22.2, 22)
    assert table["ssd-efficientdet-d0-512x512-coco17-tpu-8"] == (33.6, 39)
    assert table["ssd-efficientdet-d3-896x896-coco17-tpu-32"] == (45.4, 95)


def test_zoo_class_names_follow_the_apis_coco_label_map():
    names = OD1_SPECS[0].class_names
    assert len(names) == 90
    by_id = dict(enumerate(names, start=1))  # the zoo head's label id i+1 is index i
    assert {i for i, name in by_id.items() if name == "N/A"} == UNUSED_COCO_IDS
    assert {i: by_id[i] for i in SOME_COCO_IDS} == SOME_COCO_IDS
    assert names == COCO_91_CATEGORIES[1:]
    assert all(s.class_names == names for s in OD1_SPECS + HUB_SPECS)


def test_large_zoo_models_train_only_the_head_with_a_smaller_batch():
    for spec in OD1_SPECS:
        hps = spec.default_hyperparameters
        large = spec.params_m > 30
        assert hps["train_only_top_layer"] == ("True" if large else "False"), spec.model_id
        assert hps["epochs"] == ("1" if large else "5")
        assert int(hps["batch_size"]) <= (2 if large else 3)
    large = {s.model_id for s in OD1_SPECS if s.params_m > 30}
    assert large == {m for m in OD1_IDS if "-resnet" in m}
    resnet50_1024 = get_spec("tensorflow-od1-ssd-resnet50-v1-fpn-1024x1024-coco17-tpu-8")
    assert resnet50_1024.default_hyperparameters["batch_size"] == "1"


def test_hub_ids_follow_their_handles():
    assert len(HUB_SPECS) == len(HUB_MODELS) == 36
    for spec in HUB_SPECS:
        model = hub_model(spec)
        rule = model.handle.removeprefix("tensorflow/").replace("/", "-").replace("_", "-")
        assert spec.model_id == f"tensorflow-od-{rule}"
        assert spec.architecture == f"tfhub:{model.handle}" and is_hub_spec(spec)
        assert spec.weights.url == f"https://tfhub.dev/{model.handle}?tf-hub-format=compressed"
        assert spec.weights.file_name == model.handle.replace("/", "_") + ".tar.gz"
        assert spec.deployable and not spec.fine_tunable and spec.weights.sha256 == ""
        assert spec.params_m is None and spec.default_hyperparameters == {}
        assert get_spec(model.fine_tune_instead).fine_tunable  # a real od1 alternative
    families = {spec.family.split(" (")[0] for spec in HUB_SPECS}
    assert families == {"CenterNet", "EfficientDet", "Faster R-CNN", "RetinaNet", "SSD MobileNet"}
    assert not any(is_hub_spec(s) for s in OD1_SPECS) and not any(map(is_zoo_spec, HUB_SPECS))


def test_hub_download_url_follows_the_mirror_variable(monkeypatch):
    model = hub_model(get_spec("tensorflow-od-efficientdet-d0-1"))
    assert model.download_url() == (
        "https://tfhub.dev/tensorflow/efficientdet/d0/1?tf-hub-format=compressed"
    )
    monkeypatch.setenv("BOXTUNE_TFHUB_BASE_URL", "http://mirror.example/hub/")
    assert model.download_url() == (
        "http://mirror.example/hub/tensorflow/efficientdet/d0/1?tf-hub-format=compressed"
    )


def test_training_a_hub_model_names_the_od1_model_to_fine_tune():
    with pytest.raises(ModelError) as err:
        check_fine_tunable(get_spec("tensorflow-od-retinanet-resnet50-v1-fpn-640x640-1"))
    text = str(err.value)
    assert "inference only" in text and "cannot be fine-tuned" in text
    assert "tensorflow-od1-ssd-resnet50-v1-fpn-640x640-coco17-tpu-8" in text
    for spec in OD1_SPECS:
        check_fine_tunable(spec)  # nothing to say


def test_models_list_shows_every_tensorflow_id(capsys):
    assert main(["models", "list"]) == 0
    table = capsys.readouterr().out
    lines = {line.split()[0]: line for line in table.splitlines() if line.startswith("tensorflow")}
    assert set(OD1_IDS) | {s.model_id for s in HUB_SPECS} <= set(lines)
    header = table.splitlines()[0]
    assert "FINE-TUNABLE" in header and "DEPLOYABLE AS IS" in header
    # PARAMS unknown, OFFLINE no, FINE-TUNABLE no, DEPLOYABLE AS IS yes
    assert lines["tensorflow-od-efficientdet-d0-1"].split()[-4:] == ["-", "no", "no", "yes"]
    assert "32.9M" in lines["tensorflow-od1-ssd-resnet50-v1-fpn-640x640-coco17-tpu-8"]

    assert main(["models", "list", "--json"]) == 0
    rows = {row["model_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["tensorflow-od-efficientdet-d0-1"]["fine_tunable"] is False
    assert rows["tensorflow-od1-ssd-efficientdet-d0-512x512-coco17-tpu-8"]["speed_ms"] == 39


def test_models_show_says_a_hub_model_is_inference_only(capsys):
    assert main(["models", "show", "tensorflow-od-efficientdet-d0-1"]) == 0
    shown = capsys.readouterr().out
    assert "https://tfhub.dev/tensorflow/efficientdet/d0/1?tf-hub-format=compressed" in shown
    assert "params_m: -" in shown and "None" not in shown
    assert "hyperparameters: none (inference only: deploy it as is)" in shown


@pytest.mark.parametrize("model_id", OD1_IDS)
def test_hyperparameters_command_gives_each_zoo_model_its_defaults(model_id, capsys):
    assert main(["hyperparameters", model_id]) == 0
    printed = json.loads(capsys.readouterr().out)
    spec = get_spec(model_id)
    assert printed["image_size"] == str(spec.image_size)
    for name, value in spec.default_hyperparameters.items():
        assert printed[name] == value
    assert retrieve_default(model_id) == printed


def test_listing_filters_tell_fine_tunable_from_inference_only():
    od = list_models(filter="task == od")
    assert set(od) == {s.model_id for s in HUB_SPECS}
    assert list_models(filter="framework == tensorflow and training_supported == false") == od
    od1 = list_models(filter="task == od1 and framework == tensorflow")
    assert set(OD1_IDS) <= set(od1) and not set(od) & set(od1)
    assert "tensorflow-od-efficientdet-d0-1" in list_models(filter="efficientdet")
