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
from mtlrun.evaluate import CALM, check_finite, evaluate
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
from mtlrun.signals import StopSignals
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

    if not resume:
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
                matrix, title = (
                    affinity_matrix(train_metrics, names),
                    f"task affinity, epoch {epoch}",
                )
                heatmap = run.write_file(
                    run.images / f"affinity_e{epoch:03d}.png",
                    partial(save_heatmap, names, matrix, f"{title}: Z(i→j)"),
                )
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
                        save(experiment, run, "best", at, data_order)
                for tag, path in save_images(experiment, run, f"e{epoch:03d}").items():
                    loggers.log_image(tag, path, epoch)
            save(experiment, run, "last", at, data_order)
            stop.check()
    except KeyboardInterrupt:
        at.seconds = time.perf_counter() - started
        if at.batch:  # stopped inside an epoch: the checkpoint replays that epoch's order
            save(experiment, run, "last", at, data_order, epoch_data_order)
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
    interpolation = save_interpolation(experiment, run)
    if interpolation is not None:
        loggers.log_image("interpolation", interpolation, trainer.epochs)
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
    run.write_file(run.summary_path, partial(write_json, data=summary))
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
