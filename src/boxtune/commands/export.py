"""``boxtune export``: an artifact's model in another format (TFLite for TensorFlow models)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a trained model in another format (tflite for TensorFlow models)",
        description="Convert an artifact written by `boxtune train` (directory, model.tar.gz or "
        "s3:// URI) into a single file for another runtime. The export is checked against the "
        "model on an image before it is written; a failed check writes nothing.",
    )
    parser.add_argument("--model", required=True, help="artifact dir, model.tar.gz or s3:// URI")
    parser.add_argument("--format", required=True, help="export format, e.g. tflite")
    parser.add_argument(
        "--output", required=True, help="the file to write, e.g. model.tflite (or an s3:// URI)"
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
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
