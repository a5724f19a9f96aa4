"""`boxtune models list` and `boxtune models show ID`."""

from __future__ import annotations

import argparse
import json

from boxtune.catalog import DEFAULT_MODEL_ID, cached_weights_path, get_spec, list_specs
from boxtune.catalog.spec import ModelSpec
from boxtune.commands.tables import format_table


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _offline(spec: ModelSpec) -> str:
    if spec.offline:
        return "yes"
    return "cached" if cached_weights_path(spec).is_file() else "no"


def _row(spec: ModelSpec) -> list[str]:
    return [
        spec.model_id + (" (default)" if spec.model_id == DEFAULT_MODEL_ID else ""),
        spec.family.split(" (")[0],
        str(spec.image_size),
        "-" if spec.coco_map is None else f"{spec.coco_map:.1f}",
        "-" if spec.params_m is None else f"{spec.params_m:.1f}M",
        _offline(spec),
        _yes_no(spec.fine_tunable),
        _yes_no(spec.deployable),
    ]


def format_catalog(specs: list[ModelSpec]) -> str:
    header = [
        "MODEL ID",
        "FAMILY",
        "INPUT",
        "COCO mAP",
        "PARAMS",
        "OFFLINE",
        "FINE-TUNABLE",
        "DEPLOYABLE AS IS",
    ]
    return format_table(header, [_row(s) for s in specs])


def _list(args: argparse.Namespace) -> int:
    specs = list_specs()
    if args.json:
        print(json.dumps([s.to_json() for s in specs], indent=2))
    else:
        print(format_catalog(specs))
        print(
            "\nOFFLINE: yes = weights ship with boxtune's dependencies; cached = already in "
            "BOXTUNE_HOME/weights;\nno = downloaded on first use (or place the file there by "
            "hand, see `boxtune models show ID`).\nFINE-TUNABLE: no = inference only "
            "(deploy it as is)."
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    spec = get_spec(args.model_id)
    data = spec.to_json()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    weights = data.pop("weights")
    hps = data.pop("default_hyperparameters")
    for key, value in data.items():
        print(f"{key:>18}: {'-' if value is None else value}")
    print(f"{'weights':>18}: {weights['describes']} - {weights['file_name']}")
    for key in ("url", "package", "sha256", "license"):
        if weights[key]:
            print(f"{'':>18}  {key}: {weights[key]}")
    if not hps:
        print(f"{'hyperparameters':>18}: none (inference only: deploy it as is)")
        return 0
    print(f"{'hyperparameters':>18}:")
    for key, value in hps.items():
        print(f"{'':>18}  {key}={value}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models", help="list the models boxtune can fine-tune or deploy as is"
    )
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="table of model ids")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_list)
    show = sub.add_parser("show", help="everything about one model id")
    show.add_argument("model_id")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=_show)
