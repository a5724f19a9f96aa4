"""TensorFlow (and Keras) load only when the TensorFlow engine is asked for: the package, the
CLI, the catalog and the torch serving app never pay TensorFlow's seconds of start-up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

REPORT = (
    "import json, sys\nprint(json.dumps({m: m in sys.modules for m in ('tensorflow', 'keras')}))\n"
)


def _loaded_after(code: str) -> dict[str, bool]:
    result = subprocess.run(
        [sys.executable, "-c", code + "\n" + REPORT],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "code",
    [
        "import boxtune",
        "import boxtune.cli\nboxtune.cli.build_parser()",
        "import boxtune.catalog\n"
        "specs = boxtune.catalog.list_specs()\n"
        "assert boxtune.catalog.TF_PERSON_MODEL_ID in [s.model_id for s in specs]\n"
        "boxtune.catalog.get_spec(boxtune.catalog.TF_PERSON_MODEL_ID)\n"
        "boxtune.catalog.list_specs('tensorflow')",
        "import boxtune.serve.app\n"
        "from boxtune.serve.config import ServeConfig\n"
        "boxtune.serve.app.create_app(ServeConfig(model='no-such-model'))",
        # numpy only, imported by the engine's own unit tests
        "import boxtune.engines.tensorflow.targets",
    ],
    ids=["package", "cli", "catalog", "serve-app", "tf-targets"],
)
def test_cheap_entry_points_do_not_import_tensorflow(code):
    assert _loaded_after(code) == {"tensorflow": False, "keras": False}


def test_asking_for_the_tensorflow_engine_imports_it():
    code = (
        "import boxtune.engines\n"
        "engine = boxtune.engines.get_engine('tensorflow')\n"
        "assert engine.name == 'tensorflow'"
    )
    assert _loaded_after(code) == {"tensorflow": True, "keras": True}
