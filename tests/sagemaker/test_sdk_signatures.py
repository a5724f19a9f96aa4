"""boxtune.sagemaker against the real managed SDK v2: same module paths, positional order,
keyword names, defaults and exception bases for everything the object-detection notebooks use.

The SDK lives in its own venv (``make test`` builds .venv-sagemaker-sdk; it pins protobuf and
packaging below what TensorFlow needs); a child process there describes it as JSON. boxtune
never imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.sagemaker.sdk_signatures import describe

REPO = Path(__file__).resolve().parents[2]
SDK_PYTHON = Path(
    os.environ.get("BOXTUNE_SDK_REFERENCE_PYTHON", REPO / ".venv-sagemaker-sdk" / "bin" / "python")
)
POSITIONAL = ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")

# Where boxtune departs from the SDK on purpose: key -> parameter -> why.
_NO_DEFAULT_SESSION = "the SDK builds a default boto session at import; None here"
DEVIATIONS = {
    "jumpstart.notebook_utils:list_jumpstart_models": {"sagemaker_session": _NO_DEFAULT_SESSION},
    "jumpstart.estimator:JumpStartEstimator.attach": {"sagemaker_session": _NO_DEFAULT_SESSION},
}


@pytest.fixture(scope="module")
def sdk(tmp_path_factory) -> dict:
    if not SDK_PYTHON.exists():
        pytest.fail(
            f"{SDK_PYTHON} is missing: `make .venv-sagemaker-sdk/.installed` installs the SDK v2 "
            "there (or set BOXTUNE_SDK_REFERENCE_PYTHON to a Python that has it)"
        )
    output = tmp_path_factory.mktemp("sdk") / "sdk.json"
    subprocess.run(
        [str(SDK_PYTHON), str(Path(__file__).with_name("sdk_signatures.py")), "sagemaker", output],
        check=True,
        capture_output=True,
        env={**os.environ, "SAGEMAKER_SUPPRESS_V2_WARNING": "1"},
        timeout=300,
    )
    return json.loads(output.read_text())


@pytest.fixture(scope="module")
def ours() -> dict:
    return describe("boxtune.sagemaker")


def _problems(key: str, theirs: list[dict], mine: list[dict]) -> list[str]:
    problems = []
    allowed = DEVIATIONS.get(key, {})
    their_positional = [p for p in theirs if p["kind"] in POSITIONAL]
    my_positional = [p for p in mine if p["kind"] in POSITIONAL]
    my_names = {p["name"] for p in mine}
    takes_any_keyword = any(p["kind"] == "VAR_KEYWORD" for p in mine)
    takes_any_positional = any(p["kind"] == "VAR_POSITIONAL" for p in mine)
    expected = [p["name"] for p in their_positional[: len(my_positional)]]
    if [p["name"] for p in my_positional] != expected:
        problems.append(f"positional order {[p['name'] for p in my_positional]} != {expected}")
    for param in theirs:
        if param["kind"] == "VAR_POSITIONAL":
            if not takes_any_positional:
                problems.append(f"*{param['name']} is not accepted")
        elif (
            param["kind"] != "VAR_KEYWORD"
            and param["name"] not in my_names
            and not takes_any_keyword
        ):
            problems.append(f"{param['name']!r} is not accepted")
    by_name = {p["name"]: p for p in theirs}
    for param in mine:
        their = by_name.get(param["name"])
        if their is None:
            if param["kind"] in POSITIONAL:
                problems.append(f"{param['name']!r} is not a parameter of the SDK's")
            continue
        if param["name"] in allowed or their["default"] == param["default"]:
            continue
        problems.append(f"{param['name']!r}: default {param['default']} != {their['default']}")
    return problems


def test_every_compared_callable_matches_the_sdks(sdk, ours):
    assert set(ours["callables"]) == set(sdk["callables"])
    problems = {
        key: found
        for key in sorted(sdk["callables"])
        if (found := _problems(key, sdk["callables"][key], ours["callables"][key]))
    }
    assert not problems, json.dumps(problems, indent=1)


def test_exceptions_have_the_sdks_builtin_bases(sdk, ours):
    assert ours["exceptions"] == sdk["exceptions"]


def test_import_sagemaker_gives_the_same_names(sdk, ours):
    assert ours["top_level"] == sdk["top_level"]


def test_the_comparison_notices_a_moved_parameter():
    theirs = [
        {"name": "a", "kind": "POSITIONAL_OR_KEYWORD", "default": {"kind": "required"}},
        {"name": "b", "kind": "POSITIONAL_OR_KEYWORD", "default": {"kind": "literal", "value": 1}},
    ]
    swapped = [theirs[1], theirs[0]]
    assert _problems("k", theirs, theirs) == []
    assert any("positional order" in p for p in _problems("k", theirs, swapped))
    other_default = [theirs[0], {**theirs[1], "default": {"kind": "literal", "value": 2}}]
    assert any("default" in p for p in _problems("k", theirs, other_default))
    assert any("not accepted" in p for p in _problems("k", theirs, theirs[:1]))
