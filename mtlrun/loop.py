"""The training loop, top to bottom: `train` runs an `Experiment` (built by
`mtlrun.experiment.build`) in its run folder; `fit` is the loop itself."""

import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from rich.progress import Progress as RichProgress

from mtlrun.affinity import affinity_records
from mtlrun.checkpoint import load_checkpoint, restore_rng_states, rng_states, save_checkpoint
from mtlrun.data import Data, Split
from mtlrun.distributed import SINGLE, Ranks, spawn, torchrun_ranks
from mtlrun.errors import TrainingDiverged, UserError
from mtlrun.evaluate import CALM, check_finite, evaluate
from mtlrun.experiment import Experiment, build, check_config
from mtlrun.images import (
    save_interpolations,
    save_predictions,
    save_prior_samples,
    save_reconstructions,
)
from mtlrun.loggers import Logger, LoggerConfig, Loggers
from mtlrun.report.grouping import affinity_matrix, save_heatmap
from mtlrun.runfolder import (
    RunFolder,
    disk_fault,
    seconds_since_process_start,
    this_process,
    write_json,
)
from mtlrun.sharing.base import OWN_LOSS
from mtlrun.tasks import Task
from mtlrun.terminal import Reporter, metrics_table


class Interrupted(KeyboardInterrupt):
    """Training stopped at a step boundary on Ctrl-C, SIGTERM, or submitit's pre-emption
    signal; its argument names the signal."""


def preemption_signal() -> signal.Signals | None:
    """The signal submitit sends a job before pre-emption or its time limit (SIGUSR2 unless
    $SUBMITIT_PREEMPT_SIGNAL names another), when this process is a submitit job."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)


class StopSignals:
    """Turns the first SIGINT / SIGTERM (or submitit's pre-emption signal) into a request the
    loop honours between steps, so the checkpoint it writes is exact; a second signal
    interrupts at once. On leaving, the handlers before it (submitit's) are back.

    Under DDP the ranks stop together: `check` asks whether any rank was signalled, and a
    second signal is only the first again (a launcher may hand on what the terminal already
    sent, and one rank stopping alone would leave the others waiting)."""

    def __init__(self, ranks: Ranks = SINGLE) -> None:
        self.ranks = ranks
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            preemption = preemption_signal()
            for signum in (signal.SIGINT, signal.SIGTERM, *([preemption] if preemption else [])):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received and not self.ranks.distributed:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def check(self) -> None:
        if self.ranks.any(self.received is not None):
            raise Interrupted(self.received or "a stop on another rank")


def train(
    cfg: DictConfig,
    run_dir: Path,
    resume: bool = False,
    command: str | None = None,
    ranks: Ranks | None = None,
) -> dict[str, Any]:
    """Train from `cfg` into `run_dir` (continuing from its last.pt with `resume`);
    meta.json's status ends as completed, failed or interrupted. `command` is the command line
    meta.json records (the one typed, when None). With `trainer.devices=N` this process starts
    N ranks and waits for them; under torchrun it is one of the ranks (`mtlrun.distributed`).
    Only rank 0 writes into `run_dir`."""
    check_config(cfg)  # before anything is written
    if ranks is None:
        ranks = torchrun_ranks(cfg) or SINGLE
        devices = int(cfg.trainer.get("devices", 1))
        if devices > 1 and not ranks.distributed:
            return spawn(cfg, run_dir, resume, command, devices)
    if ranks.distributed:
        cfg.trainer.devices = ranks.size  # what config.yaml records: resume starts as many
    run = RunFolder(run_dir)
    try:
        if ranks.leader and resume:
            run.update_meta(status="running", end_time=None, **this_process())
        elif ranks.leader:
            run.start(device=str(cfg.device), seed=int(cfg.seed), command=command)
            run.config_path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    except OSError as error:
        fault = disk_fault(error, run_dir)
        if fault:
            raise UserError(f"{fault}; free it, or train into another folder") from None
        raise
    show_progress = bool(cfg.trainer.get("progress", True))
    reporter = Reporter(run.log_path if ranks.leader else None, show_progress)
    try:
        with StopSignals(ranks) as stop:
            experiment = build(cfg, ranks)
            if ranks.leader:
                ranks_field = {"ranks": ranks.size} if ranks.distributed else {}
                run.update_meta(
                    device=str(experiment.device), threads=torch.get_num_threads(), **ranks_field
                )
            summary = fit(experiment, run, reporter, stop, resume)
    except KeyboardInterrupt as interrupt:
        if ranks.leader:
            run.finish("interrupted")
        how = interrupt.args[0] if interrupt.args else "SIGINT"
        reporter.print(f"{how}: stopped; continue with `mtlrun resume {run_dir}`")
        raise
    except BaseException as error:
        fault = disk_fault(error, run_dir)
        reason = fault or (str(error).splitlines()[0] if str(error) else repr(error))
        try:
            if ranks.leader:
                run.finish("failed", error=reason)
        except OSError:
            pass  # the disk that failed the run refuses meta.json too: it says "running"
        if fault:
            raise UserError(
                f"{fault}; free it, then continue with `mtlrun resume {run_dir}`"
            ) from None
        raise
    finally:
        try:
            reporter.close()
        except OSError:
            pass  # train.log's last lines, on a disk that is full
    if ranks.leader:
        run.finish("completed", seconds=summary["seconds"])
    return summary


@dataclass
class Progress:
    """Where training stands. Checkpoints hold it, so a resumed run repeats and skips nothing,
    down to the batch when it was interrupted inside an epoch."""

    epoch: int = 1  # the epoch in progress (or the next to start)
    batch: int = 0  # batches of that epoch already trained on
    step: int = 0
    epoch_sums: torch.Tensor | None = None  # summed losses of the epoch so far
    best_val_loss: float | None = None
    best_epoch: int | None = None
    seconds: float = 0.0


def fit(
    experiment: Experiment, run: RunFolder, reporter: Reporter, stop: StopSignals, resume: bool
) -> dict[str, Any]:
    """The training loop: epochs of shuffled batches, evaluation, images and checkpoints."""
    cfg, trainer, data, model, ranks = (
        experiment.cfg,
        experiment.trainer,
        experiment.data,
        experiment.model,
        experiment.ranks,
    )
    # Rank 0 logs; the other ranks' logger takes the same calls and writes nothing.
    loggers: Logger = Logger(LoggerConfig(), run.path)
    if ranks.leader:
        loggers = Loggers(run.path, cfg.get("logger"))
    loggers.start(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    data_order = torch.Generator().manual_seed(int(cfg.seed))
    at = Progress()
    if resume:
        at = restore(experiment, run.checkpoint("last"), data_order)
        loggers.resume(at.epoch)
        reporter.print(f"resuming at epoch {at.epoch}, batch {at.batch}")
    n_params = sum(p.numel() for p in model.parameters())
    reporter.print(
        f"{cfg.name}: {type(model).__name__} on {experiment.device}, {n_params:,} parameters, "
        f"tasks {', '.join(t.name for t in experiment.tasks)}; {len(data.train):,} train / "
        f"{len(data.val):,} val / {len(data.test):,} test examples"
    )

    def log(split: str, metrics: dict[str, float], seconds: float) -> None:
        stage = {} if model.stage is None else {"stage": model.stage}
        loggers.log_metrics(
            {
                "epoch": epoch,
                "step": at.step,
                "split": split,
                **stage,
                "seconds": round(seconds, 3),
                **metrics,
            }
        )

    if not resume and ranks.leader:
        run.update_meta(startup_seconds=seconds_since_process_start())
    started = time.perf_counter() - at.seconds
    epoch = at.epoch
    last_val: dict[str, float] | None = None  # the final model's, which selection may read
    epoch_data_order = data_order.get_state()
    try:
        for epoch in range(at.epoch, trainer.epochs + 1):
            epoch_data_order = data_order.get_state()  # replays this epoch's order on resume
            epoch_started = time.perf_counter()
            model.begin_epoch(epoch)
            with reporter.progress() as bar:
                train_metrics = train_epoch(experiment, data_order, at, bar, stop)
            affinity = experiment.affinity.epoch_matrix() if experiment.affinity else None
            if affinity is not None:
                names = [task.name for task in experiment.loss_tasks]
                train_metrics.update(affinity_records(names, affinity))
                if ranks.leader:
                    heatmap = run.images / f"affinity_e{epoch:03d}.png"
                    title = f"task affinity, epoch {epoch}: Z(i→j)"
                    save_heatmap(names, affinity_matrix(train_metrics, names), title, heatmap)
                    loggers.log_image("affinity", heatmap, epoch)
            at.epoch, at.batch, at.epoch_sums = epoch + 1, 0, None
            at.seconds = time.perf_counter() - started
            seconds = time.perf_counter() - epoch_started
            # Before anything is saved from this epoch: best.pt and last.pt hold finite weights.
            check_finite_weights(experiment, f"in epoch {epoch}")
            log("train", train_metrics, seconds)
            reporter.print(epoch_line(epoch, trainer.epochs, train_metrics, seconds))

            if epoch % trainer.eval_every == 0 or epoch == trainer.epochs:
                if len(data.val):
                    val = last_val = evaluate(experiment, data.val, "val")
                    check_finite(val, f"after epoch {epoch}")
                    log("val", val, at.seconds)
                    reporter.print(metrics_table(f"epoch {epoch} · validation", val))
                    if at.best_val_loss is None or val["val/loss"] < at.best_val_loss:
                        at.best_val_loss, at.best_epoch = val["val/loss"], epoch
                        save(experiment, run.checkpoint("best"), at, data_order)
                if ranks.leader:
                    for tag, path in save_images(experiment, run, f"e{epoch:03d}").items():
                        loggers.log_image(tag, path, epoch)
            save(experiment, run.checkpoint("last"), at, data_order)
            stop.check()
    except KeyboardInterrupt:
        at.seconds = time.perf_counter() - started
        if at.batch:  # stopped inside an epoch: the checkpoint replays that epoch's order
            save(experiment, run.checkpoint("last"), at, data_order, epoch_data_order)
        loggers.close()
        raise

    # The final numbers: the last model on the test split, with the costlier final metrics.
    # A stop request is honoured here too: last.pt is the end of training, `resume` redoes this.
    try:
        stop.check()
        test = evaluate(experiment, data.test, "test", final=True, after_batch=stop.check)
    except KeyboardInterrupt:
        loggers.close()
        raise
    check_finite(test, "at the end of training")
    log("test", test, time.perf_counter() - started)
    reporter.print(metrics_table("test (final model)", test))
    reconstruction = experiment.reconstruction
    if reconstruction is not None and data.info.is_image and ranks.leader:
        path = run.images / "interpolation.png"
        with experiment.autocast, own_random_numbers(experiment):
            save_interpolations(
                model, reconstruction.name, image_source(data).head(16).inputs, path
            )
        loggers.log_image("interpolation", path, trainer.epochs)
    if last_val is None and len(data.val):  # resumed after the last validation
        last_val = evaluate(experiment, data.val, "val")
        check_finite(last_val, "at the end of training")
    summary = {
        "metrics": test,
        "val_metrics": last_val or {},
        "directions": metric_directions(experiment.tasks, [*test, *(last_val or {})]),
        "primary_metrics": {
            task.name: f"test/{task.name}/{task.primary_metric}"
            for task in experiment.tasks
            if task.primary_metric is not None
        },
        "best_epoch": at.best_epoch,
        "best_val_loss": at.best_val_loss,
        "epochs": trainer.epochs,
        "steps": at.step,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if ranks.leader:
        write_json(run.summary_path, summary)
    loggers.finish(OmegaConf.to_container(cfg, resolve=True), summary)  # type: ignore[arg-type]
    loggers.close()
    return summary


def train_epoch(
    experiment: Experiment,
    data_order: torch.Generator,
    at: Progress,
    bar: RichProgress,
    stop: StopSignals,
) -> dict[str, float]:
    """One pass over the shuffled training split; returns the mean losses and the weights."""
    trainer, model, optimizer = experiment.trainer, experiment.model, experiment.optimizer
    ranks, loss_tasks = experiment.ranks, experiment.loss_tasks
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    # A task that is not trained on this epoch (two-stage training) keeps its place in the
    # loss list, detached, so weightings and logs see the same tasks every epoch.
    active = [model.trains(task.name) for task in loss_tasks]
    train_split = experiment.data.train
    # Summed losses and example counts (per task: fewer where targets are missing), on the
    # device and read back once per epoch: no host sync per step.
    sums = at.epoch_sums
    if sums is None:
        sums = torch.zeros(2, 1 + len(loss_tasks), device=experiment.device)
    total_batches = train_split.num_batches(trainer.batch_size)
    bar_task = bar.add_task(
        f"epoch {at.epoch}/{trainer.epochs}", total=total_batches, completed=at.batch
    )
    model.train()
    for index, global_batch in enumerate(train_split.batches(trainer.batch_size, data_order)):
        if index < at.batch:
            continue  # trained on before the interruption
        batch, has_rows = ranks.shard(global_batch)
        inputs = experiment.model_inputs(batch.inputs)
        affinity = experiment.affinity
        draws = affinity.draws(at.step) if affinity is not None else None
        with experiment.autocast:
            output = experiment.forward(inputs)
            losses = experiment.task_losses(output, batch)
            losses = [
                loss if on else loss.detach() for loss, on in zip(losses, active, strict=True)
            ]
        if affinity is not None:
            affinity.measure(at.step, losses, inputs, batch, draws)
        optimizer.zero_grad(set_to_none=True)
        total = experiment.weighting.backward(losses, output)
        ranks.reduce_gradients(parameters)
        if trainer.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.grad_clip)
        optimizer.step()
        experiment.weighting.after_step(partial(experiment.losses_on, inputs, batch))
        if experiment.scheduler is not None:
            experiment.scheduler.step()
        step_losses = torch.stack([total, *(loss.detach() for loss in losses)]).float()
        counts = [len(batch), *(task.example_count(batch) for task in loss_tasks)]
        if any(isinstance(count, torch.Tensor) for count in counts):  # targets missing
            counts = torch.stack([torch.as_tensor(c, device=sums.device) for c in counts])
        else:
            counts = len(batch)
        if not has_rows:
            counts = 0  # a stand-in row (see `Ranks.shard`)
        sums[0] += step_losses * counts
        sums[1] += counts
        at.batch, at.step, at.epoch_sums = index + 1, at.step + 1, sums
        bar.advance(bar_task)
        stop.check()
    ranks.reduce_sum([sums])
    means = (sums[0] / sums[1].clamp(min=1)).tolist()
    if not all(math.isfinite(value) for value in means):
        raise TrainingDiverged(f"the training loss became {means[0]} in epoch {at.epoch}; {CALM}")
    experiment.weighting.end_epoch(means[1:])
    metrics = {"train/loss": means[0]}
    for task, value in zip(loss_tasks, means[1:], strict=True):
        metrics[f"train/{task.name}/loss"] = value
    for key, value in experiment.weighting.logged().items():
        metrics[f"train/{key}"] = value
    check_finite(metrics, f"in epoch {at.epoch}")
    return metrics


def check_finite_weights(experiment: Experiment, when: str) -> None:
    """The model's and the weighting's parameters all finite (one host sync)."""
    named = [
        *experiment.model.named_parameters(),
        *(("weighting." + name, p) for name, p in experiment.weighting.named_parameters()),
    ]
    finite = torch.stack([p.detach().isfinite().all() for _, p in named]).tolist()
    for (name, _), ok in zip(named, finite, strict=True):
        if not ok:
            raise TrainingDiverged(f"the weights became NaN or infinite ({name}) {when}; {CALM}")


def metric_directions(tasks: list[Task], keys: list[str]) -> dict[str, str]:
    """Lower or higher is better, for every `<split>/loss` and `<split>/<task>/<metric>` key, so
    that reports need no model code to compare runs."""
    by_name = {task.name: task for task in tasks}
    directions = {}
    for key in keys:
        _, *rest = key.split("/")
        if rest == ["loss"] or rest[-1] == OWN_LOSS:
            directions[key] = "min"
        else:
            directions[key] = by_name[rest[0]].directions[rest[1]]
    return directions


def epoch_line(epoch: int, epochs: int, metrics: dict[str, float], seconds: float) -> str:
    per_task = ", ".join(
        f"{key.split('/')[1]} {value:.4f}"
        for key, value in metrics.items()
        if key.endswith("/loss") and key != "train/loss"
    )
    return (
        f"epoch {epoch}/{epochs}  train loss {metrics['train/loss']:.4f}  ({per_task})  "
        f"{seconds:.1f} s"
    )


def save(
    experiment: Experiment,
    path: Path,
    at: Progress,
    data_order: torch.Generator,
    epoch_data_order: torch.Tensor | None = None,
) -> None:
    """Model, optimiser, scheduler, weighting, RNG states and progress; `epoch_data_order` is
    the data generator's state at the start of an interrupted epoch. Under DDP every rank calls
    it: the checkpoint holds every rank's RNG states and the epoch's losses summed over the
    ranks, and rank 0 writes it."""
    scheduler, ranks = experiment.scheduler, experiment.ranks
    if epoch_data_order is None:
        epoch_data_order = data_order.get_state()
    progress = asdict(at)
    rng: Any = rng_states(data_order)
    if ranks.distributed:
        rng = ranks.gather(rng)
        if at.epoch_sums is not None:
            progress["epoch_sums"] = at.epoch_sums.clone()
            ranks.reduce_sum([progress["epoch_sums"]])
    if not ranks.leader:
        return
    save_checkpoint(
        path,
        {
            "model": experiment.model.state_dict(),
            "weighting": experiment.weighting.state_dict(),
            "optimizer": experiment.optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "progress": progress,
            "epoch_data_order": epoch_data_order,
            "rng": rng,
            "affinity": experiment.affinity.state() if experiment.affinity else None,
        },
    )


def restore(experiment: Experiment, path: Path, data_order: torch.Generator) -> Progress:
    checkpoint = load_checkpoint(path, experiment.device)
    experiment.model.load_state_dict(checkpoint["model"])
    experiment.weighting.load_state_dict(checkpoint["weighting"])
    experiment.optimizer.load_state_dict(checkpoint["optimizer"])
    if experiment.scheduler is not None:
        experiment.scheduler.load_state_dict(checkpoint["scheduler"])
    rng = checkpoint["rng"]
    ranks = experiment.ranks
    # A list holds each rank's states (a DDP run); a run resumed on other ranks reuses them.
    restore_rng_states(rng[ranks.rank % len(rng)] if isinstance(rng, list) else rng, data_order)
    data_order.set_state(checkpoint["epoch_data_order"])
    at = Progress(**checkpoint["progress"])
    if experiment.affinity is not None and checkpoint.get("affinity") is not None:
        experiment.affinity.restore(checkpoint["affinity"])
    if not ranks.leader:
        at.epoch_sums = None  # rank 0 carries the ranks' sums so far
    return at


def image_source(data: Data) -> Split:
    """Grids show validation images; the test images only when there is no validation split
    (images are never used to select anything)."""
    return data.val if len(data.val) else data.test


def save_images(experiment: Experiment, run: RunFolder, tag: str) -> dict[str, Path]:
    """The grids of one evaluation (image data only): inputs labelled with the predicted
    classes, reconstructions, and prior samples when the backbone has a prior."""
    if not experiment.data.info.is_image:
        return {}
    batch = image_source(experiment.data).head(8 * experiment.trainer.image_rows)
    # As the model sees them: a denoising task's grids show the corrupted inputs.
    inputs = experiment.model_inputs(batch.inputs)
    model, written = experiment.model, {}
    classifiers = {t.name: t.grid_label for t in experiment.tasks if t.grid_label is not None}
    reconstruction = experiment.reconstruction
    model.eval()
    with experiment.autocast, own_random_numbers(experiment):
        if classifiers:
            written["predictions"] = run.images / f"predictions_{tag}.png"
            save_predictions(model, inputs, batch.targets, classifiers, written["predictions"])
        if reconstruction is not None:
            written["reconstructions"] = run.images / f"recon_{tag}.png"
            save_reconstructions(model, reconstruction.name, inputs, written["reconstructions"])
        if reconstruction is not None and model.has_prior:
            sizes = [task.prior_samples for task in experiment.tasks if task.prior_samples]
            n = sizes[0] if sizes else 64
            written["samples"] = run.images / f"samples_{tag}.png"
            save_prior_samples(model, reconstruction.name, inputs, n, written["samples"])
    model.train()
    return written


def own_random_numbers(experiment: Experiment) -> Any:
    """Under DDP, the random numbers rank 0 draws for its images come from a fork of its
    generators, so that all ranks keep drawing alike for training (a randomised aggregator, such
    as PCGrad's order of projections, then draws the same on every rank)."""
    device = experiment.device
    return torch.random.fork_rng(
        devices=[device] if device.type == "cuda" else [],
        enabled=experiment.ranks.distributed,
        device_type=device.type,
    )
