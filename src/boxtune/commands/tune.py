"""``boxtune tune``: hyperparameter tuning (``boxtune.tuning``), and ``tune show|list|stop``."""

from __future__ import annotations

import argparse
import json
import re
import sys

from boxtune.commands.tables import format_table
from boxtune.errors import BoxtuneError

_ACTIONS = ("show", "list", "stop")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="tune hyperparameters: many training jobs, Optuna picks the values",
        description="Run a hyperparameter tuning job, like the managed SDK's "
        "HyperparameterTuner: each trial is a background training job (see `boxtune jobs`); "
        "Optuna chooses the values within the --range's and, with --early-stopping Auto, "
        "stops trials that fall behind. `boxtune tune show|list|stop` read and stop tuning "
        "jobs.",
        epilog="example: boxtune tune --training data/ --output-path out/ "
        "--range learning_rate=0.0001:0.1:log --objective val_map "
        "--max-jobs 6 --max-parallel-jobs 2 --early-stopping Auto",
    )
    parser.add_argument("--training", help="dataset dir or s3:// prefix")
    parser.add_argument("--validation", help="validation dataset (default: a split of training)")
    parser.add_argument("--model-id", help="catalog model id (default: the default model)")
    parser.add_argument("--model", metavar="ARTIFACT", help="a previous artifact to continue from")
    parser.add_argument(
        "--output-path", help="where each trial's model goes (<output-path>/<job>/output/)"
    )
    parser.add_argument(
        "--range",
        action="append",
        default=[],
        dest="ranges",
        metavar="NAME=RANGE",
        help="a tuned hyperparameter (repeatable): NAME=MIN:MAX[:linear|log|reverselog] or "
        "NAME=A,B,C, e.g. --range learning_rate=0.0001:0.1:log --range optimizer=adam,sgd",
    )
    parser.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a fixed hyperparameter of every trial (repeatable), e.g. --hp epochs=10",
    )
    parser.add_argument(
        "--objective",
        default="val_map",
        help="the metric to optimise: a metrics key (val_map, val_map50, val_loss, "
        "val_localization, ...), a platform name (validation:localization_loss), or any name "
        "with --metric-regex (default: %(default)s)",
    )
    parser.add_argument(
        "--objective-type",
        type=str.lower,
        choices=("maximize", "minimize"),
        help="Maximize or Minimize (default: minimize for losses, maximize for mAP)",
    )
    parser.add_argument(
        "--metric-regex",
        help=r"read the objective from the job's log with this regex, e.g. 'Val_mAP=([0-9\.]+)'",
    )
    parser.add_argument(
        "--metric-definition",
        action="append",
        default=[],
        metavar="NAME=REGEX",
        help="another metric extracted from each trial's log (repeatable)",
    )
    parser.add_argument(
        "--strategy",
        default="Bayesian",
        type=str.capitalize,
        choices=("Bayesian", "Random", "Grid", "Hyperband"),
        help="how values are chosen (default: %(default)s)",
    )
    parser.add_argument("--max-jobs", type=int, default=6, help="trials in all (default: 6)")
    parser.add_argument(
        "--max-parallel-jobs", type=int, default=1, help="trials at once (default: 1)"
    )
    parser.add_argument(
        "--early-stopping",
        default="Off",
        type=str.capitalize,
        choices=("Auto", "Off"),
        help="Auto: stop trials whose objective falls behind the median (default: Off)",
    )
    parser.add_argument(
        "--enqueue",
        action="append",
        default=[],
        metavar="NAME=VALUE[,NAME=VALUE]",
        help="values to try first, one trial each (repeatable), e.g. --enqueue learning_rate=0.01",
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="do not start with a trial of the model's default values",
    )
    parser.add_argument(
        "--pruner-startup-trials",
        type=int,
        help="completed trials before early stopping starts (default: from --max-jobs)",
    )
    parser.add_argument(
        "--pruner-warmup-epochs",
        type=int,
        default=0,
        help="no trial is stopped before this epoch (default: 0)",
    )
    parser.add_argument("--storage", help="Optuna storage URL (default: BOXTUNE_HOME/tuning.db)")
    parser.add_argument("--name", help="the tuning job's name (default: tuning-<timestamp>)")
    parser.add_argument("--seed", type=int, help="the sampler's random seed")
    parser.add_argument(
        "--detach",
        action="store_true",
        help="run in the background and return at once (follow with `boxtune tune show`)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=_tune_run)

    sub = parser.add_subparsers(dest="tune_command", metavar="ACTION")
    show = sub.add_parser("show", help="a tuning job's trials and its best trial")
    show.add_argument("name", metavar="TUNING_NAME")
    show.add_argument("--storage", help="Optuna storage URL (default: BOXTUNE_HOME/tuning.db)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=_tune_show)
    listing = sub.add_parser("list", help="the tuning jobs")
    listing.add_argument("--storage", help="Optuna storage URL (default: BOXTUNE_HOME/tuning.db)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_tune_list)
    stop = sub.add_parser("stop", help="stop a tuning job's running trials; start no more")
    stop.add_argument("name", metavar="TUNING_NAME")
    stop.add_argument("--storage", help="Optuna storage URL (default: BOXTUNE_HOME/tuning.db)")
    stop.set_defaults(handler=_tune_stop)


# -- parsing ---------------------------------------------------------------------------------------
def _assignments(items: list[str], where: str, example: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise BoxtuneError(
                f"expected NAME=VALUE, got {item!r}", where=where, hint=f"e.g. {where} {example}"
            )
        values[name.strip()] = value.strip()
    return values


def _enqueued(items: list[str]) -> list[dict[str, str]]:
    # "learning_rate=0.01,optimizer=sgd": commas split only before a NAME=.
    return [
        _assignments(re.split(r",(?=\s*[A-Za-z_][A-Za-z0-9_]*=)", item), "--enqueue", "lr=0.01")
        for item in items
    ]


def build_spec(args: argparse.Namespace):
    from boxtune import catalog
    from boxtune.jobs import name_from_base
    from boxtune.train.hyperparameters import ALIASES, OPTIONS
    from boxtune.tuning import Objective, TuningSpec, default_direction, parse_range

    missing = [
        flag
        for flag, value in (("--training", args.training), ("--output-path", args.output_path))
        if not value
    ]
    if missing:
        raise BoxtuneError(
            f"boxtune tune needs {' and '.join(missing)}",
            hint="e.g. boxtune tune --training data/ --output-path out/ "
            "--range learning_rate=0.0001:0.1:log (or `boxtune tune show NAME`)",
        )
    ranges = {}
    for text in args.ranges:
        name = text.partition("=")[0].strip()
        option = OPTIONS.get(ALIASES.get(name, name))
        name, spec_range = parse_range(text, option.kind if option else None)
        if name in ranges:
            raise BoxtuneError(f"{name} has two ranges", where="--range", hint="give one")
        ranges[name] = spec_range
    direction = args.objective_type or default_direction(args.objective)
    if direction is None:
        raise BoxtuneError(
            f"which way is {args.objective!r} better?",
            where="--objective-type",
            hint="add --objective-type Maximize or --objective-type Minimize",
        )
    definitions = _assignments(args.metric_definition, "--metric-definition", "'m=v=([0-9.]+)'")
    model_id = args.model_id or (None if args.model else catalog.DEFAULT_MODEL_ID)
    return TuningSpec(
        args.name or name_from_base("tuning"),
        training=args.training,
        output_path=args.output_path,
        objective=Objective(args.objective, direction, args.metric_regex),
        model_id=model_id,
        base_model=args.model,
        validation=args.validation,
        hyperparameters=_assignments(args.hp, "--hp", "epochs=10"),
        ranges=ranges,
        metric_definitions=[{"Name": k, "Regex": v} for k, v in definitions.items()],
        strategy=args.strategy,
        max_jobs=args.max_jobs,
        max_parallel_jobs=args.max_parallel_jobs,
        early_stopping=args.early_stopping == "Auto",
        storage_url=args.storage,
        seed=args.seed,
        include_defaults=not args.no_baseline,
        enqueue=_enqueued(args.enqueue),
        pruner_startup_trials=args.pruner_startup_trials,
        pruner_warmup_epochs=args.pruner_warmup_epochs,
    )


# -- handlers --------------------------------------------------------------------------------------
def _progress(message: str) -> None:
    print(f"[tune] {message}", file=sys.stderr, flush=True)


def _tune_run(args: argparse.Namespace) -> int:
    from boxtune.tuning import run_tuning

    spec = build_spec(args)
    result = run_tuning(spec, wait=not args.detach, log=_progress)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    elif args.detach:
        print(f"tuning job {result.name} started in the background")
        print(f"  follow it: boxtune tune show {result.name}")
        print(f"  stop it:   boxtune tune stop {result.name}")
        if result.driver_log:
            print(f"  its log:   {result.driver_log}")
    else:
        print(format_result(result))
    return 0 if result.status != "Failed" else 1


def _tune_show(args: argparse.Namespace) -> int:
    from boxtune.tuning import load_tuning

    result = load_tuning(args.name, args.storage)
    print(json.dumps(result.to_json(), indent=2) if args.json else format_result(result))
    return 0


def _tune_list(args: argparse.Namespace) -> int:
    from boxtune.tuning import list_tunings

    results = list_tunings(args.storage)
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2))
        return 0
    if not results:
        print("no tuning jobs yet (start one with `boxtune tune --training ... --range ...`)")
        return 0
    rows = []
    for result in results:
        best = result.best
        rows.append(
            [
                result.name,
                result.status,
                f"{len(result.trials)}/{result.max_jobs}",
                result.objective.name,
                _value(best.objective_value) if best else "-",
            ]
        )
    print(format_table(["NAME", "STATUS", "TRIALS", "OBJECTIVE", "BEST"], rows))
    return 0


def _tune_stop(args: argparse.Namespace) -> int:
    from boxtune.tuning import load_tuning, stop_tuning

    stop_tuning(args.name, args.storage)
    result = load_tuning(args.name, args.storage)
    print(f"tuning job {result.name}: {result.status}")
    return 0


# -- formatting ------------------------------------------------------------------------------------
def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


NOTE_WIDTH = 70


def _note(trial) -> str:
    notes = ["baseline"] if trial.baseline else []
    if trial.pruned_after_epoch is not None:
        notes.append(f"pruned after epoch {trial.pruned_after_epoch}")
    elif trial.state in ("Failed", "Stopped") and trial.failure_reason:
        first = trial.failure_reason.splitlines()[0]
        notes.append(first if len(first) <= NOTE_WIDTH else first[: NOTE_WIDTH - 3] + "...")
    return "; ".join(notes)


def format_result(result) -> str:
    """The trials as a table, then the best one."""
    objective = result.objective
    lines = [
        f"tuning job {result.name}: {result.status} ({result.strategy}, "
        f"{len(result.trials)} of {result.max_jobs} trials, "
        f"{objective.direction} {objective.name})"
    ]
    if result.failure_reason:
        lines.append(f"reason: {result.failure_reason}")
    if result.trials:
        header = ["TRIAL", "JOB", *result.tuned, "STATE", "EPOCHS", objective.name.upper(), "NOTE"]
        rows = [
            [
                str(t.number),
                t.job_name or "-",
                *(t.hyperparameters.get(name, "-") for name in result.tuned),
                t.state,
                str(len(t.intermediate)),
                _value(t.objective_value),
                _note(t),
            ]
            for t in result.trials
        ]
        lines += ["", format_table(header, rows)]
    best, baseline = result.best, result.baseline
    if best:
        values = ", ".join(f"{k}={best.hyperparameters.get(k, '-')}" for k in result.tuned)
        line = f"best: trial {best.number} ({best.job_name}): {values} -> {objective.name} = "
        line += _value(best.objective_value)
        if baseline and baseline is not best and baseline.objective_value is not None:
            line += f" (baseline, the defaults: {_value(baseline.objective_value)})"
        lines += ["", line]
        if best.job_name:
            lines.append(f"its model: boxtune jobs show {best.job_name}")
    elif result.status != "InProgress":
        lines += ["", "no trial completed: no best trial"]
    return "\n".join(lines)
