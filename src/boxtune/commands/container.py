"""``boxtune container train|serve``: the managed platform's container programs (the image's
``boxtune-container train`` and ``boxtune-container serve``), over ``boxtune.container``."""

from __future__ import annotations

import argparse
import os

from boxtune.commands import serve as serve_command

ROOT_HELP = (
    "the container's /opt/ml folder (default: $BOXTUNE_ML_ROOT or /opt/ml); tests and runs "
    "outside a container point it elsewhere"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "container",
        help="the managed platform's container programs: train and serve under /opt/ml",
        description="Run as the managed platform runs a training or hosting container "
        "(`docker run IMAGE train`, `docker run IMAGE serve`): configuration, data and model "
        "under /opt/ml, the endpoint on port 8080.",
    )
    programs = parser.add_subparsers(dest="container_command", metavar="PROGRAM", required=True)
    _register_train(programs)
    _register_serve(programs)


def _register_train(programs: argparse._SubParsersAction) -> None:
    parser = programs.add_parser(
        "train",
        help="the training job: /opt/ml/input -> /opt/ml/model",
        description="Fine-tune as the platform's training job: hyperparameters from "
        "input/config/hyperparameters.json (model_id among them, else $BOXTUNE_MODEL_ID, else "
        "the default model), data from input/data/training (and validation), incremental "
        "training from a boxtune artifact in input/data/model. Writes the artifact's files to "
        "model/, metrics.jsonl and metrics.json to output/data/, and on failure the reason to "
        "output/failure (exit status 1; 143 after SIGTERM). With a checkpoints/ folder "
        "(the job's checkpoint location) a restarted job continues from its checkpoint.",
    )
    parser.add_argument("--root", default=None, help=ROOT_HELP)
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from boxtune.container.layout import MLLayout
    from boxtune.container.train import run_training_job

    return run_training_job(MLLayout.resolve(args.root))


# `boxtune serve` options whose default the container takes from the platform's variables.
_HOSTING_OPTIONS = {
    "model": "default: $BOXTUNE_MODEL, else ROOT/model (where the platform unpacks the model)",
    "host": "default: $BOXTUNE_HOST, else 0.0.0.0",
    "port": "default: $SAGEMAKER_BIND_TO_PORT, else $BOXTUNE_PORT, else 8080",
    "workers": "default: $SAGEMAKER_MODEL_SERVER_WORKERS, else $BOXTUNE_WORKERS, else 1",
    "request_timeout_s": "an invocation not answered by then gets 504; 0 for none (default: "
    "$SAGEMAKER_MODEL_SERVER_TIMEOUT, else 60)",
}


def _register_serve(programs: argparse._SubParsersAction) -> None:
    # Every option of `boxtune serve`, so that `docker run IMAGE serve --workers 2` works.
    serve_command.register(programs)
    parser = programs.choices["serve"]
    parser.description = (
        "Serve as the platform's hosting container: the model in ROOT/model, GET /ping and "
        "POST /invocations on port 8080 ($SAGEMAKER_BIND_TO_PORT), on every interface. Takes "
        "every option of `boxtune serve`; an option given wins over the platform's variables."
    )
    parser.add_argument("--root", default=None, help=ROOT_HELP)
    for action in parser._actions:  # argparse offers no public way to change an option
        if action.dest in _HOSTING_OPTIONS:
            action.required = False
            action.help = _HOSTING_OPTIONS[action.dest]
    run_server = parser.get_default("handler")
    parser.set_defaults(
        handler=lambda args: _serve(args, run_server), **dict.fromkeys(_HOSTING_OPTIONS)
    )


def _serve(args: argparse.Namespace, run_server) -> int:
    from boxtune.container.layout import MLLayout
    from boxtune.container.serve import hosting_settings

    settings = hosting_settings(
        MLLayout.resolve(args.root),
        model=args.model,
        host=args.host,
        port=args.port,
        workers=args.workers,
        request_timeout_s=args.request_timeout_s,
        environ=os.environ,
    )
    for name in _HOSTING_OPTIONS:
        setattr(args, name, getattr(settings, name))
    return run_server(args)
