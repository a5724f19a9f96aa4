"""The training loop: a detector, its data and hyperparameters in; a model artifact out.

The loop talks to the model only through :class:`boxtune.engines.base.Detector`, so a new
engine (TensorFlow) needs no change here. Every epoch ends with validation (losses and COCO
mAP), the reference's log lines, a ``metrics.jsonl`` record and a checkpoint; the best epoch on
the validation metric is the one exported.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from boxtune import engines
from boxtune.console import TRAINING_LOG
from boxtune.engines.base import Detector
from boxtune.errors import HyperparameterError, TrainingError, os_error
from boxtune.fileio import move_into_place, remove_path
from boxtune.labels import LabelMap
from boxtune.paths import boxtune_home
from boxtune.storage import IncompleteUploadError, check_destination, is_remote, upload
from boxtune.train import checkpoints, reporting
from boxtune.train.checkpoints import CHECKPOINT_DIR, TrainerState, find_checkpoint
from boxtune.train.datasets import TrainingData, load_training_data, make_loaders
from boxtune.train.divergence import DivergenceGuard
from boxtune.train.early_stopping import BestEpochTracker
from boxtune.train.hyperparameters import Hyperparameters, parse_hyperparameters
from boxtune.train.model_setup import ModelSetup, build_detector, resolve_model
from boxtune.train.schedule import LearningRateSchedule
from boxtune.train.validation import ValidationResult, validate

Log = Callable[[str], None]

METRICS_LOG = "metrics.jsonl"
# The run's log lines (the managed platform's metric regexes read them); the CLI shows them
# on stdout (boxtune.console).
training_log = logging.getLogger(TRAINING_LOG)


@dataclass
class TrainResult:
    output: str  # where the artifact was written (the --output location)
    artifact_dir: Path  # local directory holding the artifact files
    metrics: dict
    history: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def train(
    model_id: str | None = None,
    training: str | os.PathLike | None = None,
    validation: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    hyperparameters: dict[str, Any] | Hyperparameters | None = None,
    *,
    artifact: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
    resume: bool = False,
    log: Log | None = None,
    progress: bool = True,
    init: str = "pretrained",
) -> TrainResult:
    """Fine-tune ``model_id`` (or the boxtune ``artifact`` of an earlier run) on ``training``.

    ``hyperparameters``: name -> value (strings or natives) over the model's defaults.
    ``init="random"`` starts from random weights instead of the pretrained ones (for
    comparisons); ``weights`` says where the pretrained ones are (a weights file such as a zoo
    tarball, local or ``s3://``) when not in ``BOXTUNE_HOME/weights``. Writes the artifact,
    ``model.tar.gz``, ``metrics.jsonl`` and ``checkpoints/`` to ``output``; ``resume=True``
    continues from the last checkpoint there.
    ``log`` receives the run's log lines (default: the ``boxtune.train.log`` logger).
    """
    log = log or training_log.info
    if training is None or output is None:
        raise TrainingError(
            "training and output are required",
            where="train()",
            hint="pass training=DATASET and output=DIR",
        )
    # Before anything else: a destination that cannot take the model fails in seconds.
    check_destination(str(output))
    setup = resolve_model(model_id, artifact, weights)
    hp = _hyperparameters(setup, hyperparameters)
    for note in hp.notes():
        log(note)
    work_dir = _work_dir(str(output))
    _check_output(work_dir, resume, str(output))
    _remove_stale_staging(work_dir, log)

    data = load_training_data(str(training), str(validation) if validation else None, hp, log)
    detector = build_detector(setup, data.label_map, hp, init=init, log=log)
    if detector.image_size != hp.image_size:  # e.g. an artifact's own input size
        hp = replace(hp, image_size=detector.image_size)
    run = _Run(setup, hp, data, detector, work_dir, log, progress)
    run.start(resume)
    try:
        run.train_epochs()
    except KeyboardInterrupt:
        path = run.save_interrupted()
        log(
            f"interrupted: checkpoint saved to {path}; continue with the same command plus --resume"
        )
        raise
    result = run.export()
    if is_remote(str(output)):
        _upload_run(work_dir, str(output), log)
    result.output = str(output)
    return result


def _upload_run(work_dir: Path, output: str, log: Log) -> None:
    """Upload the run with model.tar.gz and then the manifest last: a prefix holding the
    manifest is complete. A failed upload keeps ``work_dir``, so nothing is lost."""
    from boxtune.artifacts import MANIFEST_FILE, TARBALL_FILE

    log(f"uploading {work_dir} to {output}")
    try:
        upload(work_dir, output, last=(TARBALL_FILE, MANIFEST_FILE))
    except IncompleteUploadError as exc:
        raise exc.with_retry(
            "rerun the same training command with --resume (resume=True): it picks the "
            "finished run up from its checkpoints and uploads it again"
        ) from exc


def _hyperparameters(
    setup: ModelSetup, given: dict[str, Any] | Hyperparameters | None
) -> Hyperparameters:
    if isinstance(given, Hyperparameters):
        hp = given
    else:
        from boxtune.catalog import find_spec

        # An artifact whose catalog entry is gone trains on the reference table's defaults.
        known = setup.artifact is None or find_spec(setup.model_id) is not None
        hp = parse_hyperparameters(setup.model_id if known else None, given or {})
    if setup.artifact_image_size is not None:
        if "image_size" in hp.explicit and hp.image_size != setup.artifact_image_size:
            raise HyperparameterError(
                f"image_size={hp.image_size} differs from the artifact's input size "
                f"{setup.artifact_image_size}",
                where="image_size",
                hint="incremental training keeps the model's input size; drop --hp image_size",
            )
        hp = replace(hp, image_size=setup.artifact_image_size)
    return hp


def _work_dir(output: str) -> Path:
    """The local directory the run writes to: ``output`` itself, or a staging dir for s3://."""
    if not is_remote(output):
        path = Path(output).expanduser()
    else:
        digest = hashlib.sha256(output.encode()).hexdigest()[:16]
        path = boxtune_home() / "runs" / digest
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, action="creating the run's directory", path=path) from exc
    return path


# What a killed run leaves half-written in its work dir: the artifact's staging dir, the
# temp dir write_artifact fills before renaming it there, fileio's temp files and the
# directories replace_directory renames aside.
_ARTIFACT_STAGING = ".artifact-staging"
_LEFTOVER = re.compile(
    rf"^(?:{re.escape(_ARTIFACT_STAGING)}|\.{re.escape(_ARTIFACT_STAGING)}\.partial-.+"
    r"|\..+\.[0-9a-f]{8}\.tmp|\..+\.old-[a-z0-9_]{8})$"
)


def _remove_stale_staging(work_dir: Path, log: Log) -> None:
    """Delete what a killed run left half-written in ``work_dir``. The directory belongs to
    this run (another one there is refused without --resume), so nothing there is in use."""
    removed = [p for p in sorted(work_dir.iterdir()) if _LEFTOVER.match(p.name)]
    checkpoint_dir = work_dir / CHECKPOINT_DIR
    if checkpoint_dir.is_dir():
        removed += [p for p in sorted(checkpoint_dir.iterdir()) if _LEFTOVER.match(p.name)]
    for path in removed:
        remove_path(path)
    removed += checkpoints.remove_stale_staging(checkpoint_dir)
    if removed:
        names = ", ".join(str(p.relative_to(work_dir)) for p in removed)
        log(f"note: removed what an interrupted run left half-written in {work_dir}: {names}")


def _check_output(work_dir: Path, resume: bool, output: str) -> None:
    last = find_checkpoint(work_dir / CHECKPOINT_DIR, "last")
    if resume or not (last is not None or (work_dir / "boxtune-model.json").exists()):
        return
    raise TrainingError(
        "the output location already holds a training run"
        + (f" (staged in {work_dir})" if output != str(work_dir) else ""),
        where=output,
        hint="pass --resume (resume=True) to continue it, or choose a new --output",
    )


class _Run:
    """The mutable state of one training run and the steps that advance it."""

    def __init__(
        self,
        setup: ModelSetup,
        hp: Hyperparameters,
        data: TrainingData,
        detector: Detector,
        work_dir: Path,
        log: Log,
        progress: bool,
    ):
        self.setup, self.hp, self.data, self.detector = setup, hp, data, detector
        self.work_dir, self.log, self.progress = work_dir, log, progress
        self.checkpoint_dir = work_dir / CHECKPOINT_DIR
        engine = engines.get_engine(setup.engine_name)
        self.last_checkpoint = self.checkpoint_dir / engine.checkpoint_name("last")
        self.best_checkpoint = self.checkpoint_dir / engine.checkpoint_name("best")
        self.metrics_log = reporting.MetricsLog(work_dir / METRICS_LOG)
        self.memory = reporting.MemoryProbe()
        self.train_loader, self.val_loader = make_loaders(data, hp, detector.image_size)
        self.steps_per_epoch = len(self.train_loader)
        self.schedule, note = LearningRateSchedule.plan(
            peak=hp.learning_rate,
            steps_per_epoch=self.steps_per_epoch,
            epochs=hp.epochs,
            warmup_epochs=hp.warmup_epochs,
            warmup_steps=hp.warmup_steps,
            shape=hp.lr_schedule,
            max_seconds=hp.max_runtime_seconds,
        )
        if note:
            log(note)
        self.tracker = BestEpochTracker(
            metric=hp.early_stopping_metric,
            min_delta=hp.early_stopping_min_delta,
            patience=hp.early_stopping_patience,
            enabled=hp.early_stopping,
        )
        self.guard = DivergenceGuard()
        self.state = TrainerState(
            model_id=setup.model_id,
            labels=data.label_map.to_json(),
            hyperparameters=hp.to_strings(),
        )
        self.stop_reason = "completed"
        self.segment_start = time.monotonic()
        self.segment_base_seconds = 0.0
        self.current_lr = hp.learning_rate
        self.warnings: list[str] = []
        # Running sums of the epoch in progress (saved by an interruption mid-epoch).
        self._sums: dict[str, float] = {}

    # -- start / resume ------------------------------------------------------------------------
    def start(self, resume: bool) -> None:
        last = self.last_checkpoint
        if resume and last.exists():
            self._resume_from(last)
        elif resume:
            self.log(f"note: no checkpoint at {last}; starting from the first epoch")
            self.metrics_log.rewrite([])
        else:
            self.metrics_log.rewrite([])
        self.segment_start = time.monotonic()
        self.segment_base_seconds = self.state.train_seconds
        self.log(
            f"training {self.setup.model_id} on {len(self.data.train)} images "
            f"({len(self.data.label_map)} classes: {', '.join(self.data.label_map.names)}), "
            f"validating on {len(self.data.validation)}; {self.hp.epochs} epochs of "
            f"{self.steps_per_epoch} steps, batch_size={self.hp.batch_size}, "
            f"image_size={self.detector.image_size}, optimizer={self.hp.optimizer}, "
            f"learning_rate={self.hp.learning_rate}"
        )

    def _resume_from(self, path: Path) -> None:
        saved = checkpoints.load(self.detector, path)
        if saved.model_id != self.setup.model_id:
            raise TrainingError(
                f"the checkpoint is of model {saved.model_id}, not {self.setup.model_id}",
                where=str(path),
                hint="resume with the same --model-id, or use a new --output",
            )
        if LabelMap.from_json(saved.labels) != self.data.label_map:
            raise TrainingError(
                "the checkpoint was trained on other classes than the training data's",
                where=str(path),
                hint="resume with the same dataset, or use a new --output",
            )
        changed = {
            k: (saved.hyperparameters.get(k), v)
            for k, v in self.hp.to_strings().items()
            if saved.hyperparameters.get(k) != v
        }
        for name, (old, new) in changed.items():
            self.log(f"note: resuming with {name}={new} (the interrupted run used {old})")
        saved.hyperparameters = self.hp.to_strings()
        self.state = saved
        self.tracker = BestEpochTracker.from_state(saved.tracker) if saved.tracker else self.tracker
        # Early-stopping options may have changed on resume; the best value so far stays.
        self.tracker.min_delta = self.hp.early_stopping_min_delta
        self.tracker.patience = self.hp.early_stopping_patience
        self.tracker.enabled = self.hp.early_stopping
        self.guard = DivergenceGuard.from_state(saved.guard) if saved.guard else self.guard
        self.metrics_log.rewrite(saved.history)
        where = f"epoch {saved.epoch}" + (f", step {saved.step}" if saved.step else "")
        self.log(f"resuming from {path} at {where}")

    # -- epochs --------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.segment_base_seconds + (time.monotonic() - self.segment_start)

    def out_of_time(self) -> bool:
        return 0 < self.hp.max_runtime_seconds <= self.elapsed()

    def train_epochs(self) -> None:
        while self.state.epoch < self.hp.epochs and self.stop_reason == "completed":
            epoch = self.state.epoch
            self.memory.reset_peak()
            summary = self._train_one_epoch(epoch)
            started = time.monotonic()
            result = validate(
                self.detector,
                self.val_loader,
                self.data.validation,
                self.data.label_map,
                self.hp.score_threshold,
            )
            summary["validation_seconds"] = round(time.monotonic() - started, 3)
            self._finish_epoch(epoch, summary, result)
            if self.tracker.should_stop():
                self.stop_reason = "early_stopping"
                self.log(
                    f"early stopping: validation {self.tracker.metric} did not improve by more "
                    f"than {self.tracker.min_delta} for {self.tracker.patience} epochs; best "
                    f"epoch {self.tracker.best_epoch}"
                )
            elif self.out_of_time() and self.state.epoch < self.hp.epochs:
                self.stop_reason = "max_runtime_seconds"
                self.log(f"stopping: max_runtime_seconds={self.hp.max_runtime_seconds:g} reached")

    def _train_one_epoch(self, epoch: int) -> dict:
        from tqdm import tqdm  # a progress bar with ETA on stderr; stdout keeps the log lines

        self.train_loader.set_epoch(epoch)
        partial = self.state.partial_epoch or {}
        sums = {
            "images": partial.get("images", 0),
            "loss": partial.get("loss", 0.0),
            "localization": partial.get("localization", 0.0),
            "classification": partial.get("classification", 0.0),
            "seconds": partial.get("seconds", 0.0),
            # CPU time of this process: comparable across runs on a shared, busy machine.
            "cpu_seconds": partial.get("cpu_seconds", 0.0),
        }
        skip = self.state.step
        self._sums = sums
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=skip,
            desc=f"epoch {epoch + 1}/{self.hp.epochs}",
            unit="step",
            file=sys.stderr,
            disable=not self.progress,
            dynamic_ncols=True,
            leave=False,
        )
        step_started = epoch_started = time.monotonic()
        cpu_started = time.process_time()
        try:
            for step, (images, targets) in enumerate(self.train_loader):
                if step < skip:  # an interrupted epoch: same batches, already trained on
                    continue
                lr = self.schedule.learning_rate(self.state.global_step, self.elapsed())
                self.detector.set_learning_rate(lr)
                self.current_lr = lr
                losses = self.detector.train_step(images, targets)
                loss = float(losses["loss"])
                self.guard.check(
                    loss, epoch=epoch, step=step, learning_rate=lr, optimizer=self.hp.optimizer
                )
                count = len(targets)
                sums["images"] += count
                sums["loss"] += loss * count
                sums["localization"] += float(losses.get("localization", 0.0)) * count
                sums["classification"] += float(losses.get("classification", 0.0)) * count
                now, cpu_now = time.monotonic(), time.process_time()
                sums["seconds"] += now - step_started
                sums["cpu_seconds"] += cpu_now - cpu_started
                step_started, cpu_started = now, cpu_now
                self.state.step = step + 1
                self.state.global_step += 1
                bar.update(1)
                bar.set_postfix(
                    loss=f"{loss:.4f}",
                    lr=f"{lr:.2e}",
                    run_eta=self._run_eta(epoch, step, skip, now - epoch_started),
                    refresh=step == skip,  # show the first ETA at once
                )
                if self.out_of_time():
                    break
        finally:
            bar.close()
        return sums

    def _run_eta(self, epoch: int, step: int, skip: int, seconds: float) -> str:
        """Time left for the whole run at this epoch's pace (validation not included)."""
        from tqdm import tqdm

        per_step = seconds / max(1, step + 1 - skip)
        left = (self.steps_per_epoch - step - 1) + (
            self.hp.epochs - epoch - 1
        ) * self.steps_per_epoch
        eta = left * per_step
        if self.hp.max_runtime_seconds > 0:
            eta = min(eta, max(0.0, self.hp.max_runtime_seconds - self.elapsed()))
        return tqdm.format_interval(eta)

    def _finish_epoch(self, epoch: int, sums: dict, result: ValidationResult) -> None:
        images = max(sums["images"], 1)
        speed = sums["images"] / max(sums["seconds"], 1e-9)
        train_loss = sums["loss"] / images
        self.log(reporting.epoch_line(epoch, speed, train_loss))
        self.log(reporting.validation_line(epoch, result.localization, result.classification))
        self.log(reporting.map_line(epoch, result.map, result.map50))
        improved = self.tracker.update(epoch, result.metric(self.tracker.metric))
        problem = result.problem()
        if problem:
            self.log(f"WARNING: [Epoch {epoch}] {problem}")
        record = {
            "epoch": epoch,
            "steps": self.state.step,
            "images": sums["images"],
            "learning_rate": self.current_lr,
            "loss": train_loss,
            "localization": sums["localization"] / images,
            "classification": sums["classification"] / images,
            "val_loss": result.loss,
            "val_localization": result.localization,
            "val_classification": result.classification,
            "val_map": result.map,
            "val_map50": result.map50,
            "val_detections": result.detections,
            "val_useful_detections": result.useful_detections,
            "samples_per_second": round(speed, 3),
            "train_seconds": round(sums["seconds"], 3),
            "train_cpu_seconds": round(sums["cpu_seconds"], 3),
            "validation_seconds": sums["validation_seconds"],
            "rss_mb": _round(self.memory.rss_mb()),
            "peak_rss_mb": _round(self.memory.peak_mb()),
            "best": improved,
        }
        if problem:
            record["warning"] = problem
        self.state.history.append(record)
        self.state.epoch = epoch + 1
        self.state.step = 0
        self.state.partial_epoch = {}
        self.state.tracker = self.tracker.state()
        self.state.guard = self.guard.state()
        self.state.train_seconds = self.elapsed()
        if improved:
            self.state.best_evaluation = result.evaluation.to_json()
            checkpoints.save(self.detector, self.best_checkpoint, self.state)
        checkpoints.save(self.detector, self.last_checkpoint, self.state)
        self.metrics_log.append(record)

    def save_interrupted(self) -> Path:
        """Checkpoint mid-epoch: ``--resume`` skips the batches this epoch already trained on."""
        self.state.partial_epoch = dict(self._sums)
        self.state.tracker = self.tracker.state()
        self.state.guard = self.guard.state()
        self.state.train_seconds = self.elapsed()
        checkpoints.save(self.detector, self.last_checkpoint, self.state)
        return self.last_checkpoint

    # -- export --------------------------------------------------------------------------------
    def export(self) -> TrainResult:
        from boxtune.artifacts import write_artifact

        history = self.state.history
        if not history:
            raise TrainingError(
                "no epoch finished, so there is no model to export",
                where=str(self.work_dir),
                hint="raise epochs or max_runtime_seconds",
            )
        best_epoch = (
            self.tracker.best_epoch
            if self.tracker.best_epoch is not None
            else (history[-1]["epoch"])
        )
        if best_epoch != history[-1]["epoch"]:
            self.log(f"exporting the best epoch, {best_epoch} (validation {self.tracker.metric})")
            checkpoints.load(self.detector, self.best_checkpoint)
        best = next(r for r in history if r["epoch"] == best_epoch)
        metrics = self._final_metrics(best)
        artifact_dir = _write_artifact_into(
            self.work_dir,
            lambda staging: write_artifact(
                self.detector,
                staging,
                model_id=self.setup.model_id,
                hyperparameters=self.hp.to_strings(),
                metrics=metrics,
                history=history,
            ),
        )
        self.log(
            f"done: best epoch {best_epoch}, validation mAP50 {_show(best['val_map50'])}, "
            f"mAP {_show(best['val_map'])}; model written to {artifact_dir}"
        )
        return TrainResult(
            output=str(self.work_dir),
            artifact_dir=Path(artifact_dir),
            metrics=metrics,
            history=list(history),
            warnings=self.warnings,
        )

    def _final_metrics(self, best: dict) -> dict:
        history = self.state.history
        images = sum(r["images"] for r in history)
        seconds = sum(r["train_seconds"] for r in history)
        metrics: dict[str, Any] = {
            "model_id": self.setup.model_id,
            "base_artifact": self.setup.artifact_location,
            "best_epoch": best["epoch"],
            "epochs_completed": len(history),
            "stop_reason": self.stop_reason,
            "selection_metric": self.tracker.metric,
            "validation": {
                "source": self.data.validation_source,
                "images": len(self.data.validation),
                "map": best["val_map"],
                "map50": best["val_map50"],
                "loss": best["val_loss"],
                "localization": best["val_localization"],
                "classification": best["val_classification"],
            },
            "training": {
                "images": len(self.data.train),
                "seconds": round(seconds, 3),
                "images_per_second": round(images / max(seconds, 1e-9), 3),
            },
            "evaluation": self.state.best_evaluation,
        }
        problem = best.get("warning")
        if problem:
            message = (
                f"{problem}; this model is not usable as it is: train longer (epochs), lower "
                "the learning_rate, check the labels with `boxtune data validate`, or add data"
            )
            metrics["warning"] = message
            self.warnings.append(message)
            banner = "!" * 78
            for line in (banner, f"WARNING: {message}", banner):
                self.log(line)
        return metrics


def _write_artifact_into(work_dir: Path, write: Callable[[Path], Path]) -> Path:
    """Write the artifact next to checkpoints/ and metrics.jsonl in ``work_dir``.

    The artifact is written whole into a staging dir, then its files move in one by one with
    the manifest last (an old manifest goes first): a reader sees either no artifact or a
    complete one whose hashes match.
    """
    from boxtune.artifacts import MANIFEST_FILE

    staging = work_dir / _ARTIFACT_STAGING
    shutil.rmtree(staging, ignore_errors=True)
    written = Path(write(staging))
    try:
        (work_dir / MANIFEST_FILE).unlink(missing_ok=True)
        for name in sorted(os.listdir(written)):
            if name != MANIFEST_FILE:  # files, or directories (a SavedModel) as a whole
                move_into_place(written / name, work_dir / name)
        os.replace(written / MANIFEST_FILE, work_dir / MANIFEST_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return work_dir


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
