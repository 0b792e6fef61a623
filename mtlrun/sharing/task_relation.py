"""Multi-task relationship learning (Zhang & Yeung 2010): a learned task covariance on the heads.

The heads' final-layer weights, flattened, are the columns of W (one column per task), and the
penalty λ·tr(W Ω⁻¹ Wᵀ) ties them through the task covariance Ω: tasks Ω finds related are pulled
together, unrelated ones left alone, negatively related ones pushed apart. Ω has the closed-form
minimiser Ω = (WᵀW)^{1/2} / tr((WᵀW)^{1/2}) for a given W; it is recomputed from the current
weights at every step, with no gradient through it: the paper's alternating optimisation with one
gradient step on W per update of Ω.

Which heads take part: only weights of one shape can be columns of one W, so the tasks are grouped
by the shape of their head's final layer (the last layer with parameters, taken only if it is a
Linear), and every group of two or more tasks gets its own Ω and penalty. With tasks digit (10
classes), parity and magnitude (2 classes each), parity and magnitude form a group and digit takes
no part; a convolutional decoder (ending in a transposed convolution) never takes part. Tasks that
are not trained in the current epoch (two-stage training) are left out of the penalty.
"""

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from mtlrun.errors import ConfigError

# Added to Ω's eigenvalues (Ω has trace 1) before inverting: heads that become nearly collinear
# would otherwise give Ω a near-zero eigenvalue and the penalty an exploding weight.
RIDGE = 1e-4


def final_linear(head: nn.Module) -> nn.Linear | None:
    """The head's last layer with parameters, if it is a Linear."""
    layers = [m for m in head.modules() if next(m.parameters(recurse=False), None) is not None]
    return layers[-1] if layers and isinstance(layers[-1], nn.Linear) else None


def covariance_eigen(gram: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues and eigenvectors of Ω = (WᵀW)^{1/2} / tr((WᵀW)^{1/2}), from the Gram matrix
    WᵀW, without gradient (in float32: the eigendecomposition has no bf16 kernel)."""
    eigenvalues, eigenvectors = torch.linalg.eigh(gram.detach().float())
    root = eigenvalues.clamp(min=0).sqrt()
    return root / root.sum().clamp(min=torch.finfo(root.dtype).tiny), eigenvectors


def task_covariance(weights: Tensor) -> Tensor:
    """Ω for W (one column per task): symmetric, positive semi-definite, trace 1."""
    eigenvalues, eigenvectors = covariance_eigen(weights.T @ weights)
    return (eigenvectors * eigenvalues) @ eigenvectors.T


def task_relation_penalty(weights: Tensor) -> Tensor:
    """tr(W Ω⁻¹ Wᵀ) = Σ_ij (Ω⁻¹)_ij (WᵀW)_ij, with Ω (plus a small ridge) held fixed."""
    gram = weights.T @ weights
    eigenvalues, eigenvectors = covariance_eigen(gram)
    inverse = (eigenvectors / (eigenvalues + RIDGE)) @ eigenvectors.T
    return (inverse * gram).sum()


class TaskRelation:
    """λ · Σ_groups tr(W Ω⁻¹ Wᵀ) over the task heads (see the module docstring for the groups).

    Not an nn.Module: it holds no parameters of its own, only references to layers of the heads,
    which the model saves under the heads' names.
    """

    def __init__(self, weight: float, heads: Mapping[str, nn.Module]) -> None:
        self.weight = weight
        by_shape: dict[tuple[int, ...], dict[str, nn.Linear]] = {}
        for name, head in heads.items():
            layer = final_linear(head)
            if layer is not None:
                by_shape.setdefault(tuple(layer.weight.shape), {})[name] = layer
        self.groups = [group for group in by_shape.values() if len(group) > 1]
        if not self.groups:
            shapes = ", ".join(
                f"{name} {'×'.join(map(str, shape))}"
                for shape, group in by_shape.items()
                for name in group
            )
            raise ConfigError(
                f"sharing.task_relation={weight} needs two task heads whose final Linear layers "
                f"have the same shape, but the heads have: {shapes or 'no final Linear layer'}; "
                "set sharing.task_relation=0.0 or add a task with a head like another's"
            )

    @staticmethod
    def columns(group: Mapping[str, nn.Linear]) -> Tensor:
        """W: one column per task, its head's flattened final-layer weight."""
        return torch.stack([layer.weight.flatten() for layer in group.values()], dim=1)

    def penalty(self, trains: Callable[[str], bool]) -> Tensor | None:
        """The weighted penalty over the heads of the tasks trained now; None if no group has
        two of them."""
        terms = []
        for group in self.groups:
            trained = {name: layer for name, layer in group.items() if trains(name)}
            if len(trained) > 1:
                terms.append(task_relation_penalty(self.columns(trained)))
        return self.weight * torch.stack(terms).sum() if terms else None

    def covariances(self) -> dict[tuple[str, ...], Tensor]:
        """Each group's current Ω, keyed by its tasks (rows and columns in that order)."""
        return {tuple(group): task_covariance(self.columns(group)) for group in self.groups}
