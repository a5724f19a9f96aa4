"""``/api/models``: the catalog with what the console shows per model, and the
hyperparameter form (every option with its allowed values and the model's defaults)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from boxtune.ui.responses import json_response, read_json, required


def _entry(spec) -> dict[str, Any]:
    from boxtune.catalog import DEFAULT_MODEL_ID, cached_weights_path
    from boxtune.sdk.listing import catalog_entry

    entry = catalog_entry(spec)
    cached = cached_weights_path(spec).is_file()
    entry["weights_cached"] = cached
    entry["works_offline"] = spec.offline or cached
    entry["trainable"] = entry["task"] != "od"
    entry["is_default"] = spec.model_id == DEFAULT_MODEL_ID
    return entry


def list_models(request: Request) -> Response:
    from boxtune.catalog import DEFAULT_MODEL_ID, list_specs

    return json_response(
        {"default": DEFAULT_MODEL_ID, "models": [_entry(spec) for spec in list_specs()]}
    )


def _options(model_id: str) -> list[dict[str, Any]]:
    from boxtune.train.hyperparameters import OPTIONS, augmentation_presets, retrieve_default

    defaults = retrieve_default(model_id)
    presets = augmentation_presets()
    options = []
    for option in OPTIONS.values():
        choices = list(option.choices)
        if option.name == "augmentation":
            choices += list(presets)
        if option.kind == "bool":
            choices = ["True", "False"]
        options.append(
            {
                "name": option.name,
                "kind": option.kind,
                "default": defaults.get(option.name, option.default),
                "allowed": option.allowed(presets),
                "choices": choices,
                "help": option.help,
                "reference": option.reference,
                "optimizers": list(option.optimizers),
            }
        )
    return options


def show_model(request: Request) -> Response:
    from boxtune.catalog import get_spec

    model_id = request.path_params["model_id"]
    spec = get_spec(model_id)  # unknown: a ModelError with close matches
    return json_response({"model": _entry(spec), "hyperparameters": _options(model_id)})


async def check_hyperparameters(request: Request) -> Response:
    """Validate a form's values as training will: every problem, keyed by field."""
    from boxtune.errors import HyperparameterError
    from boxtune.train.hyperparameters import parse_hyperparameters
    from boxtune.ui.responses import error_body

    body = await read_json(request)
    model_id = required(body, "model_id")
    values = body.get("hyperparameters") or {}
    try:
        parse_hyperparameters(model_id, values)
    except HyperparameterError as exc:
        return json_response({"ok": False, **error_body(exc)})
    return json_response({"ok": True, "problems": {}})


routes = [
    Route("/api/models", list_models),
    Route("/api/models/{model_id}", show_model),
    Route("/api/hyperparameters/check", check_hyperparameters, methods=["POST"]),
]
