"""Builds the in-repo copy of the TF2 zoo reference data (run by hand, where the full reference
exists; CI uses only what this writes).

    .venv/bin/python tests/engines/tensorflow/zoo/build_reference_data.py [REFERENCE_DIR]

- ``data/variables/<zoo>.json.gz``: each manifest's checkpoint keys and shapes, counts and
  config facts (the parts the tests use).
- ``data/reference/<zoo>.npz``: the reference outputs. Small arrays and the astronaut photo's
  feature maps (the box predictor's input) are kept whole; every other large array keeps 4096
  fixed positions (``sample_index/<key>``). The photos themselves come from scikit-image.

The reference checkpoints are not copied: ``reference.reference_checkpoint`` regenerates them
from the documented weight rule, and this script checks that they come out bit-identical.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
DEFAULT_SOURCE = Path("/work/shared/reference/tf2-zoo")
SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
SAMPLE_SIZE = 4096
WHOLE_MAX_SIZE = 10_000


def build_variables(source: Path) -> None:
    out = HERE / "data" / "variables"
    out.mkdir(parents=True, exist_ok=True)
    for manifest_path in sorted((source / "manifests").glob("*.json")):
        manifest = json.loads(manifest_path.read_text())
        variables = [
            [key.removesuffix(SUFFIX), shape]
            for key, shape in manifest["checkpoint_variables"]
            if key.startswith("model/")
        ]
        record = {
            "zoo_name": manifest["zoo_name"],
            "variables": variables,
            "counts": manifest["counts"],
            "config_facts": manifest["config_facts"],
            "fine_tune_checkpoint_restore": manifest["fine_tune_checkpoint_restore"],
            "zoo_tarball_pipeline_config": manifest.get("zoo_tarball_pipeline_config"),
        }
        target = out / f"{manifest['zoo_name']}.json.gz"
        target.write_bytes(gzip.compress(json.dumps(record).encode(), mtime=0))


def keep_whole(key: str, array: np.ndarray) -> bool:
    if key.endswith("input_image_uint8"):
        return False  # scikit-image has the photos
    if key.startswith("predict/feature_maps/"):
        return True
    return array.size <= WHOLE_MAX_SIZE


def build_outputs(source: Path) -> None:
    out = HERE / "data" / "reference"
    out.mkdir(parents=True, exist_ok=True)
    for folder in sorted((source / "reference").glob("*_coco17_*")):
        arrays = np.load(folder / "reference_outputs.npz")
        kept: dict[str, np.ndarray] = {}
        for key in arrays.files:
            array = arrays[key]
            if key.endswith("input_image_uint8"):
                continue
            if keep_whole(key, array):
                kept[f"whole/{key}"] = array
                continue
            rng = np.random.default_rng(sum(map(ord, key)))  # fixed per key
            index = np.sort(rng.choice(array.size, SAMPLE_SIZE, replace=False))
            kept[f"sample_index/{key}"] = index.astype(np.int64)
            kept[f"sample/{key}"] = array.reshape(-1)[index]
            kept[f"shape/{key}"] = np.array(array.shape, np.int64)
        np.savez_compressed(out / f"{folder.name}.npz", **kept)
        check_checkpoint(folder)


def check_checkpoint(folder: Path) -> None:
    import tensorflow as tf

    sys.path.insert(0, str(HERE.parents[3]))
    from tests.engines.tensorflow.zoo import reference

    stored = tf.train.load_checkpoint(str(folder / "checkpoint" / "ckpt-0"))
    regenerated = reference.reference_values(folder.name)
    for key, value in regenerated.items():
        if not np.array_equal(stored.get_tensor(key + SUFFIX), value):
            raise SystemExit(f"{folder.name}: the weight rule does not reproduce {key}")
    print(f"{folder.name}: {len(regenerated)} regenerated variables bit-identical")


if __name__ == "__main__":
    source_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE
    build_variables(source_dir)
    build_outputs(source_dir)
