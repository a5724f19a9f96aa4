"""``boxtune predict``: batch prediction over a folder of images."""

from __future__ import annotations

import argparse
import sys

from boxtune.commands import add_backend_argument


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict every image of a folder; one <file_name>.out JSON per image",
        description="Run a model over a folder (local or s3://) of images and write, for each "
        "image, <file_name>.out holding the endpoint's verbose JSON answer. Resumable: images "
        "whose outputs exist are skipped. Exit code 1 when any image failed.",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="artifact dir, model.tar.gz, s3:// URI or deployable model_id",
    )
    parser.add_argument("--input", required=True, help="folder of images (local or s3://)")
    parser.add_argument("--output", required=True, help="output folder (local or s3://)")
    parser.add_argument(
        "--visualize",
        action="store_true",
        help="also write visualizations/<file_name>.png with boxes and labels",
    )
    parser.add_argument(
        "--min-score",
        type=float,
        default=0.25,
        help="boxes drawn by --visualize score at least this (default: "
        "%(default)s; the .out files keep every box)",
    )
    add_backend_argument(parser)
    parser.add_argument("--batch-size", type=int, default=4, help="images per model call")
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        help="drop boxes below this score from the outputs (default: none)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from boxtune.serve.batch import SUMMARY_NAME, predict_folder
    from boxtune.serve.predictor import InProcessPredictor
    from boxtune.storage import check_destination

    check_destination(args.output)  # before the model loads and the first image is predicted
    predictor = InProcessPredictor.load(
        args.model, backend=args.backend, score_threshold=args.score_threshold
    )
    summary = predict_folder(
        predictor,
        args.input,
        args.output,
        visualize=args.visualize,
        min_score=args.min_score,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        report=lambda message: print(message, file=sys.stderr),
    )
    print(summary.line())
    if summary.failed:
        print(
            f"the failures are listed in {args.output.rstrip('/')}/{SUMMARY_NAME}", file=sys.stderr
        )
    return 1 if summary.failed else 0
