"""``model_uris`` / ``image_uris`` / ``script_uris`` ``.retrieve``: where a model's parts live.

On the managed platform these return S3 and container-registry locations that an Estimator or
Model then receives back. Here ``model_uris.retrieve`` names the real pretrained weights (a file
inside an installed package, or the published download URL) and the other two return
``boxtune://`` references; every one of them leads back to its model_id, so code that passes
them on to ``Estimator(model_uri=..., image_uri=..., source_dir=...)`` keeps working.
"""

from __future__ import annotations

from typing import Any

from boxtune.errors import ModelError
from boxtune.sdk.notices import ignore_platform_arguments

SCHEME = "boxtune://"
SCOPES = ("training", "inference")


def _spec(model_id: str | None, model_version: str, where: str):
    from boxtune.catalog import DEFAULT_MODEL_ID, get_spec

    if not model_id:
        raise ModelError(
            "model_id is required",
            where=where,
            hint=f'pass model_id=... (e.g. "{DEFAULT_MODEL_ID}"; `boxtune models list`)',
        )
    spec = get_spec(model_id)
    if model_version not in ("*", None, ""):
        version = getattr(spec, "version", None)
        if model_version != version:
            raise ModelError(
                f"model version {model_version!r} of {model_id} is not available",
                where=where,
                hint='use model_version="*"',
            )
    return spec


def _check_scope(scope: str, where: str) -> None:
    if scope not in SCOPES:
        raise ModelError(
            f"unknown scope {scope!r}", where=where, hint=f"use one of {', '.join(SCOPES)}"
        )


def weights_location(spec) -> str:
    """The package file (offline models) or the download URL of a spec's pretrained weights."""
    from boxtune.catalog.weights import _package_resource

    packaged = _package_resource(spec.weights)
    if packaged is not None:
        return str(packaged)
    if spec.weights.url:
        return spec.weights.url
    if spec.weights.package:
        return f"{SCHEME}package/{spec.weights.package}/{spec.weights.resource}"
    raise ModelError(f"{spec.model_id} names no weights source", where="catalog")


def _weights_aliases(spec) -> set[str]:
    """Every string that ``model_uris.retrieve`` could have returned for ``spec``."""
    from boxtune.catalog import cached_weights_path

    aliases = {weights_location(spec), str(cached_weights_path(spec))}
    if spec.weights.url:
        aliases.add(spec.weights.url)
    return aliases


def model_id_of_weights_file(uri: str | None, model_id: str | None = None) -> str | None:
    """The catalog model whose weights file ``uri`` names by its file name (a copy of a zoo
    tarball in the user's bucket, say): ``model_id``'s, or the one model with that file."""
    if not uri:
        return None
    from boxtune.catalog import get_spec, list_specs

    name = str(uri).rstrip("/").rsplit("/", 1)[-1]
    if model_id is not None:
        return model_id if get_spec(model_id).weights.file_name == name else None
    matches = [spec.model_id for spec in list_specs() if spec.weights.file_name == name]
    return matches[0] if len(matches) == 1 else None


class _ModelUris:
    @staticmethod
    def retrieve(
        region: str | None = None,
        model_id: str | None = None,
        model_version: str = "*",
        model_scope: str = "training",
        **platform: Any,
    ) -> str:
        """Where the pretrained weights of ``model_id`` live (package file path or URL).

        ``model_scope="inference"`` is only for deployable models (a complete pretrained
        detector); fine-tune-only models raise ``ModelError``.
        """
        where = "model_uris.retrieve"
        ignore_platform_arguments(where, {k: v for k, v in platform.items() if k != "hub_arn"})
        _check_scope(model_scope, where)
        spec = _spec(model_id, model_version, where)
        if model_scope == "inference" and not spec.deployable:
            raise ModelError(
                f"{spec.model_id} cannot be deployed without fine-tuning: its pretrained "
                f"weights cover the {spec.weights.describes} only",
                where=where,
                hint=f'fine-tune it first (Estimator(model_id="{spec.model_id}").fit(...)), or '
                "pick a deployable model (`boxtune models list`)",
            )
        return weights_location(spec)


class _ReferenceUris:
    def __init__(self, kind: str, scope_argument: str):
        self.kind = kind
        self.scope_argument = scope_argument

    def retrieve(
        self,
        region: str | None = None,
        framework: str | None = None,
        model_id: str | None = None,
        model_version: str = "*",
        **kwargs: Any,
    ) -> str:
        """A ``boxtune://<kind>/<scope>/<model_id>`` reference (there is no container/script)."""
        where = f"{self.kind}_uris.retrieve"
        scope = kwargs.pop(self.scope_argument, None) or "training"
        ignore_platform_arguments(where, {k: v for k, v in kwargs.items() if k != "version"})
        _check_scope(scope, where)
        spec = _spec(model_id, model_version, where)
        return f"{SCHEME}{self.kind}/{scope}/{spec.model_id}"


model_uris = _ModelUris()
image_uris = _ReferenceUris("image", "image_scope")
script_uris = _ReferenceUris("script", "script_scope")


def model_id_from_uri(uri: str | None) -> str | None:
    """The model_id behind a value that one of the ``retrieve`` functions returned, else None."""
    if not uri:
        return None
    uri = str(uri)
    if uri.startswith(SCHEME):
        parts = uri[len(SCHEME) :].split("/")
        if len(parts) == 3 and parts[0] in ("image", "script"):
            return parts[2]
    from boxtune.catalog import list_specs

    for spec in list_specs():
        try:
            if uri in _weights_aliases(spec):
                return spec.model_id
        except ModelError:
            continue
    return None
