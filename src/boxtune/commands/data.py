"""``boxtune data …``: validate, stats, sample, convert, fetch, preview."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="check, inspect, import and generate datasets")
    commands = data.add_subparsers(dest="data_command", metavar="ACTION")
    data.set_defaults(handler=lambda args: (data.print_help(), 2)[1])

    p = commands.add_parser("validate", help="check a dataset and list every problem")
    p.add_argument("dataset", help="dataset folder (images/ + annotations.json) or s3:// prefix")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--all", action="store_true", help="list every issue (default: 20 per kind)")
    p.add_argument(
        "--no-decode",
        action="store_true",
        help="read image headers only (faster; misses truncated files)",
    )
    p.set_defaults(handler=_validate)

    p = commands.add_parser("stats", help="images, boxes, classes and box sizes of a dataset")
    p.add_argument("dataset")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_stats)

    p = commands.add_parser("sample", help="generate the synthetic sample dataset (offline)")
    p.add_argument("dst", help="output folder")
    p.add_argument("--images", type=int, default=200, help="number of images (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.set_defaults(handler=_sample)

    p = commands.add_parser("convert", help="import COCO, Pascal VOC, YOLO or PennFudanPed")
    p.add_argument(
        "--from",
        dest="source_format",
        required=True,
        choices=["coco", "voc", "yolo", "pennfudan"],
        help="format of SRC",
    )
    p.add_argument(
        "src",
        help="COCO: a .json file (images next to it or in --images); VOC / "
        "YOLO / PennFudanPed: the dataset folder",
    )
    p.add_argument("dst", help="output folder in boxtune's layout")
    p.add_argument(
        "--images",
        dest="images_dir",
        default=None,
        help="COCO: folder holding the images (default: next to the JSON)",
    )
    p.add_argument("--names", default=None, help="YOLO: class names file (default: search SRC)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.set_defaults(handler=_convert)

    p = commands.add_parser("fetch", help="download a public dataset and convert it")
    p.add_argument("name", choices=["pennfudan"], help="dataset name")
    p.add_argument("dst", help="output folder")
    p.add_argument("--from-zip", default=None, help="use a zip you downloaded by hand")
    p.add_argument("--url", default=None, help="download from this URL instead")
    p.add_argument("--sha256", default=None, help="expected sha256 of the zip")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.set_defaults(handler=_fetch)

    p = commands.add_parser("preview", help="save a contact sheet PNG with boxes drawn")
    p.add_argument("dataset")
    p.add_argument("output", help="PNG file to write")
    p.add_argument("--count", type=int, default=16, help="number of images (default 16)")
    p.set_defaults(handler=_preview)


def _validate(args: argparse.Namespace) -> int:
    from boxtune.data import validate_dataset
    from boxtune.data.io import dataset_read_errors

    with dataset_read_errors(args.dataset):
        report = validate_dataset(args.dataset, decode_images=not args.no_decode)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.render(max_per_code=None if args.all else 20))
        if report.ok:
            print(
                "OK: the dataset is valid"
                + (" (warnings above do not block training)" if report.warnings else "")
            )
    return 0 if report.ok else 1


def _stats(args: argparse.Namespace) -> int:
    from boxtune.data import read_dataset
    from boxtune.data.stats import dataset_stats, render_stats

    stats = dataset_stats(read_dataset(args.dataset, decode_images=False))
    print(json.dumps(stats, indent=2) if args.json else render_stats(stats))
    return 0


def _sample(args: argparse.Namespace) -> int:
    from boxtune.data import generate_sample_dataset

    path = generate_sample_dataset(
        args.dst, images=args.images, seed=args.seed, overwrite=args.overwrite
    )
    print(f"wrote {args.images} images to {path}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from boxtune.data.importers import convert

    dataset = convert(
        args.source_format,
        args.src,
        args.dst,
        images_dir=args.images_dir,
        names=args.names,
        overwrite=args.overwrite,
        log=_stderr,
    )
    print(
        f"wrote {len(dataset.images)} images, {len(dataset.annotations)} boxes, "
        f"{len(dataset.categories)} classes to {args.dst}"
    )
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from boxtune.data.fetch import fetch_pennfudan

    dataset = fetch_pennfudan(
        args.dst,
        from_zip=args.from_zip,
        url=args.url,
        sha256=args.sha256,
        overwrite=args.overwrite,
        log=_stderr,
    )
    print(f"wrote {len(dataset.images)} images, {len(dataset.annotations)} boxes to {args.dst}")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from boxtune.data import read_dataset
    from boxtune.data.preview import contact_sheet

    path = contact_sheet(
        read_dataset(args.dataset, decode_images=False), args.output, count=args.count
    )
    print(f"wrote {path}")
    return 0


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)
