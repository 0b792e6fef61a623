"""`mtlrun train`: build everything from the config, then one readable training loop."""

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from mtlrun.backbones import BACKBONES, Backbone
from mtlrun.checkpoint import load_checkpoint, restore_rng_states, rng_states, save_checkpoint
from mtlrun.config import check_choice, parse
from mtlrun.data import Data, Split, load_data
from mtlrun.errors import ConfigError, TrainingDiverged
from mtlrun.evaluate import evaluate
from mtlrun.images import save_interpolations, save_prior_samples, save_reconstructions
from mtlrun.optim import build_optimizer
from mtlrun.runfolder import RunFolder, write_json
from mtlrun.sharing import SHARING, MultiTaskModel
from mtlrun.tasks import Task, build_tasks
from mtlrun.tasks.generation import Generation
from mtlrun.tasks.reconstruction import Reconstruction
from mtlrun.terminal import Reporter, metrics_table


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 1000
    eval_every: int = 1  # evaluate on the validation split every this many epochs
    precision: str = "fp32"  # "fp32" or "bf16" (autocast)
    grad_clip: float = 0.0  # max global gradient norm; 0 turns clipping off
    deterministic: bool = False  # bit-for-bit repeatable runs (slower on GPU)
    compile: bool = False  # torch.compile the model
    image_rows: int = 2  # rows of input/reconstruction pairs in each reconstruction grid
    progress: bool = True  # the progress bar (shown only on a terminal)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ConfigError(f"device={name} but no CUDA GPU is visible; use device=cpu or auto")
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device={name} but only {count} GPU(s) are visible; use cuda:0 to cuda:{count - 1}"
            )
    elif device.type != "cpu":
        raise ConfigError(f"device={name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def seed_everything(seed: int, deterministic: bool) -> None:
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = not deterministic


@dataclass
class Experiment:
    """Everything a config builds: the data, the tasks, the model and its optimiser."""

    cfg: DictConfig
    trainer: TrainerConfig
    device: torch.device
    data: Data
    backbone: Backbone
    tasks: list[Task]
    model: MultiTaskModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None

    @property
    def autocast(self) -> torch.autocast:
        bf16 = self.trainer.precision == "bf16"
        return torch.autocast(self.device.type, torch.bfloat16, enabled=bf16)

    def task_of_type(self, kind: type[Task]) -> Task | None:
        return next((task for task in self.tasks if isinstance(task, kind)), None)


def build(cfg: DictConfig) -> Experiment:
    """Build from the config; every config mistake surfaces here, before any training."""
    trainer = parse(TrainerConfig, cfg.trainer, "trainer")
    check_choice("trainer.precision", trainer.precision, ("fp32", "bf16"))
    for key in ("epochs", "batch_size", "eval_batch_size", "eval_every"):
        if getattr(trainer, key) < 1:
            raise ConfigError(f"trainer.{key}={getattr(trainer, key)} must be at least 1")
    device = resolve_device(str(cfg.device))
    seed_everything(int(cfg.seed), trainer.deterministic)
    data = load_data(cfg.dataset, device, int(cfg.seed))

    def make_backbone() -> Backbone:
        return BACKBONES.get(cfg.backbone.name)(cfg.backbone, data.info)

    backbone = make_backbone()
    tasks = build_tasks(cfg.tasks, data.info, backbone)
    torch.manual_seed(int(cfg.seed))  # the same initial weights, whatever the checks drew
    model = SHARING.get(cfg.sharing.name)(cfg.sharing, make_backbone, tasks).to(device)
    steps_per_epoch = data.train.num_batches(trainer.batch_size)
    optimizer, scheduler = build_optimizer(cfg.optim, model, steps_per_epoch, trainer.epochs)
    return Experiment(cfg, trainer, device, data, backbone, tasks, model, optimizer, scheduler)


class Interrupted(KeyboardInterrupt):
    """Training stopped at a step boundary on Ctrl-C or SIGTERM (what SLURM sends before
    pre-emption)."""


class StopSignals:
    """Turns the first SIGINT / SIGTERM into a request the loop honours between steps, so the
    checkpoint it writes is exact; a second signal interrupts at once."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def check(self) -> None:
        if self.received:
            raise Interrupted(self.received)


def train(cfg: DictConfig, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Train from `cfg` into `run_dir` (continuing from its last.pt with `resume`);
    meta.json's status ends as completed, failed or interrupted."""
    run = RunFolder(run_dir)
    if resume:
        run.update_meta(status="running", end_time=None)
    else:
        run.start(device=str(cfg.device), seed=int(cfg.seed))
        (run_dir / "config.resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    reporter = Reporter(run_dir / "train.log", bool(cfg.trainer.get("progress", True)))
    try:
        with StopSignals() as stop:
            experiment = build(cfg)
            run.update_meta(device=str(experiment.device))
            summary = fit(experiment, run, reporter, stop, resume)
    except KeyboardInterrupt as interrupt:
        run.finish("interrupted")
        how = interrupt.args[0] if interrupt.args else "SIGINT"
        reporter.print(f"{how}: stopped; continue with `mtlrun resume {run_dir}`")
        raise
    except BaseException as error:
        run.finish("failed", error=str(error).splitlines()[0] if str(error) else repr(error))
        raise
    finally:
        reporter.close()
    run.finish("completed", seconds=summary["seconds"])
    return summary


def fit(
    experiment: Experiment, run: RunFolder, reporter: Reporter, stop: StopSignals, resume: bool
) -> dict[str, Any]:
    """The training loop: epochs of shuffled batches, evaluation, images and checkpoints."""
    cfg, trainer, data, model = (
        experiment.cfg,
        experiment.trainer,
        experiment.data,
        experiment.model,
    )
    optimizer, scheduler, device = experiment.optimizer, experiment.scheduler, experiment.device
    autocast = experiment.autocast
    forward = torch.compile(model) if trainer.compile else model
    loss_tasks = [task for task in experiment.tasks if task.has_loss]
    data_order = torch.Generator().manual_seed(int(cfg.seed))
    steps_per_epoch = data.train.num_batches(trainer.batch_size)

    # Where training stands; a checkpoint holds it, so a resumed run replays nothing and
    # skips nothing (down to the batch, when it was interrupted mid-epoch).
    state: dict[str, Any] = {
        "epoch": 1,
        "batch": 0,
        "step": 0,
        "epoch_sums": None,
        "best_val_loss": None,
        "best_epoch": None,
        "seconds": 0.0,
    }
    if resume:
        checkpoint = load_checkpoint(run.checkpoints / "last.pt", device)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
        state = checkpoint["state"]
        restore_rng_states(checkpoint["rng"], data_order)
        data_order.set_state(state.pop("epoch_data_order"))
        reporter.print(f"resuming at epoch {state['epoch']}, batch {state['batch']}")

    n_params = sum(p.numel() for p in model.parameters())
    reporter.print(
        f"{cfg.name}: {type(model).__name__} on {device}, {n_params:,} parameters, tasks "
        f"{', '.join(t.name for t in experiment.tasks)}; {len(data.train):,} train / "
        f"{len(data.val):,} val / {len(data.test):,} test examples"
    )

    def save(name: str, epoch_data_order: torch.Tensor) -> None:
        save_checkpoint(
            run.checkpoints / name,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "state": {**state, "epoch_data_order": epoch_data_order},
                "rng": rng_states(data_order),
            },
        )

    started = time.perf_counter() - state["seconds"]
    epoch = state["epoch"]
    epoch_data_order = data_order.get_state()
    try:
        model.train()
        for epoch in range(state["epoch"], trainer.epochs + 1):
            epoch_data_order = data_order.get_state()  # to replay this epoch's order on resume
            epoch_started = time.perf_counter()
            sums = state["epoch_sums"]
            if sums is None:
                sums = torch.zeros(1 + len(loss_tasks), device=device)
            with reporter.progress() as progress:
                bar = progress.add_task(
                    f"epoch {epoch}/{trainer.epochs}",
                    total=steps_per_epoch,
                    completed=state["batch"],
                )
                batches = data.train.batches(trainer.batch_size, data_order)
                for index, batch in enumerate(batches):
                    if index < state["batch"]:
                        continue  # trained on before the interruption
                    with autocast:
                        output = forward(batch.inputs)
                        losses = [t.loss(output.predictions[t.name], batch) for t in loss_tasks]
                        total = sum(t.weight * x for t, x in zip(loss_tasks, losses, strict=True))
                        if output.auxiliary_loss is not None:
                            total = total + output.auxiliary_loss
                    optimizer.zero_grad(set_to_none=True)
                    total.backward()
                    if trainer.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.grad_clip)
                    optimizer.step()
                    if scheduler is not None:
                        scheduler.step()
                    # Summed on the device and read back once per epoch: no per-step sync.
                    step_losses = torch.stack([total.detach(), *(x.detach() for x in losses)])
                    sums += step_losses.float() * len(batch)
                    state.update(batch=index + 1, step=state["step"] + 1, epoch_sums=sums)
                    progress.advance(bar)
                    stop.check()

            means = (sums / len(data.train)).tolist()
            if not all(map(lambda x: abs(x) < float("inf"), means)):
                raise TrainingDiverged(
                    f"the training loss became {means[0]} in epoch {epoch}; lower optim.lr, "
                    "set trainer.grad_clip (e.g. 1.0) or use trainer.precision=fp32"
                )
            state.update(
                epoch=epoch + 1, batch=0, epoch_sums=None, seconds=time.perf_counter() - started
            )
            train_metrics = {"train/loss": means[0]}
            for task, value in zip(loss_tasks, means[1:], strict=True):
                train_metrics[f"train/{task.name}/loss"] = value
            epoch_seconds = time.perf_counter() - epoch_started
            run.log_metrics(
                {
                    "epoch": epoch,
                    "step": state["step"],
                    "split": "train",
                    "seconds": round(epoch_seconds, 3),
                    **train_metrics,
                }
            )
            per_task = ", ".join(
                f"{t.name} {v:.4f}" for t, v in zip(loss_tasks, means[1:], strict=True)
            )
            reporter.print(
                f"epoch {epoch}/{trainer.epochs}  train loss {means[0]:.4f}  "
                f"({per_task})  {epoch_seconds:.1f} s"
            )

            last_epoch = epoch == trainer.epochs
            if (epoch % trainer.eval_every == 0 or last_epoch) and len(data.val):
                val = evaluate(
                    model, experiment.tasks, data.val, "val", trainer.eval_batch_size, autocast
                )
                run.log_metrics(
                    {
                        "epoch": epoch,
                        "step": state["step"],
                        "split": "val",
                        "seconds": round(time.perf_counter() - started, 3),
                        **val,
                    }
                )
                reporter.print(metrics_table(f"epoch {epoch} · validation", val))
                save_images(experiment, run, data.val, f"e{epoch:03d}")
                if state["best_val_loss"] is None or val["val/loss"] < state["best_val_loss"]:
                    state.update(best_val_loss=val["val/loss"], best_epoch=epoch)
                    save("best.pt", data_order.get_state())
            save("last.pt", data_order.get_state())
            stop.check()
    except KeyboardInterrupt:
        state["seconds"] = time.perf_counter() - started
        if state["epoch"] == epoch:  # interrupted inside the epoch: resume replays its order
            save("last.pt", epoch_data_order)
        raise

    # The final numbers: the last model on the test split, with the costlier final metrics.
    test = evaluate(
        model, experiment.tasks, data.test, "test", trainer.eval_batch_size, autocast, final=True
    )
    run.log_metrics(
        {
            "epoch": trainer.epochs,
            "step": state["step"],
            "split": "test",
            "seconds": round(time.perf_counter() - started, 3),
            **test,
        }
    )
    reporter.print(metrics_table("test (final model)", test))
    reconstruction = experiment.task_of_type(Reconstruction)
    if reconstruction is not None:
        pairs = (data.val if len(data.val) else data.test).head(16).inputs
        with autocast:
            save_interpolations(model, reconstruction.name, pairs, run.images / "interpolation.png")
    summary = {
        "metrics": test,
        "best_epoch": state["best_epoch"],
        "best_val_loss": state["best_val_loss"],
        "epochs": trainer.epochs,
        "steps": state["step"],
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json(run.path / "summary.json", summary)
    return summary


def save_images(experiment: Experiment, run: RunFolder, split: Split, tag: str) -> None:
    """Reconstruction grid, and prior samples when the backbone has a prior."""
    reconstruction = experiment.task_of_type(Reconstruction)
    if reconstruction is None:
        return
    inputs = split.head(8 * experiment.trainer.image_rows).inputs
    model = experiment.model
    with experiment.autocast:
        save_reconstructions(model, reconstruction.name, inputs, run.images / f"recon_{tag}.png")
        if experiment.backbone.has_prior:
            generation = experiment.task_of_type(Generation)
            n = generation.num_samples if isinstance(generation, Generation) else 64
            save_prior_samples(
                model,
                reconstruction.name,
                experiment.backbone.code_dim,
                n,
                run.images / f"samples_{tag}.png",
                experiment.device,
            )
