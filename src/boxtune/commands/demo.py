"""``boxtune demo``: the guided tour (generate data, fine-tune, evaluate, serve, query)."""

from __future__ import annotations

import argparse
from pathlib import Path

from boxtune.commands import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    from boxtune.demo import (
        DEFAULT_EPOCHS,
        DEFAULT_IMAGE_SIZE,
        DEFAULT_TEST_IMAGES,
        DEFAULT_TRAIN_IMAGES,
    )

    parser = subparsers.add_parser(
        "demo",
        help="the tour: generate data, fine-tune, evaluate, deploy, query (a few minutes)",
        description="Generate the sample dataset, fine-tune the default offline model through "
        "the SDK (Estimator.fit), print its evaluation (mAP, per class) and write report.html, "
        "deploy it, send one image, print the JSON answer and save a PNG with the predicted "
        "boxes. Runs offline on a CPU.",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("demo-output"),
        help="where everything is written (default: %(default)s)",
    )
    parser.add_argument(
        "--images",
        type=positive_int,
        default=DEFAULT_TRAIN_IMAGES,
        help="training images to generate (default: %(default)s)",
    )
    parser.add_argument(
        "--test-images",
        type=positive_int,
        default=DEFAULT_TEST_IMAGES,
        help="test images for the evaluation (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=DEFAULT_EPOCHS,
        help="training epochs (default: %(default)s)",
    )
    parser.add_argument(
        "--image-size",
        type=positive_int,
        default=DEFAULT_IMAGE_SIZE,
        help="model input size in pixels (default: %(default)s)",
    )
    parser.add_argument(
        "--model-id", default=None, help="model to fine-tune (default: the offline default model)"
    )
    parser.add_argument(
        "--port", type=int, default=None, help="endpoint port (default: a free one)"
    )
    parser.add_argument(
        "--keep-endpoint", action="store_true", help="leave the endpoint running at the end"
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from boxtune.demo import DemoSettings, run_demo

    run_demo(
        DemoSettings(
            output=args.output,
            images=args.images,
            test_images=args.test_images,
            epochs=args.epochs,
            image_size=args.image_size,
            model_id=args.model_id,
            port=args.port,
            keep_endpoint=args.keep_endpoint,
        )
    )
    return 0
