"""Fixtures of the tuning tests: an isolated BOXTUNE_HOME, a sample dataset, a stand-in trainer."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from boxtune import jobs
from boxtune.tuning.runner import trial_environment


@pytest.fixture(autouse=True)
def boxtune_home(tmp_path, monkeypatch):
    home = tmp_path / "boxtune-home"
    monkeypatch.setenv("BOXTUNE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory) -> Path:
    """The sample dataset of the other real-training tests: 12 images, 4 classes."""
    from boxtune.data import generate_sample_dataset

    return generate_sample_dataset(
        tmp_path_factory.mktemp("tune-data") / "sample", images=12, seed=3
    )


# A stand-in for `boxtune train` that logs like it, with values that depend on the
# hyperparameters only (no timing, no randomness): Val_localization is
# |log10(learning_rate) + 2| + 1 / (epoch + 1), best at learning_rate=0.01. optimizer=sgd fails
# like a bad dataset does; optimizer=rmsprop logs no validation line at all.
FAKE_TRAINER = textwrap.dedent(
    """
    import json, math, sys, time
    from pathlib import Path
    hp = json.loads(sys.argv[1])
    epochs, lr = int(hp.get("epochs", "5")), float(hp.get("learning_rate", "0.002"))
    optimizer = hp.get("optimizer", "adam")
    print("training on 10 images", flush=True)
    if optimizer == "sgd":
        print("error: annotations.json: annotation 3: bbox has xmax < xmin", file=sys.stderr)
        sys.exit(1)
    out = Path("train-output")
    out.mkdir(exist_ok=True)
    for epoch in range(epochs):
        time.sleep(0.15)
        value = abs(math.log10(lr) + 2) + 1 / (epoch + 1)
        print(f"epoch {epoch + 1}/{epochs}: 100%|###| 3/3 [loss=9.9999, lr=1e-03]\\r", end="")
        print(f"[Epoch {epoch}], Speed: 10.000 samples/sec, loss={value + 0.5:.4f}.", flush=True)
        if optimizer != "rmsprop":
            print(f"[Epoch {epoch}], Val_localization={value:.4f}, Val_classification=0.1000")
            print(f"[Epoch {epoch}], Val_mAP={1 / (1 + value):.4f}, Val_mAP50=0.5000", flush=True)
        record = {"epoch": epoch, "loss": value + 0.5, "val_map": 1 / (1 + value)}
        with open(out / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\\n")
    model = out / "model"
    model.mkdir(exist_ok=True)
    (model / "boxtune-model.json").write_text("{}")
    (model / "model.tar.gz").write_bytes(b"tarball")
    print("done", flush=True)
    """
)


def _fake_submit(spec, job_name: str, hyperparameters: dict[str, str]) -> jobs.JobRecord:
    """Starts FAKE_TRAINER as the trial's job, through the real registry and supervisor."""
    with trial_environment(spec.max_parallel_jobs):
        return jobs.submit_job(
            [sys.executable, "-c", FAKE_TRAINER, json.dumps(hyperparameters)],
            name=job_name,
            model_id=spec.model_id,
            hyperparameters=hyperparameters,
            output_path=spec.output_path,
            source="tuning",
        )


@pytest.fixture
def fake_submit():
    """How a trial's job starts when the trainer is FAKE_TRAINER (``run_tuning(submit=...)``)."""
    return _fake_submit
