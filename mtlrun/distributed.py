"""Data-parallel training on several processes with `torch.distributed` (gloo on the CPU, NCCL
on CUDA), started by `trainer.devices=N` or by `torchrun --nproc-per-node N -m mtlrun train`.

Every rank holds the whole model and the whole dataset, draws the same shuffled global batches
(one seed), and trains on its shard of each. What the ranks reduce, and when:

- after each step's backward, the gradients, each rank's weighted by its share of the batch, so
  that with batch-mean losses the update is that of one process on the whole batch;
- before a gradient aggregator combines them, the per-task Jacobian on the shared parameters
  (and what other weightings measure: losses, gradient norms, Gramians), so that every rank
  applies the update the method gives on the whole batch, not an average of per-shard ones;
- the epoch's summed training losses and every evaluation's summed metrics;
- at each step boundary, whether any rank was asked to stop.

PyTorch's `DistributedDataParallel` wrapper is not used: its reducer averages `.grad` inside
the backward pass, after the task gradients are combined, and never sees the Jacobian (`.jac`)
that an aggregator needs whole. Rank 0 alone writes the run folder, the logs and the trackers.
"""

import json
import os
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from mtlrun.data import Batch
from mtlrun.errors import ConfigError, UserError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class Ranks:
    """This process's place among the ranks of a run, and the collectives the loop and the
    weightings call; on one process (the default) each is a no-op."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    flags: Any = None  # a gloo group for host-side flags (NCCL reduces device tensors only)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def leader(self) -> bool:
        """Rank 0, which writes the run folder."""
        return self.rank == 0

    def shard(self, batch: Batch) -> tuple[Batch, "Shard"]:
        """This rank's contiguous rows of a global batch, and their `Shard`. A rank left without
        rows (a last batch smaller than the ranks) gets the first row as a stand-in with share
        0, so that it still takes part in every collective and adds nothing."""
        if not self.distributed:
            return batch, Shard(1.0, self)
        n = len(batch)
        start, end = n * self.rank // self.size, n * (self.rank + 1) // self.size
        share = (end - start) / n
        if start == end:
            start, end = 0, 1
        return batch.rows(slice(start, end)), Shard(share, self)

    def reduce_sum(self, tensors: list[Tensor]) -> None:
        """Each tensor, in place, becomes its sum over the ranks (one collective)."""
        if not self.distributed or not tensors:
            return
        flat = torch.cat([t.reshape(-1).float() for t in tensors])
        dist.all_reduce(flat)
        offset = 0
        for t in tensors:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()

    def reduce_shared(self, tensors: list[Tensor], share: float) -> None:
        """Each tensor, in place, becomes Σ_r share_r · tensor_r, where `share` is this rank's
        part of the global batch: for a batch-mean loss, or a gradient of one, the value on the
        whole global batch."""
        if not self.distributed:
            return
        for t in tensors:
            t.mul_(share)
        self.reduce_sum(tensors)

    def reduce_gradients(self, parameters: list[torch.nn.Parameter], share: float) -> None:
        """The step's `.grad`s, reduced as `reduce_shared` does. A parameter that no rank gave a
        gradient keeps none (the optimiser skips it, as on one process)."""
        if not self.distributed:
            return
        trained = [p for p in parameters if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in trained]
        present = torch.tensor(
            [p.grad is not None for p in trained], dtype=torch.float, device=grads[0].device
        )
        for grad in grads:
            grad.mul_(share)
        self.reduce_sum([*grads, present])
        for p, grad, given in zip(trained, grads, present.tolist(), strict=True):
            p.grad = grad if given else None

    def any(self, flag: bool) -> bool:
        """Whether `flag` is set on any rank (a host-side collective)."""
        if not self.distributed:
            return flag
        value = torch.tensor([float(flag)])
        dist.all_reduce(value, group=self.flags)
        return bool(value.item())

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value`, on every rank."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.flags)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order, on every rank."""
        if not self.distributed:
            return [value]
        values: list[Any] = [None] * self.size
        dist.all_gather_object(values, value, group=self.flags)
        return values

    def same_weights(self, modules: list[torch.nn.Module]) -> None:
        """Rank 0's parameters and buffers on every rank (they start alike from one seed; this
        makes sure, as DistributedDataParallel does at its start)."""
        if not self.distributed:
            return
        for module in modules:
            for tensor in module.state_dict().values():
                if isinstance(tensor, Tensor):
                    dist.broadcast(tensor, src=0)

    def device(self, requested: torch.device) -> torch.device:
        """This rank's device: its own GPU (`LOCAL_RANK`) when the run is on CUDA."""
        if not self.distributed or requested.type != "cuda":
            return requested
        if requested.index is not None:
            raise ConfigError(
                f"trainer.devices={self.size} gives each rank its own GPU, but device="
                f"cuda:{requested.index} names one; use device=cuda or auto"
            )
        count = torch.cuda.device_count()
        if self.local_rank >= count:
            raise ConfigError(
                f"trainer.devices={self.size} needs {self.size} GPUs on this machine, but "
                f"{count} are visible; lower trainer.devices or use device=cpu"
            )
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)


SINGLE = Ranks()


@dataclass(frozen=True)
class Shard:
    """This process's part of one step's global batch, handed to whatever measures something
    on it (weightings, the affinity measurement): its `share` of the batch's rows (0 for a
    stand-in row) and the reductions that make a value measured on its rows the whole batch's.
    On one process both reductions leave the tensors as they are."""

    share: float = 1.0
    ranks: Ranks = field(default_factory=lambda: SINGLE)

    @property
    def has_rows(self) -> bool:
        return self.share > 0

    def reduce_shared(self, tensors: list[Tensor]) -> None:
        """For a batch-mean loss, or a gradient of one: its value on the whole batch."""
        self.ranks.reduce_shared(tensors, self.share)

    def reduce_sum(self, tensors: list[Tensor]) -> None:
        """Each tensor, in place, its sum over the ranks."""
        self.ranks.reduce_sum(tensors)

    def reduce_gradients(self, parameters: list[torch.nn.Parameter]) -> None:
        """The `.grad`s of `parameters`: the whole batch's gradient on every rank."""
        self.ranks.reduce_gradients(parameters, self.share)


WHOLE = Shard()  # the whole batch, on one process


def backend(cfg: DictConfig) -> str:
    from mtlrun.experiment import resolve_device

    return "nccl" if resolve_device(str(cfg.device)).type == "cuda" else "gloo"


def join(cfg: DictConfig, rank: int, size: int, local_rank: int, init_method: str) -> Ranks:
    """Join the process group of a run on `size` ranks."""
    dist.init_process_group(backend(cfg), init_method=init_method, rank=rank, world_size=size)
    flags = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    return Ranks(rank, size, local_rank, flags=flags)


def torchrun_ranks(cfg: DictConfig) -> Ranks | None:
    """The ranks `torchrun` started this process among (its environment variables), the
    process group joined once; None outside torchrun or with one process."""
    global _torchrun
    if _torchrun is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
        if missing:
            raise UserError(
                f"WORLD_SIZE is set but {', '.join(missing)} not; start mtlrun with torchrun, "
                "or use trainer.devices=N"
            )
        size = int(os.environ["WORLD_SIZE"])
        devices = int(cfg.trainer.get("devices", 1))
        if devices not in (1, size):
            raise ConfigError(
                f"trainer.devices={devices} but torchrun started {size} processes; "
                f"leave trainer.devices out or set it to {size}"
            )
        rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
        _torchrun = join(cfg, rank, size, local_rank, "env://")
    return _torchrun


_torchrun: Ranks | None = None


def leave(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()


# Where a worker tells the process that started it how it ended: completed, interrupted, or a
# user error's one line. Workers that end so exit 0, so that the first to end does not make
# torch's process context stop the others before rank 0 has written meta.json.
OUTCOME = "outcome-{rank}.json"
GRACE_SECONDS = 10.0  # how long the other ranks may take to end after one ends with an error


def spawn(
    cfg: DictConfig, run_dir: Path, resume: bool, command: str | None, devices: int
) -> dict[str, Any]:
    """Train `cfg` on `devices` new processes, one per rank, and wait for them. This process
    takes the signals (Ctrl-C, SIGTERM, submitit's pre-emption signal) and hands each on to the
    ranks, which stop together at the next step boundary; a second one kills them. Returns the
    run's summary; raises rank 0's user error as one line, or `Interrupted`."""
    import time

    import torch.multiprocessing as mp

    from mtlrun import plugins
    from mtlrun.loop import Interrupted, preemption_signal
    from mtlrun.runfolder import RunFolder

    config = OmegaConf.to_container(cfg, resolve=True)
    threads = max(1, torch.get_num_threads() // devices)
    received: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mtlrun-ranks-") as meeting:
        outcomes = [Path(meeting, OUTCOME.format(rank=rank)) for rank in range(devices)]
        arguments = (devices, config, str(run_dir), resume, command, meeting, threads)
        context = mp.start_processes(
            _worker,
            args=(*arguments, plugins.loaded()),
            nprocs=devices,
            join=False,
            start_method="spawn",
        )

        def hand_on(signum: int, frame: Any) -> None:
            received.append(signal.Signals(signum).name)
            for process in context.processes:
                if process.is_alive():
                    os.kill(process.pid, signal.SIGKILL if len(received) > 1 else signum)

        preemption = preemption_signal()
        taken = (signal.SIGINT, signal.SIGTERM, *([preemption] if preemption else []))
        previous = {signum: signal.signal(signum, hand_on) for signum in taken}
        crash: Exception | None = None
        try:
            failed_at = None
            while not context.join(timeout=1.0, grace_period=GRACE_SECONDS):
                # A rank that ended with an error leaves the others waiting in a collective.
                if failed_at is None and any(
                    read_outcome(path)["how"] == "error" for path in outcomes if path.is_file()
                ):
                    failed_at = time.monotonic()
                if failed_at is not None and time.monotonic() - failed_at > GRACE_SECONDS:
                    for process in context.processes:
                        process.kill()
                    break
        except mp.ProcessException as error:
            crash = error
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        ended = [read_outcome(path) for path in outcomes if path.is_file()]
    if received:
        raise Interrupted(received[0])
    for outcome in ended:
        if outcome["how"] == "error":
            raise UserError(outcome["message"])
    if crash is not None:
        raise RuntimeError(f"a rank of trainer.devices={devices} failed: {crash}") from None
    return RunFolder(run_dir).read_summary()


def read_outcome(path: Path) -> dict[str, str]:
    return json.loads(path.read_text())


def _worker(
    rank: int,
    size: int,
    config: dict[str, Any],
    run_dir: str,
    resume: bool,
    command: str | None,
    meeting: str,
    threads: int,
    plugin_modules: list[str],
) -> None:
    """One rank of `spawn`, in a process group of its own: the terminal's Ctrl-C reaches the
    process that started it, which hands it on once."""
    from mtlrun import plugins
    from mtlrun.loop import train

    os.setpgrp()
    torch.set_num_threads(threads)
    plugins.load(plugin_modules)
    cfg = OmegaConf.create(config)
    outcome: dict[str, str] = {"how": "completed"}
    try:
        ranks = join(cfg, rank, size, rank, f"file://{Path(meeting, 'rendezvous')}")
        try:
            train(cfg, Path(run_dir), resume, command, ranks)
        finally:
            leave(ranks)
    except KeyboardInterrupt:
        outcome = {"how": "interrupted"}
    except UserError as error:
        outcome = {"how": "error", "message": str(error)}
    tmp = Path(meeting, f".{rank}.tmp")  # whole, or not there: the parent polls it
    tmp.write_text(json.dumps(outcome))
    tmp.replace(Path(meeting, OUTCOME.format(rank=rank)))
