"""The TensorFlow engine's speed against bare Keras (training) and ONNX Runtime (serving).

Training: boxtune's ``TensorFlowDetector.train_step`` (numpy batch in, targets padded on every
step, the fixed-signature ``tf.function`` with loss, gradient clipping, non-finite guard and
the Keras optimizer) against a bare Keras loop on the same Keras model (``detector.model``),
the same loss (``ssd_losses``), the same preprocessing and the same batches: a plain
``@tf.function`` step with ``tf.GradientTape`` and ``keras.optimizers.Adam.apply`` (the same
Adam settings, no clipping, no guard), fed tensors padded once beforehand. The batches come
from ``make_loader`` over the generated sample dataset (training augmentation on) and are built
once before timing, so neither side pays for data loading. The first step of each side traces
its ``tf.function`` and is reported apart (``first_step_s``); after one more warm-up step each,
timed blocks of ``--steps`` steps alternate bare, boxtune, ``--repeats`` times (this VM drifts
by 10-20 % within minutes), and the medians of the blocks are compared.

Serving: the artifact (``write_artifact``) holds the same ``detect_batch`` signature twice, as
a SavedModel and as ``model.onnx`` (tf2onnx, NMS included). Both runtimes are timed as
boxtune's runners (``predict``: images in, Detections out) and as the bare signature / bare
ONNX Runtime session, batch 1 and 8, on the same images; the ONNX speed counts only when both
give the same boxes on those images.

    .venv/bin/python benchmarks/tf_engine_speed.py [--image-size 300] [--batch-size 8]
        [--steps 10] [--repeats 3] [--model-id ...]

Prints one JSON object; ``train.ratio`` = bare s/step / boxtune s/step (must be >= 0.95).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from boxtune.catalog import TF_PERSON_MODEL_ID

SERVE_BATCHES = (1, 8)
BOX_TOLERANCE = 1e-4  # normalised coordinates: 0.03 px at 300 px

Batch = tuple[np.ndarray, list[dict[str, Any]]]
Step = Callable[[], None]


def log(message: str) -> None:
    print(f"[tf_engine_speed] {message}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (calls) per block")
    parser.add_argument("--repeats", type=int, default=3, help="alternating timed blocks")
    parser.add_argument("--model-id", default=TF_PERSON_MODEL_ID)
    return parser.parse_args()


# -- data --------------------------------------------------------------------------------------
def sample_batches(root: Path, hp, count: int, *, augment: bool) -> tuple[list[Batch], Any]:
    """``count`` loader batches of the generated sample dataset, and its label map."""
    from boxtune.data import generate_sample_dataset, make_loader, read_dataset
    from boxtune.train.datasets import augment_config

    images = count * hp.batch_size
    dataset = read_dataset(generate_sample_dataset(root, images=images, seed=0, overwrite=True))
    loader = make_loader(
        dataset,
        dataset.label_map,
        hp.image_size,
        hp.batch_size,
        augment=augment_config(hp) if augment else None,
        shuffle=augment,
        num_workers=0,
        seed=hp.seed,
        drop_last=True,
    )
    return [(b.images, b.targets) for b in loader], dataset.label_map


# -- training ----------------------------------------------------------------------------------
def hyperparameters(model_id: str, image_size: int, batch_size: int):
    from boxtune.train.hyperparameters import parse_hyperparameters

    return parse_hyperparameters(
        model_id, {"image_size": str(image_size), "batch_size": str(batch_size)}
    )


def build_detector(model_id: str, label_map, hp):
    """The detector as ``boxtune train`` sets it up (pretrained, new class head)."""
    from boxtune.catalog import get_spec
    from boxtune.engines import get_engine

    engine = get_engine("tensorflow")
    engine.seed(hp.seed)
    spec = dataclasses.replace(get_spec(model_id), image_size=hp.image_size)
    detector = engine.create(spec, label_map)
    detector.set_trainable(head_only=hp.train_only_top_layer)
    detector.configure_optimizer(hp)
    return detector


def boxtune_steps(detector, batches: list[Batch]) -> Step:
    """boxtune's own step over the loader's numpy batches, one batch per call, in turn."""
    position = iter(range(sys.maxsize))

    def step() -> None:
        images, targets = batches[next(position) % len(batches)]
        detector.train_step(images, targets)

    return step


def padded_tensors(batches: list[Batch], image_size: int) -> list[tuple]:
    """The batches as the bare loop takes them: tensors, targets padded once."""
    import tensorflow as tf

    from boxtune.engines.tensorflow.targets import DEFAULT_MAX_BOXES, pad_targets

    out = []
    for images, targets in batches:
        padded = pad_targets(targets, image_size, DEFAULT_MAX_BOXES)
        out.append(tuple(tf.constant(a) for a in (images, *padded)))
    return out


def bare_keras_steps(detector, hp, tensors: list[tuple]) -> tuple[Step, Callable[[], int]]:
    """A bare Keras training step on ``detector.model`` (its own Adam, same settings), over
    pre-padded tensors; and a function that says how often it traced."""
    import keras
    import tensorflow as tf

    from boxtune.engines.tensorflow.ssd_loss import ssd_losses

    model, preprocess = detector.model, detector.network.preprocess
    anchors = tf.constant(detector.network.anchors)
    variables = model.trainable_variables
    optimizer = keras.optimizers.Adam(
        learning_rate=hp.learning_rate, beta_1=hp.beta_1, beta_2=hp.beta_2, epsilon=hp.epsilon
    )
    optimizer.build(variables)

    @tf.function
    def train_step(images, boxes, classes, valid):
        with tf.GradientTape() as tape:
            codes, logits = model(preprocess(images), training=True)
            loss = ssd_losses(codes, logits, anchors, boxes, classes, valid)["loss"]
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    position = iter(range(sys.maxsize))

    def step() -> None:
        float(train_step(*tensors[next(position) % len(tensors)]))  # the loss, as a user logs it

    return step, train_step.experimental_get_tracing_count


def timed(step: Step, calls: int) -> dict[str, float]:
    """Wall and CPU seconds per call of ``calls`` calls."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(calls):
        step()
    return {
        "s_per_call": (time.perf_counter() - started) / calls,
        "cpu_s_per_call": (time.process_time() - cpu_started) / calls,
    }


def alternate(candidates: dict[str, Step], calls: int, repeats: int) -> dict[str, list[dict]]:
    """Timed blocks of each candidate in turn (a, b, a, b, ...), ``repeats`` rounds."""
    blocks: dict[str, list[dict]] = {name: [] for name in candidates}
    for repeat in range(max(1, repeats)):
        for name, step in candidates.items():
            blocks[name].append(timed(step, calls))
            log(f"  round {repeat + 1}: {name} {blocks[name][-1]['s_per_call']:.3f} s/call")
    return blocks


def median_of(blocks: list[dict], key: str = "s_per_call") -> float:
    return statistics.median(b[key] for b in blocks)


def first_step_seconds(step: Step) -> float:
    """The first call (it traces the tf.function), then one more as warm-up."""
    seconds = timed(step, 1)["s_per_call"]
    step()
    return seconds


def compare_training(detector, hp, batches: list[Batch], steps: int, repeats: int) -> dict:
    boxtune = boxtune_steps(detector, batches)
    bare, bare_traces = bare_keras_steps(detector, hp, padded_tensors(batches, hp.image_size))
    log("training: first steps (tracing)")
    first = {"bare": first_step_seconds(bare), "boxtune": first_step_seconds(boxtune)}
    log(f"training: {repeats} x {steps} steps per side, alternating")
    blocks = alternate({"bare": bare, "boxtune": boxtune}, steps, repeats)
    bare_s, boxtune_s = median_of(blocks["bare"]), median_of(blocks["boxtune"])
    bare_cpu, boxtune_cpu = (median_of(blocks[k], "cpu_s_per_call") for k in ("bare", "boxtune"))
    return {
        "boxtune_s_per_step": round(boxtune_s, 4),
        "bare_s_per_step": round(bare_s, 4),
        "ratio": round(bare_s / boxtune_s, 3),
        "ratio_ok": bare_s / boxtune_s >= 0.95,
        "boxtune_cpu_s_per_step": round(boxtune_cpu, 4),
        "bare_cpu_s_per_step": round(bare_cpu, 4),
        "cpu_ratio": round(bare_cpu / boxtune_cpu, 3),
        "cpu_ratio_ok": bare_cpu / boxtune_cpu >= 0.95,
        "first_step_s": {k: round(v, 2) for k, v in first.items()},
        "traces": {"boxtune": detector.trace_counts["train_step"], "bare": bare_traces()},
        "pairs": [
            {
                "bare_s_per_step": round(b["s_per_call"], 4),
                "boxtune_s_per_step": round(x["s_per_call"], 4),
            }
            for b, x in zip(blocks["bare"], blocks["boxtune"], strict=True)
        ],
    }


# -- serving -----------------------------------------------------------------------------------
def export_artifact(detector, directory: Path):
    from boxtune.artifacts import load_artifact, write_artifact

    return load_artifact(write_artifact(detector, directory))


def savedmodel_signature(saved_model: Path) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The SavedModel's ``detect_batch`` signature alone: uint8 batch in, numpy outputs."""
    import tensorflow as tf

    from boxtune.engines.tensorflow.saved_model import BATCH_SIGNATURE

    loaded = tf.saved_model.load(str(saved_model))  # referenced below: it owns the variables

    def detect(batch: np.ndarray) -> dict[str, np.ndarray]:
        out = loaded.signatures[BATCH_SIGNATURE](images=tf.constant(batch))
        return {k: v.numpy() for k, v in out.items()}

    return detect


def output_differences(ref: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> dict:
    """How far ``out`` is from ``ref``: the kept detections' boxes and scores, and each
    anchor's decoded box (order-free)."""
    same_counts = bool(np.array_equal(ref["num_detections"], out["num_detections"]))
    rows = np.arange(ref["detection_boxes"].shape[1])[None, :] < ref["num_detections"][:, None]
    return {
        "same_num_detections": same_counts,
        "same_classes": bool(
            np.array_equal(ref["detection_classes"][rows], out["detection_classes"][rows])
        ),
        "max_abs_diff_detection_boxes": float(
            np.abs(ref["detection_boxes"][rows] - out["detection_boxes"][rows]).max(initial=0.0)
        ),
        "max_abs_diff_detection_scores": float(
            np.abs(ref["detection_scores"][rows] - out["detection_scores"][rows]).max(initial=0.0)
        ),
        "max_abs_diff_raw_detection_boxes": float(
            np.abs(ref["raw_detection_boxes"] - out["raw_detection_boxes"]).max()
        ),
    }


def boxes_agree(differences: dict) -> bool:
    return (
        differences["same_num_detections"]
        and differences["same_classes"]
        and differences["max_abs_diff_detection_boxes"] <= BOX_TOLERANCE
    )


def serving_speed(
    candidates: dict[str, Callable[[np.ndarray], Any]], images: np.ndarray, calls: int, repeats: int
) -> dict:
    """ms/image of each candidate at each serving batch size, alternating timed blocks."""
    result: dict[str, dict[str, float]] = {name: {} for name in candidates}
    for batch in SERVE_BATCHES:
        inputs = images[:batch]
        steps = {name: (lambda fn=fn, x=inputs: fn(x)) for name, fn in candidates.items()}
        for step in steps.values():
            step()  # warm-up
        log(f"serving: batch {batch}")
        blocks = alternate(steps, calls, repeats)
        for name in candidates:
            result[name][f"batch{batch}"] = round(1000 * median_of(blocks[name]) / batch, 2)
    return {f"{name}_ms_per_image": speeds for name, speeds in result.items()}


def compare_serving(detector, directory: Path, images: np.ndarray, args) -> dict:
    from boxtune.engines import get_engine
    from boxtune.engines.tensorflow.onnx_export import ONNX_FILE, OnnxModel
    from boxtune.engines.tensorflow.saved_model import SAVED_MODEL_DIR

    log("serving: writing the artifact (SavedModel + model.onnx)")
    started = time.perf_counter()
    artifact = export_artifact(detector, directory)
    export_s = time.perf_counter() - started
    engine = get_engine("tensorflow")
    onnx_runner = engine.load_runner(artifact, "onnxruntime")
    savedmodel_runner = engine.load_runner(artifact, "savedmodel")
    signature = savedmodel_signature(artifact.directory / SAVED_MODEL_DIR)
    bare_onnx = OnnxModel(artifact.directory / ONNX_FILE)
    differences = output_differences(signature(images), bare_onnx(images))
    candidates: dict[str, Callable[[np.ndarray], Any]] = {
        "savedmodel_runner": lambda batch: savedmodel_runner.predict(list(batch)),
        "savedmodel_signature": signature,
    }
    if boxes_agree(differences):
        candidates["onnx_runner"] = lambda batch: onnx_runner.predict(list(batch))
        candidates["onnxruntime_session"] = bare_onnx
    result: dict[str, Any] = {
        "write_artifact_s": round(export_s, 1),
        "onnx_vs_savedmodel": differences,
    }
    result.update(serving_speed(candidates, images, args.steps, args.repeats))
    if "onnx_runner" in candidates:
        tf_ms = result["savedmodel_runner_ms_per_image"]
        ort_ms = result["onnx_runner_ms_per_image"]
        result["onnx_speedup"] = {k: round(tf_ms[k] / ort_ms[k], 2) for k in tf_ms}
    return result


# -- report ------------------------------------------------------------------------------------
def machine_facts() -> dict:
    import keras
    import tensorflow as tf

    return {
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def main() -> None:
    args = parse_args()
    hp = hyperparameters(args.model_id, args.image_size, args.batch_size)
    with tempfile.TemporaryDirectory(prefix="boxtune-tf-speed-") as tmp:
        log("data: generating the sample dataset")
        batches, label_map = sample_batches(Path(tmp) / "train", hp, 4, augment=True)
        serve_hp = dataclasses.replace(hp, batch_size=max(SERVE_BATCHES))
        serve_batches, _ = sample_batches(Path(tmp) / "serve", serve_hp, 1, augment=False)
        log("model: building the detector")
        detector = build_detector(args.model_id, label_map, hp)
        train = compare_training(detector, hp, batches, args.steps, args.repeats)
        serve = compare_serving(detector, Path(tmp) / "artifact", serve_batches[0][0], args)
    result = {
        "benchmark": "tf_engine_speed",
        "model_id": args.model_id,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "data": f"sample dataset (generate_sample_dataset, seed 0): {len(batches)} make_loader "
        f"batches with training augmentation; serving on {max(SERVE_BATCHES)} un-augmented images",
        **machine_facts(),
        "train": train,
        "serve": serve,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
