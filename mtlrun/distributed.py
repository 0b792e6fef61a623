"""Data-parallel training on several processes with `torch.distributed` (gloo on the CPU, NCCL
on CUDA), started by `trainer.devices=N` or by `torchrun --nproc-per-node N -m mtlrun train`.

Every rank holds the whole model and the whole dataset, draws the same shuffled global batches
(one seed), and trains on its shard of each. What the ranks reduce, and when:

- where some targets may be missing (a regression task's NaNs), at the start of each step,
  each task's labelled rows (one collective; none where every target is there). Task t's loss
  on rank r is a mean over its n_t,r labelled rows, so the whole batch's is Σ_r s_t,r · L_t,r
  with s_t,r = n_t,r / Σ_r' n_t,r': rank r's part of it, not its share of the rows. Each rank
  multiplies task t's loss by s_t,r / share_r (`Shard.loss_scales`; 0 on a stand-in row, or
  where no rank has a label) before anything is measured or differentiated. Every reduction
  below weighs a rank by its share of the rows, which makes it s_t,r for task t's loss, for its
  gradients, and for the gradient of any sum of the losses with weights that are the same on
  every rank (the weightings compute theirs from reduced values); a product of two gradients
  (MGDA-UB's Gramian, GradNorm's norm on the representation) takes the share once more itself.
  A task's own modules' loss (concat's autoencoders), a mean over every row, stays unscaled.
  For the epoch's means a rank weighs its scaled loss of task t by share_r · N_t, N_t the
  task's labelled rows in the batch: over the ranks, one process's N_t · L_t;
- after each step's backward, the gradients, each rank's weighted by its share of the batch, so
  that with batch-mean losses the update is that of one process on the whole batch;
- before a gradient aggregator combines them, the per-task Jacobian on the shared parameters
  (and what other weightings measure: losses, gradient norms, Gramians), so that every rank
  applies the update the method gives on the whole batch, not an average of per-shard ones;
- the epoch's summed training losses and every evaluation's summed metrics, each task's with
  the count of rows it was summed over;
- at each step boundary, whether any rank was asked to stop.

PyTorch's `DistributedDataParallel` wrapper is not used: its reducer averages `.grad` inside
the backward pass, after the task gradients are combined, and never sees the Jacobian (`.jac`)
that an aggregator needs whole. Rank 0 alone writes the run folder, the logs and the trackers.
"""

import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import DictConfig
from torch import Tensor
from torch.distributed.constants import default_pg_timeout

from mtlrun.data import Batch
from mtlrun.devices import resolve_device
from mtlrun.errors import ConfigError, UserError


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
        # float64 when any tensor is (counts beyond float32's exact 2^24, such as the pixels of
        # a confusion matrix), else float32
        dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float
        flat = torch.cat([t.reshape(-1).to(dtype) for t in tensors])
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

    def reduce_gradients(self, parameters: Iterable[torch.nn.Parameter], share: float) -> None:
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
    On one process both reductions leave the tensors as they are.

    `loss_scales`, set by `labelled` under DDP where targets may be missing, holds the factor
    each task's loss is multiplied by (see the module's docstring), so that those reductions
    are exact per task; None where every factor is 1."""

    share: float = 1.0
    ranks: Ranks = field(default_factory=lambda: SINGLE)
    loss_scales: Tensor | None = None

    @property
    def has_rows(self) -> bool:
        return self.share > 0

    def labelled(self, counts: Tensor | int) -> tuple["Shard", Tensor | int]:
        """This shard with its tasks' `loss_scales`, from `counts`, the rows of this rank each
        of the step's losses is a mean over (the total's first, then one per task; a tensor
        where targets may be missing, on every rank alike); and the counts to weigh the step's
        losses by in an epoch's means, which summed over the ranks give the whole batch's. On
        one process, or with every target there, both as they are (no work, no collective)."""
        if not self.ranks.distributed or not isinstance(counts, Tensor):
            return self, counts
        whole = counts.to(torch.float, copy=True)
        self.ranks.reduce_sum([whole])
        task_shares = counts[1:] / whole[1:].clamp(min=1)  # s_t,r; 0 where no rank has a label
        scales = task_shares / self.share if self.has_rows else torch.zeros_like(task_shares)
        # A rank's scaled loss of task t, weighed by share_r · N_t, sums to N_t · L_t over the
        # ranks: one process's weight for the whole batch's loss, own modules' losses included.
        return replace(self, loss_scales=scales), self.share * whole

    def reduce_shared(self, tensors: list[Tensor]) -> None:
        """For a batch-mean loss, or a gradient of one: its value on the whole batch."""
        self.ranks.reduce_shared(tensors, self.share)

    def reduce_sum(self, tensors: list[Tensor]) -> None:
        """Each tensor, in place, its sum over the ranks."""
        self.ranks.reduce_sum(tensors)

    def reduce_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """The `.grad`s of `parameters`: the whole batch's gradient on every rank (on one
        process `parameters` is not even iterated)."""
        self.ranks.reduce_gradients(parameters, self.share)


WHOLE = Shard()  # the whole batch, on one process


def backend(cfg: DictConfig) -> str:
    return "nccl" if resolve_device(str(cfg.device)).type == "cuda" else "gloo"


def join(
    cfg: DictConfig,
    rank: int,
    size: int,
    local_rank: int,
    init_method: str | None = None,
    store: dist.Store | None = None,
) -> Ranks:
    """Join the process group of a run on `size` ranks, met at `init_method` (torchrun's
    `env://`) or through `store` (`meeting_point`'s)."""
    dist.init_process_group(
        backend(cfg), init_method=init_method, store=store, rank=rank, world_size=size
    )
    flags = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    return Ranks(rank, size, local_rank, flags=flags)


def join_env(cfg: DictConfig, rank: int, size: int, local_rank: int, seconds: float) -> Ranks:
    """Join the process group torchrun's environment describes (`env://`) once all `size`
    ranks have come, waiting `seconds` for them: a rank started by hand with WORLD_SIZE set,
    or whose peers never start, is one line, not the process group's half-hour wait."""
    address = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    missing = UserError(
        f"the other ranks of WORLD_SIZE={size} did not start at {address} within "
        f"{seconds:.0f} s; start mtlrun with torchrun --nproc-per-node N (it sets WORLD_SIZE, "
        "RANK and MASTER_PORT for every rank), or use trainer.devices=N"
    )
    limit = timedelta(seconds=seconds)
    try:
        store, _, _ = next(dist.rendezvous("env://", rank, size, timeout=limit))
        # A key of this start (torchrun restarts its workers on the same store).
        key = f"mtlrun/joined/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
        store.add(key, 1)
        deadline = time.monotonic() + seconds
        while store.add(key, 0) < size:
            if time.monotonic() > deadline:
                raise missing
            time.sleep(0.05)
    except dist.DistError as error:
        if rank == 0:
            raise missing from None
        raise UserError(
            f"rank {rank} could not reach rank 0 at {address} within {seconds:.0f} s "
            f"({str(error).splitlines()[0][:100]}); check MASTER_ADDR and MASTER_PORT, or start "
            "mtlrun with torchrun"
        ) from None
    store.set_timeout(default_pg_timeout)
    return join(cfg, rank, size, local_rank, store=dist.PrefixStore("default_pg", store))


def meeting_point() -> dist.TCPStore:
    """Where the ranks `trainer.devices=N` starts meet, and tell how they ended: a key-value
    store served by the process that starts them, on a free port of 127.0.0.1. Nothing is
    written to disk, so a rank that is killed leaves no rendezvous file behind."""
    return dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)


def meet(port: int) -> dist.TCPStore:
    """A rank's connection to `meeting_point`'s store."""
    return dist.TCPStore("127.0.0.1", port, is_master=False)


# What a collective raises on a rank whose peer is gone: gloo's closed or reset connections,
# NCCL's aborted communicator (torch.distributed.DistError subclasses).
LOST_PEER = ("closed by peer", "reset by peer", "Broken pipe", "remote process exited")


def lost_rank(error: BaseException) -> str | None:
    """What `error` says, in a few words, when it says that another rank of the run is gone
    (killed, or its machine); else None."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if not isinstance(error, dist.DistError) and not (
        isinstance(error, RuntimeError) and any(words in text for words in LOST_PEER)
    ):
        return None
    return re.sub(r"^\[[^\]]*\]\s*", "", text).split(". ")[0]  # without gloo's source line


def leave(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()
