"""Checkpoints: everything needed to continue a run exactly (the model, optimiser, scheduler,
weighting, random number generators and where training stands), assembled from the
experiment and restored into it, loadable with weights_only=True."""

import re
import warnings
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mtlrun.errors import UserError
from mtlrun.runfolder import RunFolder, write_atomic

if TYPE_CHECKING:
    from mtlrun.experiment import Experiment


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
    # The last validation's metrics: the summary's, also when a run resumed after it.
    last_val: dict[str, float] | None = None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    def save(tmp: str) -> None:
        # Our own file object: closed when torch.save fails (a full disk), so the space of the
        # partial file comes back once it is removed, for meta.json to say "failed".
        with open(tmp, "wb") as f:
            torch.save(state, f)

    write_atomic(path, save)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint at `path`, loaded with weights_only=True: tensors and plain data only.
    A file that holds anything else is refused, never loaded some other way, since unpickling
    arbitrary objects can run code."""
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}; was the run started and did it finish an epoch?")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for damaged files
        raise UserError(unloadable(path, error)) from None


def unloadable(path: Path, error: Exception) -> str:
    """One line on what is wrong with a checkpoint torch would not load, without torch's
    advice to load it with weights_only=False (mtlrun never does)."""
    text = str(error)
    code = re.search(r"GLOBAL ([\w.]+)", text)
    if code:
        return (
            f"checkpoint {path} holds a Python object ({code.group(1)}) that could run code "
            "when loaded, so mtlrun refuses it; use a checkpoint written by mtlrun, or train again"
        )
    if isinstance(error, EOFError) or path.stat().st_size == 0:
        reason = "the file is empty"
    elif "zip archive" in text:
        reason = "a damaged or truncated zip archive"
    elif "Weights only load failed" in text:
        reason = "not a PyTorch checkpoint"
    else:
        first = text.split(". ")[0].splitlines()[0] if text else ""
        reason = f"{type(error).__name__}: {first[:80]}" if first else type(error).__name__
    return (
        f"checkpoint {path} is corrupt or unreadable ({reason}); use the other checkpoint "
        "(last.pt / best.pt) or train again"
    )


def rng_states(data_generator: torch.Generator) -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "data": data_generator.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any], data_generator: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    data_generator.set_state(states["data"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save(
    experiment: "Experiment",
    run: RunFolder,
    name: str,
    progress: Progress,
    data_order: torch.Generator,
    epoch_data_order: torch.Tensor | None = None,
) -> None:
    """checkpoints/<name>.pt: model, optimiser, scheduler, weighting, RNG states and progress;
    `epoch_data_order` is the data generator's state at the start of an interrupted epoch. Under
    DDP every rank calls it: the checkpoint holds every rank's RNG states and the epoch's losses
    summed over the ranks, and rank 0's run folder writes it."""
    scheduler, ranks = experiment.scheduler, experiment.ranks
    if epoch_data_order is None:
        epoch_data_order = data_order.get_state()
    record = asdict(progress)
    rng: Any = rng_states(data_order)
    if ranks.distributed:
        rng = ranks.gather(rng)
        if progress.epoch_sums is not None:
            record["epoch_sums"] = progress.epoch_sums.clone()
            ranks.reduce_sum([record["epoch_sums"]])
    state = {
        "model": experiment.model.state_dict(),
        "weighting": experiment.weighting.state_dict(),
        "optimizer": experiment.optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "progress": record,
        "epoch_data_order": epoch_data_order,
        "rng": rng,
        "affinity": experiment.affinity.state() if experiment.affinity else None,
    }
    run.write_file(run.checkpoint(name), partial(save_checkpoint, state=state))


def restore(experiment: "Experiment", path: Path, data_order: torch.Generator) -> Progress:
    """The training state of the checkpoint at `path`, into `experiment` and `data_order`."""
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
    progress = Progress(**checkpoint["progress"])
    if experiment.affinity is not None and checkpoint.get("affinity") is not None:
        experiment.affinity.restore(checkpoint["affinity"])
    if not ranks.leader:
        progress.epoch_sums = None  # rank 0 carries the ranks' sums so far
    return progress
