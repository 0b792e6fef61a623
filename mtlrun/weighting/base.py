"""The weighting interface: how the task losses become gradients."""

import inspect
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from mtlrun.distributed import WHOLE, Shard
from mtlrun.errors import ConfigError, PluginError
from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import (
    WeightingConfig as WeightingConfig,  # plug-ins subclass it from here
)
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task


class Weighting(nn.Module):
    """Turns the task losses of one step into gradients on the model's parameters.

    An nn.Module so that learnt weights (e.g. uncertainty's log-variances) are saved in
    checkpoints and trained by the optimiser (`extra_parameters`).
    """

    # Whether the method works on what the tasks share (`ModelOutput.shared`, the shared
    # parameters); `check_sharing` then refuses strategies that share nothing, at build time.
    needs_shared_representation: ClassVar[bool] = False

    def __init__(self, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__()
        self.task_names = [task.name for task in tasks]

    def backward(self, losses: list[Tensor], output: ModelOutput, shard: Shard = WHOLE) -> Tensor:
        """Accumulate gradients into `.grad`; return the weighted total loss (for logging).

        `shard` is the part of the step's batch the losses are of. Under DDP, a method that
        measures the tasks' gradients, losses or Gramians reduces them over the ranks with it
        (`shard.reduce_shared`) before it weighs, so that it weighs as on the whole batch and
        every rank takes the same step; on one process the reductions do nothing."""
        raise NotImplementedError

    def after_step(self, losses_after: Callable[[], list[Tensor]], shard: Shard = WHOLE) -> None:
        """Called after the optimiser's step with a function that computes the step's task
        losses again, on the same batch (FAMO's update needs them; calling it costs a forward
        pass, so other methods do not)."""

    def end_epoch(self, mean_losses: list[float]) -> None:
        """Called with each task's mean training loss after every epoch (e.g. for DWA)."""

    def logged(self) -> dict[str, float]:
        """Per-task numbers to log each epoch, as `<task>/<name>` (e.g. `digit/weight`)."""
        return {}

    def extra_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())


# What the step and the epoch pass to a weighting's methods.
CALLS = {
    "backward": ("losses", "output", "shard"),
    "after_step": ("losses_after", "shard"),
    "end_epoch": ("mean_losses",),
    "logged": (),
}


def check_signatures(weighting: Weighting, origin: str) -> None:
    """A plug-in's weighting takes what the step and the epoch pass its methods (`CALLS`),
    checked when it is built rather than at its first call (`origin`: the choice in
    messages, with its plug-in)."""
    for method, arguments in CALLS.items():
        try:
            inspect.signature(getattr(weighting, method)).bind(*arguments)
        except TypeError as error:
            raise PluginError(
                f"{origin}: {type(weighting).__name__}.{method} is called as "
                f"{method}({', '.join(arguments)}), which its signature does not take "
                f"({error}); see mtlrun.weighting.Weighting.{method}"
            ) from None


def check_backward(
    origin: str, losses: list[Tensor], total: object, parameters: Iterable[Tensor]
) -> None:
    """What a plug-in's `backward` must have done, checked after its first call: returned the
    total loss as a scalar tensor, and left gradients on the model's parameters (unless no
    loss is trained on)."""
    if not isinstance(total, Tensor) or total.dim() != 0:
        if isinstance(total, Tensor):
            got = f"a tensor of shape {tuple(total.shape)}"
        else:
            got = "None" if total is None else f"a {type(total).__name__}"
        raise PluginError(
            f"{origin}: backward returned {got}; it must return the step's total loss, a "
            "scalar tensor (e.g. total.detach() after total.backward())"
        )
    trained = any(loss.requires_grad for loss in losses)
    if trained and all(p.grad is None for p in parameters):
        raise PluginError(
            f"{origin}: backward left no gradient on the model's parameters; it must call "
            ".backward() on the weighted loss (or on the losses themselves)"
        )


def check_logged(origin: str, logged: object) -> None:
    """What a plug-in's `logged` must return, checked each epoch: a dict of `<task>/<name>`
    strings to numbers."""
    expected = "it must return a dict of '<task>/<name>' keys to numbers, e.g. {'y0/weight': 0.5}"
    if not isinstance(logged, dict):
        raise PluginError(f"{origin}: logged returned a {type(logged).__name__}; {expected}")
    for key, value in logged.items():
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not isinstance(key, str) or not number:
            raise PluginError(
                f"{origin}: logged returned {key!r}: {value!r} ({type(value).__name__}); "
                f"{expected} (a tensor's .item())"
            )


def total_loss(
    weights: Sequence[float] | Tensor | None, losses: list[Tensor], output: ModelOutput
) -> Tensor:
    """Σ_t w_t L_t plus the model's auxiliary loss (the penalties that belong to no task); None
    (or weights that are all exactly 1) for Σ_t L_t, which multiplies nothing. The losses are
    stacked and summed at once: an addition per task would be an operation per task and step.
    Pass a weight tensor on the losses' device where it is fixed: a list of numbers is copied
    there every call."""
    stacked = torch.stack(losses)
    if weights is not None and not isinstance(weights, Tensor):
        ones = all(w == 1 for w in weights)
        weights = (
            None if ones else torch.tensor(weights, dtype=stacked.dtype, device=stacked.device)
        )
    total = (stacked if weights is None else weights * stacked).sum()
    if output.auxiliary_loss is not None:
        total = total + output.auxiliary_loss
    return total


def unweighted_total(losses: list[Tensor], output: ModelOutput) -> Tensor:
    """Σ_t L_t plus the auxiliary loss, detached: what methods that do not weigh the losses
    themselves (aggregators, log-loss methods) report as the step's total."""
    with torch.no_grad():
        total = torch.stack(losses).sum()
        auxiliary = output.auxiliary_loss
        return total if auxiliary is None else total + auxiliary


def check_sharing(weighting: DictConfig, sharing: DictConfig, model: MultiTaskModel) -> None:
    """Refuse, before training, a weighting that works on what the tasks share with a model
    whose tasks share nothing (otherwise it would fail at the first step)."""
    # getattr: a plug-in's class that is no Weighting is refused as such when it is built.
    if not getattr(WEIGHTINGS.get(weighting.name), "needs_shared_representation", False):
        return
    if model.shares_representation:
        return
    chosen = f"sharing={sharing.name}"
    if sharing.get("shared_layers") == 0:
        chosen += " with sharing.shared_layers=0"
    raise ConfigError(
        f"weighting={weighting.name} works on the parameters the tasks share, but {chosen} "
        "shares none; use sharing=hard (shared_layers null or above 0), cross_stitch or "
        "concat, or a loss weighting such as weighting=equal or uncertainty"
    )


def shared_representation(output: ModelOutput, method: str) -> list[Tensor]:
    """`output.shared`, for the methods that work on what the tasks share."""
    if not output.shared:
        raise ConfigError(
            f"weighting={method} needs parameters shared between tasks; use sharing=hard"
        )
    # A compiled model's outputs all come from one opaque autograd node, so `shared` is no cut
    # through its graph: the task losses would seem not to depend on it (zero gradients).
    if any(type(f.grad_fn).__name__ == "CompiledFunctionBackward" for f in output.shared):
        raise ConfigError(
            f"weighting={method} cannot see inside a compiled model; set trainer.compile=false"
        )
    return output.shared


def parameters_behind(representation: list[Tensor]) -> list[Tensor]:
    """The trainable leaves (the shared parameters) that `representation` is computed from,
    in the order the autograd graph reaches them: the parameters under the cut."""
    found: dict[int, Tensor] = {}
    stack = [f.grad_fn for f in representation if f.grad_fn is not None]
    seen = set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        leaf = getattr(node, "variable", None)  # an AccumulateGrad node holds its leaf
        if leaf is not None:
            found.setdefault(id(leaf), leaf)
        stack.extend(child for child, _ in node.next_functions if child is not None)
    return list(found.values())


def trained_tasks(losses: list[Tensor]) -> list[int]:
    """The tasks trained on this step: the loop detaches the losses of the others."""
    return [t for t, loss in enumerate(losses) if loss.requires_grad]


class TaskIndex:
    """Index tensors for subsets of the tasks, made once per subset and device: a new index
    tensor every step would be a host-to-device copy, which waits for the device, every step."""

    def __init__(self) -> None:
        self._made: dict[tuple[str, tuple[int, ...]], Tensor] = {}

    def __call__(self, tasks: list[int], device: torch.device) -> Tensor:
        key = (str(device), tuple(tasks))
        if key not in self._made:
            self._made[key] = torch.tensor(tasks, device=device)
        return self._made[key]


def epoch_means(tasks: list[str], steps: Tensor, **sums: Tensor) -> dict[str, float]:
    """Each of `sums` (per task, summed on the device over the epoch's steps) averaged over the
    steps each task was measured in (`steps`), as `<task>/<name>` for the tasks measured at all;
    the sums and `steps` are then zeroed for the next epoch."""
    counts = steps.tolist()
    means = {name: (total / steps.clamp(min=1)).tolist() for name, total in sums.items()}
    for total in (*sums.values(), steps):
        total.zero_()
    return {
        f"{task}/{name}": values[t]
        for t, task in enumerate(tasks)
        if counts[t]
        for name, values in means.items()
    }


def flat_gradients(losses: list[Tensor], inputs: list[Tensor]) -> Tensor:
    """One row per loss: its gradient on `inputs` (tensors or parameters), flattened; the graph
    is kept for the step's own backward."""
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, inputs, retain_graph=True, materialize_grads=True)
        rows.append(torch.cat([g.flatten() for g in grads]))
    return torch.stack(rows)


class MeasuredWeighting(Weighting):
    """A loss weighting whose weights are measured each step from what the tasks share (MGDA-UB,
    ExcessMTL): L = Σ_t w_t L_t plus the auxiliary loss, backpropagated through the whole
    network, heads included. With fewer than two tasks trained on, or nothing shared, the trained
    tasks get weight 1 and the step is a plain backward. Logged per task: w_t averaged over the
    epoch's steps (summed on the device, read once per epoch, saved in checkpoints)."""

    needs_shared_representation = True
    method: ClassVar[str]  # its name in messages: `weighting=<method>`

    def __init__(self, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(tasks, model)
        self.index = TaskIndex()
        self.register_buffer("weight_sums", torch.zeros(len(tasks)))
        self.register_buffer("steps", torch.zeros(len(tasks)))

    def measure(self, losses: list[Tensor], shared: list[Tensor], shard: Shard) -> Tensor:
        """The weights of `losses` (the trained tasks'), from their graph down to `shared`."""
        raise NotImplementedError

    def backward(self, losses: list[Tensor], output: ModelOutput, shard: Shard = WHOLE) -> Tensor:
        shared = [f for f in shared_representation(output, self.method) if f.requires_grad]
        rows = trained_tasks(losses)
        weights = torch.zeros(len(losses), device=self.steps.device)
        if len(rows) > 1 and shared:
            index = self.index(rows, self.steps.device)
            measured = self.measure([losses[t] for t in rows], shared, shard).float()
            weights.index_copy_(0, index, measured)
            self.weight_sums.index_add_(0, index, measured)
            self.steps.index_add_(0, index, torch.ones_like(measured))
        elif rows:
            weights.index_fill_(0, self.index(rows, self.steps.device), 1.0)
        total = total_loss(weights, losses, output)
        if total.requires_grad:
            total.backward()
        return total.detach()

    def logged(self) -> dict[str, float]:
        return epoch_means(self.task_names, self.steps, weight=self.weight_sums)
