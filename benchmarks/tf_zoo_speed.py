"""The 13 TF2 Detection Model Zoo models of the catalog on this CPU: boxtune against bare Keras.

For each zoo model of the catalog (ids ``tensorflow-od1-…``), built with random weights and a
3-class label map (``init="random"``: no download, no network):

Training: boxtune's ``TensorFlowDetector.train_step`` (numpy batch in, targets padded on every
step, the fixed-signature ``tf.function`` with loss, gradient clipping, non-finite guard and the
Keras optimizer) against a bare Keras step on the same Keras model (``detector.model``): a plain
``@tf.function`` with ``tf.GradientTape``, the same loss (``ssd_losses`` with the network's own
loss config), the same preprocessing (``detector.network.preprocess``), an optimizer of the same
type and settings (no clipping, no guard), fed tensors padded once beforehand. The trainable
layers are the catalog defaults' (the RetinaNets train only the head; ``--train-all`` trains
every layer of every model). Batches are random uint8 images (fixed numpy seed) with two boxes
each, built once before timing. As in ``tf_engine_speed.py``, the first step of each side
traces its ``tf.function`` and is reported apart (``first_step_s``); after one more warm-up
step each, timed blocks of ``--steps`` steps alternate bare, boxtune, ``--repeats`` times, and
the medians of the blocks are compared (``train_ratio`` = bare s/step / boxtune s/step).

Inference (batch 1, images at the model's input size): boxtune's Keras runner
(``detector.runner().predict([image])``: images in, Detections out, NMS included) against the
bare model (``detector.model(preprocessed, training=False)`` in a ``tf.function``, no
post-processing), blocks of ``--infer-images`` calls alternating the same way
(``infer_ratio`` = bare ms / boxtune ms).

Next to them: the zoo's published COCO mAP and speed (``published_coco_map``,
``published_speed_ms``). The zoo measured its speeds on an Nvidia V100 GPU at batch 1, so they
are not comparable to these CPU numbers, except in how they rank the models.

    .venv/bin/python benchmarks/tf_zoo_speed.py [--models fpnlite-320 --models efficientdet-d0]
        [--steps 2] [--repeats 2] [--infer-images 5] [--batch-size 2] [--train-all]

Prints one JSON object (progress on stderr). Each model is freed before the next one; the
largest (ResNet-152 at 1024 x 1024) need several GB.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
import traceback
from typing import Any

import numpy as np

# Before anything imports TensorFlow: the engine package sets up the import order (otherwise
# the process can segfault).
import boxtune.engines.tensorflow  # noqa: F401
from boxtune.catalog import ModelSpec, list_specs
from boxtune.engines.tensorflow.zoo.configs import ZOO_CONFIGS, is_zoo_architecture
from boxtune.labels import LabelMap
from tf_engine_speed import (
    Batch,
    Step,
    alternate,
    first_step_seconds,
    machine_facts,
    median_of,
    padded_tensors,
)

LABEL_MAP = LabelMap.from_categories({1: "a", 2: "b", 3: "c"})
BOXES_PER_IMAGE = 2
TRAIN_BATCHES = 2  # distinct batches each side cycles through
SEED = 0
NOTE = (
    "published_speed_ms / published_coco_map: the TF2 Detection Model Zoo's table (Nvidia V100 "
    "GPU, batch 1); not comparable to these CPU numbers except in ranking. params: the Keras "
    "model's weights with the 3-class head (published_params_m: with the zoo's 90-class head)"
)


def log(message: str) -> None:
    print(f"[tf_zoo_speed] {message}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        action="append",
        default=None,
        help="substring of the model id (repeatable or comma-separated; default: all 13)",
    )
    parser.add_argument("--steps", type=int, default=2, help="timed steps per block")
    parser.add_argument("--repeats", type=int, default=2, help="alternating timed blocks")
    parser.add_argument("--infer-images", type=int, default=5, help="timed images per block")
    parser.add_argument("--batch-size", type=int, default=2, help="training batch size")
    parser.add_argument(
        "--train-all",
        action="store_true",
        help="train every layer (default: the catalog's train_only_top_layer per model)",
    )
    return parser.parse_args()


def zoo_specs(filters: list[str] | None) -> list[ModelSpec]:
    """The catalog's zoo specs (catalog order), those whose id contains any of ``filters``."""
    specs = [s for s in list_specs("tensorflow") if is_zoo_architecture(s.architecture)]
    if len(specs) != len(ZOO_CONFIGS):
        log(f"warning: {len(specs)} zoo specs in the catalog, {len(ZOO_CONFIGS)} zoo configs")
    words = [w.strip() for f in filters or [] for w in f.split(",") if w.strip()]
    if words:
        specs = [s for s in specs if any(w in s.model_id for w in words)]
    return specs


# -- data --------------------------------------------------------------------------------------
def random_images(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    return rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def random_target(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    """``BOXES_PER_IMAGE`` boxes (pixel xyxy, sides 1/8 to 1/2 of the image), 0-based labels."""
    sides = rng.uniform(size / 8, size / 2, (BOXES_PER_IMAGE, 2))
    corners = rng.uniform(0, size - sides)
    boxes = np.concatenate([corners, corners + sides], axis=1).astype(np.float32)
    labels = rng.integers(0, len(LABEL_MAP), BOXES_PER_IMAGE)
    return {"boxes": boxes, "labels": labels}


def random_batches(rng: np.random.Generator, count: int, batch: int, size: int) -> list[Batch]:
    return [
        (random_images(rng, batch, size), [random_target(rng, size) for _ in range(batch)])
        for _ in range(count)
    ]


# -- model -------------------------------------------------------------------------------------
def build_detector(spec: ModelSpec, hp, head_only: bool):
    from boxtune.engines import get_engine

    engine = get_engine("tensorflow")
    engine.seed(SEED)
    detector = engine.create(spec, LABEL_MAP, init="random")
    detector.set_trainable(head_only=head_only)
    detector.configure_optimizer(hp)
    return detector


def hyperparameters(spec: ModelSpec, batch_size: int):
    from boxtune.train.hyperparameters import parse_hyperparameters

    return parse_hyperparameters(spec.model_id, {"batch_size": str(batch_size)})


# -- training ----------------------------------------------------------------------------------
def boxtune_train(detector, batches: list[Batch], last: dict) -> Step:
    """boxtune's step, one batch per call in turn; ``last`` keeps the latest losses."""
    position = iter(range(sys.maxsize))

    def step() -> None:
        images, targets = batches[next(position) % len(batches)]
        last.update(detector.train_step(images, targets))

    return step


def bare_train(detector, tensors: list[tuple]) -> tuple[Step, Any]:
    """A bare Keras step on ``detector.model`` with its own optimizer (the detector's type and
    settings), over pre-padded tensors; and its tracing counter."""
    import tensorflow as tf

    from boxtune.engines.tensorflow.ssd_loss import ssd_losses

    model, network = detector.model, detector.network
    anchors, loss_config = tf.constant(network.anchors), network.loss
    variables = model.trainable_variables
    optimizer = type(detector.optimizer).from_config(detector.optimizer.get_config())
    optimizer.build(variables)

    @tf.function
    def train_step(images, boxes, classes, valid):
        with tf.GradientTape() as tape:
            codes, logits = model(network.preprocess(images), training=True)
            losses = ssd_losses(codes, logits, anchors, boxes, classes, valid, config=loss_config)
        gradients = tape.gradient(losses["loss"], variables)
        # Variables without a gradient (the zoo EfficientNet's unused top), left out at trace
        # time as boxtune's step does.
        pairs = [(g, v) for g, v in zip(gradients, variables, strict=True) if g is not None]
        optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        return losses["loss"]

    position = iter(range(sys.maxsize))

    def step() -> None:
        float(train_step(*tensors[next(position) % len(tensors)]))  # the loss, as a user logs it

    return step, train_step.experimental_get_tracing_count


def compare_training(detector, batches: list[Batch], args) -> dict:
    last: dict[str, float] = {}
    boxtune = boxtune_train(detector, batches, last)
    bare, bare_traces = bare_train(detector, padded_tensors(batches, detector.image_size))
    log("training: first steps (tracing)")
    first = {"bare": first_step_seconds(bare), "boxtune": first_step_seconds(boxtune)}
    log(f"training: {args.repeats} x {args.steps} steps per side, alternating")
    blocks = alternate({"bare": bare, "boxtune": boxtune}, args.steps, args.repeats)
    bare_s, boxtune_s = median_of(blocks["bare"]), median_of(blocks["boxtune"])
    return {
        "train_s_per_step": round(boxtune_s, 4),
        "bare_train_s_per_step": round(bare_s, 4),
        "train_ratio": round(bare_s / boxtune_s, 3),
        "first_step_s": {k: round(v, 2) for k, v in first.items()},
        "train_traces": {"boxtune": detector.trace_counts["train_step"], "bare": bare_traces()},
        "last_loss": round(last["loss"], 4),
    }


# -- inference ---------------------------------------------------------------------------------
def compare_inference(detector, images: np.ndarray, args) -> dict:
    import tensorflow as tf

    model, network = detector.model, detector.network
    runner = detector.runner()
    singles = list(images)  # [S, S, 3] each
    tensors = [tf.constant(image[None]) for image in singles]

    @tf.function
    def bare_forward(batch):
        return model(network.preprocess(batch), training=False)

    boxtune_at, bare_at = iter(range(sys.maxsize)), iter(range(sys.maxsize))

    def boxtune() -> None:
        runner.predict([singles[next(boxtune_at) % len(singles)]])

    def bare() -> None:
        codes, _ = bare_forward(tensors[next(bare_at) % len(tensors)])
        codes.numpy()

    log("inference: first calls (tracing)")
    first = {"bare": first_step_seconds(bare), "boxtune": first_step_seconds(boxtune)}
    log(f"inference: {args.repeats} x {len(singles)} images per side, alternating")
    blocks = alternate({"bare": bare, "boxtune": boxtune}, len(singles), args.repeats)
    bare_ms, boxtune_ms = (1000 * median_of(blocks[k]) for k in ("bare", "boxtune"))
    return {
        "infer_ms_per_image": round(boxtune_ms, 1),
        "bare_infer_ms_per_image": round(bare_ms, 1),
        "infer_ratio": round(bare_ms / boxtune_ms, 3),
        "first_infer_s": {k: round(v, 2) for k, v in first.items()},
    }


# -- one model ---------------------------------------------------------------------------------
def peak_rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KiB on Linux


def benchmark_model(spec: ModelSpec, args) -> dict:
    rng = np.random.default_rng(SEED)  # the same data whichever models run before
    hp = hyperparameters(spec, args.batch_size)
    head_only = False if args.train_all else hp.train_only_top_layer
    result: dict[str, Any] = {
        "architecture": spec.architecture,
        "image_size": spec.image_size,
        "published_speed_ms": spec.speed_ms,
        "published_coco_map": spec.coco_map,
        "published_params_m": spec.params_m,
        "head_only": head_only,
        "optimizer": hp.optimizer,
    }
    started = time.perf_counter()
    log(f"{spec.model_id}: building ({spec.image_size} x {spec.image_size}, random weights)")
    detector = build_detector(spec, hp, head_only)
    result["build_s"] = round(time.perf_counter() - started, 1)
    result["params"] = detector.num_parameters()
    result["trainable_params"] = detector.num_parameters(trainable_only=True)
    batches = random_batches(rng, TRAIN_BATCHES, args.batch_size, spec.image_size)
    result.update(compare_training(detector, batches, args))
    images = random_images(rng, max(1, args.infer_images), spec.image_size)
    result.update(compare_inference(detector, images, args))
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["peak_rss_mb_so_far"] = peak_rss_mb()
    return result


def free_memory() -> None:
    import keras

    keras.backend.clear_session()
    gc.collect()


def main() -> None:
    args = parse_args()
    specs = zoo_specs(args.models)
    if not specs:
        sys.exit(f"no zoo model id contains any of {args.models}")
    environment = machine_facts()  # imports TensorFlow (after boxtune.engines.tensorflow)
    log(f"{len(specs)} model(s): {', '.join(s.model_id for s in specs)}")
    models: dict[str, dict] = {}
    for spec in specs:
        started = time.perf_counter()
        try:
            models[spec.model_id] = benchmark_model(spec, args)
        except Exception as exc:  # one model's failure must not hide the others' numbers
            traceback.print_exc(file=sys.stderr)
            models[spec.model_id] = {
                "architecture": spec.architecture,
                "error": f"{type(exc).__name__}: {exc}",
                "wall_s": round(time.perf_counter() - started, 1),
            }
        log(f"{spec.model_id}: done in {time.perf_counter() - started:.0f} s")
        free_memory()
    result = {
        "benchmark": "tf_zoo_speed",
        "batch_size": args.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "infer_images": args.infer_images,
        "train_all": args.train_all,
        "data": f"random uint8 images (numpy seed {SEED}), {BOXES_PER_IMAGE} random boxes each, "
        f"{TRAIN_BATCHES} training batches per model; a {len(LABEL_MAP)}-class label map; "
        "random weights (init='random')",
        "note": NOTE,
        "environment": environment,
        "models": models,
    }
    print(json.dumps(result, indent=2))
    if any("error" in m for m in models.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
