"""The training loop, top to bottom: `fit` trains an `Experiment` (built by
`mtlrun.experiment.build`) epoch by epoch, with evaluation, images and checkpoints;
`train_epoch` is one pass over the training split. The run around it (its folder, status,
signals and ranks) is `mtlrun.lifecycle`'s."""

import math
import time
from functools import partial
from typing import Any

import torch
from omegaconf import OmegaConf
from rich.progress import Progress as RichProgress

from mtlrun.affinity import affinity_records
from mtlrun.checkpoint import Progress, restore, save
from mtlrun.errors import TrainingDiverged
from mtlrun.evaluate import DIVERGENCE_ADVICE, check_finite, evaluate
from mtlrun.experiment import Experiment
from mtlrun.heatmap import affinity_matrix, save_heatmap
from mtlrun.images import save_images, save_interpolation
from mtlrun.loggers import Logger
from mtlrun.runfolder import (
    RunFolder,
    seconds_since_process_start,
    write_json,
)
from mtlrun.sharing.base import OWN_LOSS
from mtlrun.signals import StoppedMidway, StopSignals
from mtlrun.step import train_step
from mtlrun.tasks import Task
from mtlrun.terminal import Reporter, metrics_table


def fit(
    experiment: Experiment,
    run: RunFolder,
    reporter: Reporter,
    loggers: Logger,
    stop: StopSignals,
    resume: bool,
) -> dict[str, Any]:
    """The training loop: epochs of shuffled batches, evaluation, images and checkpoints. Under
    DDP every rank runs it alike; the other ranks' run folder, reporter and loggers take the
    same calls and write nothing."""
    cfg, trainer, data, model = (
        experiment.cfg,
        experiment.trainer,
        experiment.data,
        experiment.model,
    )
    loggers.start(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    data_order = torch.Generator().manual_seed(int(cfg.seed))
    progress = Progress()
    if resume:
        progress = restore(experiment, run.checkpoint("last"), data_order)
        loggers.resume(progress.epoch)
        reporter.print(f"resuming at epoch {progress.epoch}, batch {progress.batch}")
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
                "step": progress.step,
                "split": split,
                **stage,
                "seconds": round(seconds, 3),
                **metrics,
            }
        )

    if not resume:
        run.update_meta(startup_seconds=seconds_since_process_start())
    started = time.perf_counter() - progress.seconds
    epoch = progress.epoch
    epoch_data_order = data_order.get_state()
    try:
        for epoch in range(progress.epoch, trainer.epochs + 1):
            epoch_data_order = data_order.get_state()  # replays this epoch's order on resume
            epoch_started = time.perf_counter()
            model.begin_epoch(epoch)
            with reporter.progress() as bar:
                train_metrics = train_epoch(experiment, data_order, progress, bar, stop)
            affinity = experiment.affinity.epoch_matrix() if experiment.affinity else None
            if affinity is not None:
                names = [task.name for task in experiment.loss_tasks]
                train_metrics.update(affinity_records(names, affinity))
                matrix, title = (
                    affinity_matrix(train_metrics, names),
                    f"task affinity, epoch {epoch}",
                )
                heatmap = run.write_file(
                    run.images / f"affinity_e{epoch:03d}.png",
                    partial(save_heatmap, names, matrix, f"{title}: Z(i→j)"),
                )
                loggers.log_image("affinity", heatmap, epoch)
            progress.epoch, progress.batch, progress.epoch_sums = epoch + 1, 0, None
            progress.seconds = time.perf_counter() - started
            seconds = time.perf_counter() - epoch_started
            # Before anything is saved from this epoch: best.pt and last.pt hold finite weights.
            check_finite_weights(experiment, f"in epoch {epoch}")
            log("train", train_metrics, seconds)
            reporter.print(epoch_line(epoch, trainer.epochs, train_metrics, seconds))

            if epoch % trainer.eval_every == 0 or epoch == trainer.epochs:
                if len(data.val):
                    val = progress.last_val = evaluate(experiment, data.val, "val")
                    check_finite(val, f"after epoch {epoch}")
                    log("val", val, progress.seconds)
                    reporter.print(metrics_table(f"epoch {epoch} · validation", val))
                    if progress.best_val_loss is None or val["val/loss"] < progress.best_val_loss:
                        progress.best_val_loss, progress.best_epoch = val["val/loss"], epoch
                        save(experiment, run, "best", progress, data_order)
                for tag, path in save_images(experiment, run, f"e{epoch:03d}").items():
                    loggers.log_image(tag, path, epoch)
            save(experiment, run, "last", progress, data_order)
            stop.check()
    except KeyboardInterrupt as interrupt:
        progress.seconds = time.perf_counter() - started
        # Stopped at a step boundary inside an epoch: the checkpoint replays that epoch's order.
        # Stopped midway (a second Ctrl-C), the weights may be half a step on: last.pt stays.
        if progress.batch and not isinstance(interrupt, StoppedMidway):
            save(experiment, run, "last", progress, data_order, epoch_data_order)
        loggers.close()
        raise

    # The final numbers: the last model on the test split, with the costlier final metrics.
    # A stop request is honoured here too: last.pt is the end of training, `resume` redoes this
    # (its records belong to the last epoch, also when a resumed run's loop had none to run).
    epoch = trainer.epochs
    try:
        stop.check()
        test = evaluate(experiment, data.test, "test", final=True, after_batch=stop.check)
    except KeyboardInterrupt:
        loggers.close()
        raise
    check_finite(test, "at the end of training")
    log("test", test, time.perf_counter() - started)
    reporter.print(metrics_table("test (final model)", test))
    interpolation = save_interpolation(experiment, run)
    if interpolation is not None:
        loggers.log_image("interpolation", interpolation, trainer.epochs)
    last_val = progress.last_val
    if last_val is None and len(data.val):  # resumed from a checkpoint that did not keep it
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
        "best_epoch": progress.best_epoch,
        "best_val_loss": progress.best_val_loss,
        "epochs": trainer.epochs,
        "steps": progress.step,
        "seconds": round(time.perf_counter() - started, 3),
    }
    run.write_file(run.summary_path, partial(write_json, data=summary))
    loggers.finish(OmegaConf.to_container(cfg, resolve=True), summary)  # type: ignore[arg-type]
    loggers.close()
    return summary


def train_epoch(
    experiment: Experiment,
    data_order: torch.Generator,
    progress: Progress,
    bar: RichProgress,
    stop: StopSignals,
) -> dict[str, float]:
    """One pass over the shuffled training split; returns the mean losses and the weights."""
    trainer, ranks, loss_tasks = experiment.trainer, experiment.ranks, experiment.loss_tasks
    train_split, augment = experiment.data.train, experiment.data.augment
    # Summed losses and example counts (per task: fewer where targets are missing), on the
    # device and read back once per epoch: no host sync per step.
    sums = progress.epoch_sums
    if sums is None:
        sums = torch.zeros(2, 1 + len(loss_tasks), device=experiment.device)
    total_batches = train_split.num_batches(trainer.batch_size)
    bar_task = bar.add_task(
        f"epoch {progress.epoch}/{trainer.epochs}", total=total_batches, completed=progress.batch
    )
    experiment.model.train()
    for index, global_batch in enumerate(train_split.batches(trainer.batch_size, data_order)):
        if index < progress.batch:
            continue  # trained on before the interruption
        if augment is not None:  # the whole batch, before sharding: as on one process
            global_batch = augment(global_batch)
        batch, shard = ranks.shard(global_batch)
        losses = train_step(experiment, batch, shard, progress.step)
        sums[0] += losses.values * losses.counts
        sums[1] += losses.counts
        progress.batch, progress.step, progress.epoch_sums = index + 1, progress.step + 1, sums
        bar.advance(bar_task)
        stop.check()
    ranks.reduce_sum([sums])
    means = (sums[0] / sums[1].clamp(min=1)).tolist()
    if not all(math.isfinite(value) for value in means):
        raise TrainingDiverged(
            f"the training loss became {means[0]} in epoch {progress.epoch}; {DIVERGENCE_ADVICE}"
        )
    experiment.weighting.end_epoch(means[1:])
    metrics = {"train/loss": means[0]}
    for task, value in zip(loss_tasks, means[1:], strict=True):
        metrics[f"train/{task.name}/loss"] = value
    logged = experiment.weighting.logged()
    experiment.check_logged(logged)
    for key, value in logged.items():
        metrics[f"train/{key}"] = value
    check_finite(metrics, f"in epoch {progress.epoch}")
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
            raise TrainingDiverged(
                f"the weights became NaN or infinite ({name}) {when}; {DIVERGENCE_ADVICE}"
            )


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
