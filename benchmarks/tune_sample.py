"""Hyperparameter tuning's acceptance run: does `boxtune tune` beat the default learning rate?

Tunes the default model's learning rate on a generated sample dataset: 6 trials, 2 at a time,
Bayesian (TPE), objective validation mAP (maximise), early stopping "Auto" (the median rule).
The bare baseline, measured in the same run, is trial 0: the model's default learning rate,
trained exactly like the others. Every trial is a real background training job.

    .venv/bin/python benchmarks/tune_sample.py [--images 40] [--epochs 10] [--size 128]
        [--trials 6] [--parallel 2] [--seed 0]

Prints one JSON object: each trial (learning rate, state, mAP, epochs it ran, for a pruned one
whether its log carries the tuner's line), the baseline's and the best mAP, and
``best_at_least_baseline`` (must be true). About 3 minutes on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="boxtune-tune-bench-"))
    os.environ["BOXTUNE_HOME"] = str(work / "home")  # before boxtune reads it

    from boxtune import jobs
    from boxtune.catalog import DEFAULT_MODEL_ID
    from boxtune.data import generate_sample_dataset
    from boxtune.tuning import ContinuousRange, Objective, TuningSpec, run_tuning

    dataset = generate_sample_dataset(work / "sample", images=args.images, seed=3)
    spec = TuningSpec(
        "tune-sample",
        training=str(dataset),
        output_path=str(work / "out"),
        objective=Objective("val_map", "maximize"),
        model_id=DEFAULT_MODEL_ID,
        hyperparameters={
            "epochs": str(args.epochs),
            "image_size": str(args.size),
            "batch_size": "4",
            "num_workers": "0",
        },
        ranges={"learning_rate": ContinuousRange(0.0001, 0.1, "Logarithmic")},
        strategy="Bayesian",
        max_jobs=args.trials,
        max_parallel_jobs=args.parallel,
        early_stopping=True,
        seed=args.seed,
    )
    started = time.monotonic()
    result = run_tuning(spec, log=lambda line: print(f"[tune] {line}", file=sys.stderr))
    wall_s = time.monotonic() - started

    trials = []
    for trial in result.trials:
        job = jobs.get_job(trial.job_name) if trial.job_name else None
        entry = {
            "trial": trial.number,
            "learning_rate": float(trial.hyperparameters["learning_rate"]),
            "baseline": trial.baseline,
            "state": trial.state,
            "val_map": trial.objective_value,
            "epochs_run": len(job.metrics) if job else 0,
            "job": trial.job_name,
            "job_seconds": round(job.duration_s, 1) if job and job.duration_s else None,
        }
        if trial.state == "Pruned" and job:
            log = Path(job.log_path).read_text(errors="replace")
            entry["pruned_after_epoch"] = trial.pruned_after_epoch
            entry["log_has_tuner_line"] = f"[Tuner] trial {trial.number} pruned" in log
        trials.append(entry)
    baseline, best = result.baseline, result.best
    baseline_map = baseline.objective_value if baseline else None
    report = {
        "benchmark": "tune_sample",
        "model_id": DEFAULT_MODEL_ID,
        "dataset": {"images": args.images, "image_size": args.size, "epochs": args.epochs},
        "trials_requested": args.trials,
        "parallel": args.parallel,
        "status": result.status,
        "wall_s": round(wall_s, 1),
        "trials": trials,
        "baseline_learning_rate": (
            float(baseline.hyperparameters["learning_rate"]) if baseline else None
        ),
        "baseline_val_map": baseline_map,
        "baseline_state": baseline.state if baseline else None,
        "best_learning_rate": float(best.hyperparameters["learning_rate"]) if best else None,
        "best_val_map": best.objective_value if best else None,
        "best_at_least_baseline": bool(
            best and (baseline_map is None or best.objective_value >= baseline_map)
        ),
        "pruned": [t["trial"] for t in trials if t["state"] == "Pruned"],
        "pruned_logs_say_so": all(
            t.get("log_has_tuner_line") for t in trials if t["state"] == "Pruned"
        ),
        "work_dir": str(work),
    }
    print(json.dumps(report, indent=2))
    return 0 if report["best_at_least_baseline"] and report["pruned_logs_say_so"] else 1


if __name__ == "__main__":
    sys.exit(main())
