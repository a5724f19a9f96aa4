"""Pretrained zoo weights into a boxtune network: which keys a restore takes (the OD API's
``fine_tune_checkpoint_type`` modes, plus boxtune's default) and the class columns a model
keeps when its label map is a subset of COCO."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from boxtune.engines.tensorflow.zoo.checkpoint import RestoreReport, read_checkpoint, restore

if TYPE_CHECKING:
    from boxtune.engines.tensorflow.architecture import SSDNetwork

# new_head: everything but the class predictor (a new head for the user's classes; boxtune's
#   default, reinitialize_top_layer Auto/True);
# detection: the OD API's fine_tune_checkpoint_type "detection": the feature extractor only;
# full: every key (the pretrained 90 COCO classes, or the columns of ``keep_columns``).
RestoreMode = Literal["new_head", "detection", "full"]
FEATURE_EXTRACTOR_PREFIX = "model/_feature_extractor/"
PIPELINE_CONFIG = "pipeline.config"


def class_head_keys(network: SSDNetwork) -> set[str]:
    """The checkpoint keys of the class predictor's variables."""
    class_variables = {id(v) for layer in network.class_layers for v in layer.weights}
    return {key for key, v in network.checkpoint_map.items() if id(v) in class_variables}


def keep_class_columns(value: np.ndarray, columns: list[int], anchors_per_location: int):
    """A class predictor kernel or bias whose last axis is (anchor, class column) -> only
    ``columns`` (0 = background) of every anchor."""
    grouped = value.reshape(*value.shape[:-1], anchors_per_location, -1)
    kept = grouped[..., columns]
    return np.ascontiguousarray(kept.reshape(*value.shape[:-1], -1))


def restore_zoo_weights(
    network: SSDNetwork,
    checkpoint: str | Path,
    *,
    mode: RestoreMode = "new_head",
    keep_columns: list[int] | None = None,
    anchors_per_location: int,
) -> RestoreReport:
    """Assign a zoo checkpoint's values to ``network`` (every key placed or refused by name)."""
    values = read_checkpoint(checkpoint)
    head_keys = class_head_keys(network)
    if keep_columns is not None:
        # The output axis (anchor x class column) is the bias's; a separable head's depthwise
        # kernel has none.
        outputs = {values[key].shape[-1] for key in head_keys if values[key].ndim == 1}
        for key in head_keys:
            if values[key].shape[-1] in outputs:
                values[key] = keep_class_columns(values[key], keep_columns, anchors_per_location)
    if mode == "new_head":

        def skip(key: str) -> bool:
            return key in head_keys
    elif mode == "detection":

        def skip(key: str) -> bool:
            return not key.startswith(FEATURE_EXTRACTOR_PREFIX)
    else:
        skip = None
    return restore(network.checkpoint_map, values, skip=skip, where=str(checkpoint))


_BOX_CODER = re.compile(r"faster_rcnn_box_coder\s*\{([^}]*)\}")
_SCALE = re.compile(r"(y_scale|x_scale|height_scale|width_scale)\s*:\s*([-+0-9.eE]+)")


def pipeline_box_coder_scales(checkpoint: str | Path) -> tuple[float, float, float, float] | None:
    """The box coder scales of the ``pipeline.config`` a zoo tarball has next to its
    ``checkpoint/`` folder, or None when there is none (or it sets none)."""
    prefix = Path(checkpoint)
    for folder in (prefix.parent.parent, prefix.parent, prefix):
        config = folder / PIPELINE_CONFIG
        if config.is_file():
            match = _BOX_CODER.search(config.read_text(errors="replace"))
            if match is None:
                return None
            found = dict(_SCALE.findall(match.group(1)))
            # The proto's defaults where the config leaves a scale out.
            defaults = {"y_scale": 10.0, "x_scale": 10.0, "height_scale": 5.0, "width_scale": 5.0}
            y, x, h, w = (
                float(found.get(name, defaults[name]))
                for name in ("y_scale", "x_scale", "height_scale", "width_scale")
            )
            return y, x, h, w
    return None
