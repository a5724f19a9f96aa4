"""``boxtune train`` and ``boxtune hyperparameters``: argument parsing over ``boxtune.train``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from boxtune.errors import HyperparameterError


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_hyperparameters(subparsers)
    _register_train(subparsers)


def _register_hyperparameters(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "hyperparameters",
        help="print a model's default hyperparameters (all strings) as JSON",
        description="Print the default hyperparameters of MODEL_ID as JSON, like the managed "
        "SDK's hyperparameters.retrieve_default(model_id=...).",
    )
    parser.add_argument("model_id", metavar="MODEL_ID")
    parser.add_argument("--model-version", default="*", help='model version (default "*")')
    parser.add_argument(
        "--describe",
        action="store_true",
        help="print every option with its allowed values and meaning instead",
    )
    parser.set_defaults(handler=_hyperparameters_command)


def _hyperparameters_command(args: argparse.Namespace) -> int:
    from boxtune.train.hyperparameters import describe_options, retrieve_default

    defaults = retrieve_default(args.model_id, args.model_version)
    if args.describe:
        rows = describe_options()
        for row in rows:
            row["default"] = defaults[row["name"]]
        print(json.dumps(rows, indent=2))
    else:
        print(json.dumps(defaults, indent=2))
    return 0


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune a detector on a dataset (images/ + annotations.json)",
        description="Fine-tune MODEL_ID (or a previous boxtune artifact) on a dataset and write "
        "the model artifact and model.tar.gz to OUTPUT.",
    )
    parser.add_argument("--model-id", help="catalog model id (see `boxtune models list`)")
    parser.add_argument(
        "--model",
        metavar="ARTIFACT",
        help="a previous boxtune artifact (dir, model.tar.gz or s3://): incremental training",
    )
    parser.add_argument(
        "--weights",
        help="MODEL_ID's pretrained weights file (e.g. a TF2 zoo tarball; path or s3://), "
        "when not in BOXTUNE_HOME/weights",
    )
    parser.add_argument("--training", required=True, help="dataset dir or s3:// prefix")
    parser.add_argument("--validation", help="validation dataset (default: a split of training)")
    parser.add_argument("--output", required=True, help="output dir or s3:// prefix")
    parser.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a hyperparameter (repeatable), e.g. --hp epochs=10 --hp learning_rate=0.0005",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in OUTPUT/checkpoints/ after an interruption",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_train_command)


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["epochs=3", "optimizer=sgd"]`` -> ``{"epochs": "3", "optimizer": "sgd"}``."""
    values: dict[str, str] = {}
    bad = [item for item in items if "=" not in item or not item.split("=", 1)[0].strip()]
    if bad:
        raise HyperparameterError(
            "expected NAME=VALUE, got " + ", ".join(repr(b) for b in bad),
            where="--hp",
            hint="write e.g. --hp epochs=10 --hp learning_rate=0.0005",
        )
    for item in items:
        name, value = item.split("=", 1)
        values[name.strip()] = value.strip()
    return values


def _train_command(args: argparse.Namespace) -> int:
    from boxtune.train import train

    if not args.model_id and not args.model:
        raise HyperparameterError(
            "no model given",
            where="boxtune train",
            hint="pass --model-id ID (see `boxtune models list`) or --model ARTIFACT",
        )
    try:
        result = train(
            args.model_id,
            training=args.training,
            validation=args.validation,
            output=args.output,
            hyperparameters=parse_assignments(args.hp),
            artifact=args.model,
            weights=args.weights,
            resume=args.resume,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        argv = [a for a in sys.argv[1:] if a != "--resume"]
        command = " ".join(shlex.quote(a) for a in ["boxtune", *argv, "--resume"])
        print(f"to continue where it stopped: {command}", file=sys.stderr)
        raise
    print(f"model written to {result.output}", file=sys.stderr)
    return 0
