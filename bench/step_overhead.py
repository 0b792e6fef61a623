"""What mtlrun's training step costs beyond the step itself (mtlrun issue 25).

On `+experiment=synthetic_regression` data with T tasks (a 32-64-16 trunk, a linear head per
task, fused Adam, batch 64; the last task labelled on 20 training rows, its missing targets
NaN), each weighting's step three ways:

- mtlrun: `mtlrun.step.train_step` on the experiment the config builds, batches as the loop
  makes them;
- the same method written directly in plain PyTorch, as a script would: for `equal` the sum of
  the losses and one backward; for `mgda_ub`, `famo` and `gradnorm` the method's few lines on
  the same trunk;
- torchjd's documented step for the aggregators (`upgrad`, `pcgrad`): `mtl_backward` on the
  trunk's output, then `jac_to_grad` with the aggregator.

The plain steps gather a batch's targets as one T-column matrix, mask the missing ones once
per batch, and take `F.mse_loss` for the complete tasks. The variants alternate: each repeat
builds fresh models for all three and times a block of steps of each in turn; the table gives
the median of the repeats' per-step times, and the operators per step that torch.profiler
records (top-level ATen operators: on a GPU, about one kernel launch each).

    python bench/step_overhead.py [--quick] [--device cpu|cuda] [--no-write]
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from benchmarks_md import measured_on, publish
from torch import Tensor, nn

WEIGHTINGS = ["equal", "upgrad", "mgda_ub", "famo", "gradnorm", "pcgrad"]
AGGREGATORS = {"upgrad": "UPGrad", "pcgrad": "PCGrad"}
TASKS = [2, 4, 8, 16]
BATCH, N_TRAIN, LR = 64, 2048, 3e-3

Step = Callable[[], None]


def config(tasks: int, weighting: str, device: str) -> list[str]:
    return [
        "+experiment=synthetic_regression",
        *(f"+task@tasks.y{t}=regression" for t in range(4, tasks)),
        *(f"~task@tasks.y{t}" for t in range(tasks, 4)),
        *(["~tasks.y3"] if tasks < 4 else []),  # the experiment's own y3.weight
        f"dataset.num_tasks={tasks}",
        f"dataset.n_train={N_TRAIN}",
        "dataset.val_size=0",
        "backbone.hidden_dims=[64,16]",
        "optim=adam",
        f"optim.lr={LR}",
        f"weighting={weighting}",
        f"trainer.batch_size={BATCH}",
        f"device={device}",
    ]


def mtlrun_step(tasks: int, weighting: str, device: str) -> tuple[Step, object]:
    """mtlrun's `train_step` on the built experiment; also returns the experiment's data."""
    from mtlrun.api import compose
    from mtlrun.experiment import build
    from mtlrun.step import train_step

    experiment = build(compose(config(tasks, weighting, device)))
    experiment.model.train()
    order = torch.Generator().manual_seed(0)
    batches = iter(())

    def step() -> None:
        nonlocal batches
        batch = next(batches, None)
        if batch is None:
            batches = experiment.data.train.batches(BATCH, order)
            batch = next(batches)
        train_step(experiment, batch)

    return step, experiment.data.train


class PlainModel(nn.Module):
    """The trunk and heads mtlrun builds for the config, as plain modules."""

    def __init__(self, tasks: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 16), nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(16, 1) for _ in range(tasks))


def plain_batches(split, device: torch.device) -> Callable[[], tuple[Tensor, Tensor, Tensor]]:
    """Shuffled batches: inputs, the targets as one N×T matrix with NaNs zeroed, and the mask
    of the observed ones, each made once per batch."""
    inputs = split.inputs.to(device)
    targets = torch.stack([split.targets[f"y{t}"] for t in range(len(split.targets))], 1)
    targets = targets.to(device)
    order = torch.Generator().manual_seed(0)
    indices = iter(())

    def next_batch() -> tuple[Tensor, Tensor, Tensor]:
        nonlocal indices
        index = next(indices, None)
        if index is None:
            indices = iter(torch.randperm(len(inputs), generator=order).to(device).split(BATCH))
            index = next(indices)
        y = targets[index]
        return inputs[index], y.nan_to_num(), ~y.isnan()

    return next_batch


def task_losses(model: PlainModel, features: Tensor, y: Tensor, observed: Tensor) -> list[Tensor]:
    """MSE per task; the last task's over its observed rows (the others have every target)."""
    *complete, last = model.heads
    losses = [F.mse_loss(head(features)[:, 0], y[:, t]) for t, head in enumerate(complete)]
    mask = observed[:, -1]
    squared = (last(features)[:, 0] - y[:, -1]).pow(2) * mask
    return [*losses, squared.sum() / mask.sum().clamp(min=1)]


def plain_step(tasks: int, weighting: str, split, device: torch.device) -> Step:
    """The method in plain PyTorch (torchjd's documented step for an aggregator)."""
    torch.manual_seed(0)
    model = PlainModel(tasks).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
    next_batch = plain_batches(split, device)
    method = {
        "equal": plain_equal,
        "mgda_ub": plain_mgda_ub,
        "famo": plain_famo,
        "gradnorm": plain_gradnorm,
    }.get(weighting, torchjd_aggregation)
    return method(model, optimizer, next_batch, weighting, device)


def plain_equal(model, optimizer, next_batch, weighting, device) -> Step:
    def step() -> None:
        x, y, observed = next_batch()
        losses = task_losses(model, model.trunk(x), y, observed)
        optimizer.zero_grad(set_to_none=True)
        sum(losses).backward()
        optimizer.step()

    return step


def torchjd_aggregation(model, optimizer, next_batch, weighting, device) -> Step:
    import torchjd.aggregation
    from torchjd.autojac import jac_to_grad, mtl_backward

    aggregator = getattr(torchjd.aggregation, AGGREGATORS[weighting])()
    shared = list(model.trunk.parameters())

    def step() -> None:
        x, y, observed = next_batch()
        features = model.trunk(x)
        losses = task_losses(model, features, y, observed)
        optimizer.zero_grad(set_to_none=True)
        mtl_backward(losses, features=features)
        jac_to_grad(shared, aggregator)
        optimizer.step()

    return step


def plain_mgda_ub(model, optimizer, next_batch, weighting, device) -> Step:
    """Sener & Koltun's MGDA-UB: min-norm weights of the gradients on the representation."""
    from torchjd.aggregation import MGDAWeighting

    solver = MGDAWeighting()

    def step() -> None:
        x, y, observed = next_batch()
        features = model.trunk(x)
        losses = task_losses(model, features, y, observed)
        rows = [
            torch.autograd.grad(loss, features, retain_graph=True)[0].flatten() for loss in losses
        ]
        gradients = torch.stack(rows)
        weights = solver(gradients @ gradients.T)
        optimizer.zero_grad(set_to_none=True)
        (weights * torch.stack(losses)).sum().backward()
        optimizer.step()

    return step


def plain_famo(model, optimizer, next_batch, weighting, device) -> Step:
    """Liu et al.'s FAMO (their famo.py's defaults), the losses recomputed after the step."""
    logits = torch.zeros(len(model.heads), device=device, requires_grad=True)
    logit_optimizer = torch.optim.Adam([logits], lr=0.025, weight_decay=0.01)
    epsilon = 1e-8

    def step() -> None:
        x, y, observed = next_batch()
        losses = torch.stack(task_losses(model, model.trunk(x), y, observed))
        before = losses.detach()
        z = F.softmax(logits.detach(), dim=0)
        shifted = before + epsilon
        weights = z / ((z / shifted).sum() * shifted)
        optimizer.zero_grad(set_to_none=True)
        (weights * losses).sum().backward()
        optimizer.step()
        with torch.no_grad():
            after = torch.stack(task_losses(model, model.trunk(x), y, observed))
        decrease = (before + epsilon).log() - (after + epsilon).log()
        (direction,) = torch.autograd.grad(F.softmax(logits, dim=0), logits, decrease)
        logit_optimizer.zero_grad()
        logits.grad = direction
        logit_optimizer.step()

    return step


def plain_gradnorm(model, optimizer, next_batch, weighting, device) -> Step:
    """Chen et al.'s GradNorm (α = 1.5) on the last shared layer's weights."""
    tasks = len(model.heads)
    weights = torch.ones(tasks, device=device, requires_grad=True)
    weight_optimizer = torch.optim.Adam([weights], lr=LR, fused=True)
    last_shared = list(model.trunk[2].parameters())
    initial: Tensor | None = None

    def step() -> None:
        nonlocal initial
        with torch.no_grad():
            weights.mul_(tasks / weights.sum())
        x, y, observed = next_batch()
        losses = task_losses(model, model.trunk(x), y, observed)
        current = torch.stack([loss.detach() for loss in losses])
        initial = current if initial is None else initial
        norms = torch.stack(
            [
                torch.cat(
                    [g.flatten() for g in torch.autograd.grad(loss, last_shared, retain_graph=True)]
                ).norm()
                for loss in losses
            ]
        )
        weighted = weights * norms
        ratios = current / initial
        targets = weighted.mean().detach() * (ratios / ratios.mean()) ** 1.5
        optimizer.zero_grad(set_to_none=True)
        weight_optimizer.zero_grad(set_to_none=True)
        (weighted - targets).abs().sum().backward(inputs=[weights])
        (weights.detach() * torch.stack(losses)).sum().backward()
        optimizer.step()
        weight_optimizer.step()

    return step


def operators_per_step(step: Step, steps: int) -> float:
    """Top-level ATen operators per step (those not called by another ATen operator)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()

    def top_level(event) -> bool:
        parent = event.cpu_parent
        while parent is not None:
            if parent.name.startswith("aten::"):
                return False
            parent = parent.cpu_parent
        return True

    events = [e for e in prof.events() if e.name.startswith("aten::") and top_level(e)]
    return len(events) / steps


def seconds_per_step(step: Step, steps: int, device: torch.device) -> float:
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    return (time.perf_counter() - started) / steps


def measure(tasks: int, weighting: str, device: torch.device, repeats: int, steps: int):
    """Median ms per step and operators per step of (mtlrun, plain), alternating."""
    times: dict[str, list[float]] = {"mtlrun": [], "plain": []}
    operators = {}
    for repeat in range(repeats):
        made = {}
        made["mtlrun"], split = mtlrun_step(tasks, weighting, str(device))
        made["plain"] = plain_step(tasks, weighting, split, device)
        names = list(made) if repeat % 2 == 0 else list(reversed(made))  # alternate the order
        for name in names:
            step = made[name]
            for _ in range(5):  # warm-up: first calls, solver set-up, optimiser state
                step()
            if repeat == 0:
                operators[name] = operators_per_step(step, 5)
            times[name].append(seconds_per_step(step, steps, device))
    medians = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    return medians, operators


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repeats and steps")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tasks", type=int, nargs="+", default=TASKS)
    parser.add_argument("--weightings", nargs="+", default=WEIGHTINGS)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = parser.parse_args()
    repeats, steps = (3, 16) if args.quick else (args.repeats, args.steps)
    device = torch.device(args.device)
    rows = []
    for tasks in args.tasks:
        for weighting in args.weightings:
            ms, ops = measure(tasks, weighting, device, repeats, steps)
            rows.append(
                f"| {tasks} | {weighting} | {ms['mtlrun']:.2f} | {ms['plain']:.2f} | "
                f"{ms['mtlrun'] / ms['plain']:.2f} | {ops['mtlrun']:.0f} | {ops['plain']:.0f} |"
            )
            print(rows[-1], flush=True)
    command = "python bench/step_overhead.py" + (" --quick" if args.quick else "")
    if args.device != "cpu":
        command += f" --device {args.device}"
    lines = [
        f"{measured_on()} ({device.type}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; median of {repeats} alternating repeats of "
        f"{steps} steps. Command: `{command}`.",
        "",
        "| T | weighting | mtlrun ms/step | plain ms/step | ratio | mtlrun ops/step | "
        "plain ops/step |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    publish("step_overhead", lines, write=not args.no_write)


if __name__ == "__main__":
    main()
