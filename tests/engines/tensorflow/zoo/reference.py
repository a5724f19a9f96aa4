"""The TF2 zoo reference data as the tests use it (the in-repo copy written by
``build_reference_data.py``): manifest keys and shapes for the 13 models, checkpoints written
from them, and the reference outputs of the two reference models."""

from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
FPNLITE_320 = "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8"
EFFICIENTDET_D0 = "efficientdet_d0_coco17_tpu-32"
REFERENCE_MODELS = (FPNLITE_320, EFFICIENTDET_D0)
ZOO_MODELS = (
    "ssd_resnet50_v1_fpn_640x640_coco17_tpu-8",
    "ssd_resnet50_v1_fpn_1024x1024_coco17_tpu-8",
    "ssd_resnet101_v1_fpn_640x640_coco17_tpu-8",
    "ssd_resnet101_v1_fpn_1024x1024_coco17_tpu-8",
    "ssd_resnet152_v1_fpn_640x640_coco17_tpu-8",
    "ssd_resnet152_v1_fpn_1024x1024_coco17_tpu-8",
    "ssd_mobilenet_v1_fpn_640x640_coco17_tpu-8",
    FPNLITE_320,
    "ssd_mobilenet_v2_fpnlite_640x640_coco17_tpu-8",
    EFFICIENTDET_D0,
    "efficientdet_d1_coco17_tpu-32",
    "efficientdet_d2_coco17_tpu-32",
    "efficientdet_d3_coco17_tpu-32",
)


@functools.cache
def _record(zoo_name: str) -> dict:
    path = DATA / "variables" / f"{zoo_name}.json.gz"
    return json.loads(gzip.decompress(path.read_bytes()))


def manifest_variables(zoo_name: str) -> dict[str, tuple[int, ...]]:
    """Every model key of the zoo's ckpt-0 (suffix removed, save_counter left out) -> shape."""
    return {key: tuple(shape) for key, shape in _record(zoo_name)["variables"]}


def manifest_counts(zoo_name: str) -> dict:
    return dict(_record(zoo_name)["counts"])


def manifest_params_total(zoo_name: str) -> int:
    return int(_record(zoo_name)["counts"]["params_total(model.variables)"])


def config_facts(zoo_name: str) -> dict:
    return _record(zoo_name)["config_facts"]


def _rule_value(key: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """The reference's documented weight rule (reference_meta.json, "weights.procedure")."""
    leaf = key.rsplit("/", 1)[-1]
    if leaf == "moving_variance":
        value = rng.uniform(0.5, 1.5, shape)
    elif leaf == "gamma":
        value = rng.uniform(0.8, 1.2, shape)
    elif leaf.endswith("kernel"):
        value = rng.standard_normal(shape) * 0.05
    elif leaf == "bifpn_combine_weights":
        value = rng.uniform(0.5, 1.5, shape)
    else:
        value = rng.standard_normal(shape) * 0.05
    return value.astype(np.float32)


def reference_values(zoo_name: str) -> dict[str, np.ndarray]:
    """The reference checkpoint's values, regenerated: one generator, keys in sorted order."""
    rng = np.random.default_rng(0)
    variables = manifest_variables(zoo_name)
    return {key: _rule_value(key, variables[key], rng) for key in sorted(variables)}


def random_values(zoo_name: str, seed: int = 1) -> dict[str, np.ndarray]:
    """Values for every manifest key (same rule, another seed): random but well-conditioned."""
    rng = np.random.default_rng(seed)
    variables = manifest_variables(zoo_name)
    return {key: _rule_value(key, shape, rng) for key, shape in variables.items()}


def write_checkpoint(values: dict[str, np.ndarray], directory: Path) -> str:
    """A TF2 checkpoint with exactly these keys (plus save_counter, as the zoo's ckpt-0 has),
    a ``checkpoint`` state file next to it; returns the prefix ``directory/ckpt-0``."""
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)
    prefix = str(directory / "ckpt-0")
    names = [key + SUFFIX for key in values] + ["save_counter" + SUFFIX]
    tensors = [tf.constant(value) for value in values.values()] + [tf.constant(1, tf.int64)]
    tf.raw_ops.SaveV2(
        prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors
    )
    (directory / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-0"\nall_model_checkpoint_paths: "ckpt-0"\n'
    )
    return prefix


def reference_checkpoint(zoo_name: str, directory: Path) -> str:
    """The reference model's checkpoint (bit-identical to the reference's ckpt-0)."""
    return write_checkpoint(reference_values(zoo_name), Path(directory))


def random_checkpoint(zoo_name: str, directory: Path, seed: int = 1) -> str:
    return write_checkpoint(random_values(zoo_name, seed), Path(directory))


def photo(name: str) -> np.ndarray:
    """The reference inputs: scikit-image's astronaut ("") or chelsea ("chelsea/")."""
    import skimage.data

    return skimage.data.chelsea() if name == "chelsea/" else skimage.data.astronaut()


@dataclass(frozen=True)
class ReferenceOutputs:
    arrays: dict[str, np.ndarray]

    def has_whole(self, key: str) -> bool:
        return f"whole/{key}" in self.arrays

    def full(self, key: str) -> np.ndarray:
        """A small array (or the astronaut's feature maps), whole."""
        try:
            return self.arrays[f"whole/{key}"]
        except KeyError:
            raise KeyError(f"{key} is stored sampled only; use max_abs_diff") from None

    def shape(self, key: str) -> tuple[int, ...]:
        if self.has_whole(key):
            return self.full(key).shape
        return tuple(int(n) for n in self.arrays[f"shape/{key}"])

    def max_abs_diff(self, key: str, actual) -> float:
        """Max |actual - reference| over the stored positions (all of them for whole arrays)."""
        actual = np.asarray(actual, np.float64)
        expected_shape = self.shape(key)
        if actual.shape != expected_shape:
            raise AssertionError(f"{key}: shape {actual.shape}, reference {expected_shape}")
        if self.has_whole(key):
            return float(np.abs(actual - self.full(key)).max())
        index = self.arrays[f"sample_index/{key}"]
        return float(np.abs(actual.reshape(-1)[index] - self.arrays[f"sample/{key}"]).max())

    def keys(self) -> list[str]:
        found = set()
        for name in self.arrays:
            kind, _, key = name.partition("/")
            if kind in ("whole", "sample"):
                found.add(key)
        return sorted(found)


@functools.cache
def reference_outputs(zoo_name: str) -> ReferenceOutputs:
    with np.load(DATA / "reference" / f"{zoo_name}.npz") as stored:
        return ReferenceOutputs({key: stored[key] for key in stored.files})
