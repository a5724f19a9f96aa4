"""``boxtune export``: an artifact's model in another format (TFLite for TensorFlow models), or
the artifact with an int8 model beside its fp32 one (``--quantize int8``)."""

from __future__ import annotations

import argparse

DEFAULT_CALIBRATION_IMAGES = 32


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a trained model in another format (tflite for TensorFlow models), or "
        "quantized to int8",
        description="Convert an artifact written by `boxtune train` (directory, model.tar.gz or "
        "s3:// URI) into a single file for another runtime (--format), or write a new artifact "
        "that also holds an int8 model calibrated on your images (--quantize int8; served by "
        "default from that artifact, or with --backend onnxruntime-int8). Every export is "
        "checked against the model before it is written; a failed check writes nothing.",
    )
    parser.add_argument("--model", required=True, help="artifact dir, model.tar.gz or s3:// URI")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--format", help="export format, e.g. tflite")
    what.add_argument(
        "--quantize",
        choices=["int8"],
        help="static int8 quantization (ONNX Runtime), calibrated on --calibration-data",
    )
    parser.add_argument(
        "--output",
        required=True,
        help="the file to write, e.g. model.tflite; with --quantize, the new artifact "
        "directory (or the input artifact itself, replaced atomically); or an s3:// URI",
    )
    parser.add_argument(
        "--calibration-data",
        help="with --quantize: a dataset (folder or s3:// prefix with images/ and "
        "annotations.json) of images like those the model will serve, e.g. its training data",
    )
    parser.add_argument(
        "--calibration-images",
        type=int,
        default=DEFAULT_CALIBRATION_IMAGES,
        help="with --quantize: how many of its images calibrate (default: %(default)s)",
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    if args.quantize:
        return _quantize(args)
    import tempfile
    from pathlib import Path

    from boxtune import engines, storage
    from boxtune.artifacts import load_artifact

    remote = storage.is_remote(args.output)
    if remote:
        storage.check_destination(args.output)  # before minutes of conversion
    artifact = load_artifact(args.model)
    engine = engines.get_engine(artifact.engine)
    with tempfile.TemporaryDirectory(prefix="boxtune-export-") as staging:
        target = Path(staging) / "export" if remote else Path(args.output).expanduser()
        exported = engine.export_as(artifact, args.format, target)
        if remote:
            storage.upload(exported.path, args.output)
    print(
        f"wrote {args.output} ({exported.format}, {exported.size_bytes / 1e6:.1f} MB); "
        f"checked: {exported.check}"
    )
    return 0


def _quantize(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from boxtune import engines, storage
    from boxtune.artifacts import load_artifact, write_derived_artifact
    from boxtune.errors import HyperparameterError

    if not args.calibration_data:
        raise HyperparameterError(
            "--quantize int8 needs images to calibrate on",
            where="--calibration-data",
            hint="pass the training dataset (or any dataset of images like those the model "
            "will serve): --calibration-data data/train",
        )
    if args.calibration_images < 1:
        raise HyperparameterError(
            f"--calibration-images must be at least 1, got {args.calibration_images}",
            where="--calibration-images",
            hint=f"the default, {DEFAULT_CALIBRATION_IMAGES}, calibrates well",
        )
    if storage.is_remote(args.output):
        storage.check_destination(args.output)
    artifact = load_artifact(args.model)
    engine = engines.get_engine(artifact.engine)
    images = _calibration_images(args.calibration_data, args.calibration_images)
    with tempfile.TemporaryDirectory(prefix="boxtune-int8-") as staging:
        quantized = engine.quantize_int8(artifact, images, Path(staging))
        size_mb = quantized.path.stat().st_size / 1e6
        record = {**quantized.record, "calibration_data": str(args.calibration_data)}
        write_derived_artifact(
            artifact,
            args.output,
            extra_files={quantized.name: quantized.path},
            manifest_updates={"quantization": record},
        )
    check = record["check"]
    found = (
        f"{check['reproduced']} of {check['confident_detections']} confident fp32 detections "
        f"found again, scores within {check['max_score_change']}"
        if check["confident_detections"]
        else "no confident detections on the calibration images to compare"
    )
    found += f"; class scores within {check['score_error_p999']} (99.9th percentile)"
    print(
        f"wrote {args.output}: {artifact.model_id} with {quantized.name} "
        f"({size_mb:.1f} MB), "
        f"calibrated on {len(images)} images; checked: {found}"
    )
    return 0


def _calibration_images(location: str, count: int) -> list:
    """``count`` images of the dataset at ``location``, spread over it (a fixed choice)."""
    import numpy as np

    from boxtune.data import read_dataset
    from boxtune.evaluate.inference import image_path, read_pixels

    dataset = read_dataset(location)
    records = dataset.images
    if len(records) > count:
        picked = np.random.default_rng(0).choice(len(records), count, replace=False)
        records = [records[i] for i in sorted(picked)]
    return [read_pixels(image_path(dataset, record)) for record in records]
