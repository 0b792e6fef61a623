"""The weightings' schemas (`weighting=NAME`, `weighting.KEY=...`): defaults and checks. Imports no
torch: composing a config, `--cfg job` and every refusal need only these."""

from dataclasses import dataclass

import mtlrun.simplex  # noqa: F401  (the `simplex_points` resolver +method=scalarization reads)
from mtlrun.config import check_choice, check_range
from mtlrun.errors import ConfigError


@dataclass
class WeightingConfig:
    """What every weighting has; `equal`, `fixed`, `uncertainty`, `pcgrad` and `upgrad` have
    nothing else (each one's docstring says what it does)."""

    name: str


@dataclass
class DWAConfig(WeightingConfig):
    """`weighting=dwa`, Liu et al. 2019, Dynamic Weight Average: w_t = T softmax(r / temperature)_t
    with r_t = L_t(e-1) / L_t(e-2), the ratio of the last two epochs' mean losses; 1 in epochs
    1-2."""

    temperature: float = 2.0  # τ: larger gives more even weights

    def check(self, key: str) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"{key}.temperature={self.temperature} must be positive")


GRADIENTS_OF = ("last_shared_weights", "representation")


@dataclass
class GradNormConfig(WeightingConfig):
    """`weighting=gradnorm`, Chen et al. 2018: learnt weights that balance the tasks' gradient
    norms G_t = |grad_W w_t L_t| (needs a sharing strategy that shares parameters); the weights
    sum to the task count."""

    # asymmetry: how hard tasks that train slower are pulled up; 0 equalises the norms
    alpha: float = 1.5
    # where G_t is taken: last_shared_weights (the paper's W, §3.1: the last layer all tasks
    # share) | representation (the shared representation h)
    gradient_of: str = "last_shared_weights"

    def check(self, key: str) -> None:
        if self.alpha < 0:
            raise ConfigError(f"{key}.alpha={self.alpha} must not be negative")
        check_choice(f"{key}.gradient_of", self.gradient_of, GRADIENTS_OF)


@dataclass
class MGDAConfig(WeightingConfig):
    """`weighting=mgda`, full MGDA (Désidéri 2012), solved with Sener & Koltun 2018's
    Frank-Wolfe (their Algorithm 2, torchjd): the minimum-norm convex combination of the task
    gradients on all the shared parameters (needs a strategy that shares some). Not the MGDA-UB
    of their experiments, which works on the shared representation: that is weighting=mgda_ub."""

    epsilon: float = 0.001  # Frank-Wolfe stops when its step size falls below this
    max_iters: int = 100  # Frank-Wolfe iterations at most

    def check(self, key: str) -> None:
        if self.epsilon <= 0 or self.max_iters < 1:
            raise ConfigError(
                f"{key}.epsilon={self.epsilon} and {key}.max_iters={self.max_iters} "
                "must be positive"
            )


NORMALIZATIONS = ("none", "l2", "loss", "loss+")


@dataclass
class MGDAUBConfig(WeightingConfig):
    """`weighting=mgda_ub`, Sener & Koltun 2018, MGDA-UB (their experiments' method): the
    minimum-norm convex weights of the task gradients on the shared representation (torchjd's
    MGDAWeighting), then sum_t alpha_t L_t of the raw losses; needs a strategy that shares
    some layers."""

    # what each task's gradient is divided by before solving (the authors'
    # gradient_normalizers): none | l2 (its norm) | loss | loss+ (loss × norm); none is the
    # authors' MultiMNIST setting (their CelebA sample: loss+)
    normalization: str = "none"
    epsilon: float = 0.001  # Frank-Wolfe stops when its step size falls below this
    max_iters: int = 100  # Frank-Wolfe iterations at most

    def check(self, key: str) -> None:
        check_choice(f"{key}.normalization", self.normalization, NORMALIZATIONS)
        if self.epsilon <= 0 or self.max_iters < 1:
            raise ConfigError(
                f"{key}.epsilon={self.epsilon} and {key}.max_iters={self.max_iters} "
                "must be positive"
            )


@dataclass
class CAGradConfig(WeightingConfig):
    """`weighting=cagrad`, Liu et al. 2021, CAGrad (torchjd; needs torchjd[cagrad]): the
    direction near the mean gradient that best improves the worst task, on the shared
    parameters (needs a strategy that shares some)."""

    c: float = 0.4  # radius of the ball around the mean gradient, relative to its norm; 0 = mean
    norm_eps: float = 0.0001  # guards the normalisation against division by zero

    def check(self, key: str) -> None:
        if self.c < 0 or self.norm_eps < 0:
            raise ConfigError(
                f"{key}.c={self.c} and {key}.norm_eps={self.norm_eps} must not be negative"
            )


@dataclass
class NashMTLConfig(WeightingConfig):
    """`weighting=nashmtl`, Navon et al. 2022, Nash-MTL (torchjd; needs torchjd[nash-mtl]): the
    Nash bargaining solution between the task gradients on the shared parameters (needs a
    strategy that shares some)."""

    max_norm: float = 1.0  # the aggregated gradient's norm is clipped to this; 0 turns it off
    update_weights_every: int = 1  # solve for new weights every this many steps
    optim_niter: int = 20  # iterations of the sequential convex solver per solve

    def check(self, key: str) -> None:
        if self.max_norm < 0 or self.update_weights_every < 1 or self.optim_niter < 1:
            raise ConfigError(
                f"{key}.max_norm must not be negative, and {key}.update_weights_every "
                f"and {key}.optim_niter must be at least 1"
            )


SCALE_MODES = ("min", "median", "rmse")


@dataclass
class AlignedMTLConfig(WeightingConfig):
    """`weighting=aligned_mtl`, Senushkin et al. 2023, Aligned-MTL (torchjd): the task
    gradients made orthogonal and of one norm (the Jacobian's condition number brought to 1),
    then summed; on the shared parameters (needs a strategy that shares some)."""

    # the singular value every aligned gradient gets: min (the paper's Algorithm 1) | median |
    # rmse (the mean eigenvalue, as the authors' code)
    scale_mode: str = "min"

    def check(self, key: str) -> None:
        check_choice(f"{key}.scale_mode", self.scale_mode, SCALE_MODES)


@dataclass
class FairGradConfig(WeightingConfig):
    """`weighting=fairgrad`, Ban & Ji 2024, FairGrad (torchjd; scipy): α-fair allocation of the
    update among the tasks; on the shared parameters (needs a strategy that shares some)."""

    # the fairness, above 0: 1 proportional fairness, 2 minimum potential delay, → ∞ max-min
    alpha: float = 1.0
    max_iters: int | None = None  # the least-squares solver's iterations; null = scipy's

    def check(self, key: str) -> None:
        if self.alpha <= 0 or (self.max_iters is not None and self.max_iters < 1):
            raise ConfigError(
                f"{key}.alpha={self.alpha} must be positive and {key}.max_iters="
                f"{self.max_iters} at least 1 (or null)"
            )


@dataclass
class FAMOConfig(WeightingConfig):
    """`weighting=famo`, Liu et al. 2023, FAMO: task weights z = softmax(ξ) that shift toward the
    tasks whose log-loss fell least in the last step, in O(1) time and memory (no per-task
    gradients). The defaults are the authors' (their famo.py)."""

    gamma: float = 0.01  # the logits' weight decay (the paper's regularisation γ)
    w_lr: float = 0.025  # the logits' Adam learning rate (the paper's β)
    epsilon: float = 1e-8  # added to every loss before its log

    def check(self, key: str) -> None:
        if self.w_lr <= 0 or self.gamma < 0 or self.epsilon <= 0:
            raise ConfigError(
                f"{key}.w_lr={self.w_lr} and {key}.epsilon={self.epsilon} must be "
                f"positive, {key}.gamma={self.gamma} not negative"
            )


@dataclass
class GradVacConfig(WeightingConfig):
    """`weighting=gradvac`, Wang et al. 2021, GradVac (torchjd): each task gradient is corrected
    toward every other until their cosine reaches a target, an EMA of the cosines seen; on the
    shared parameters (needs a strategy that shares some)."""

    beta: float = 0.5  # the EMA's rate: φ̂ ← (1 − β) φ̂ + β φ, in [0, 1]
    eps: float = 1e-8  # added to denominators

    def check(self, key: str) -> None:
        if not 0 <= self.beta <= 1 or self.eps < 0:
            raise ConfigError(
                f"{key}.beta={self.beta} must lie in [0, 1] and {key}.eps="
                f"{self.eps} must not be negative"
            )


@dataclass
class PCDConfig(WeightingConfig):
    """`weighting=pcd`, Varam et al. 2026, PCD (torchjd): follow the primary task's gradient as
    closely as possible while every other task keeps a fraction τ of its own progress; on the
    shared parameters (needs a strategy that shares some)."""

    primary: str | None = None  # the primary task's name; null: the first task of `tasks`
    tau: float = 0.02  # the fraction of normalised first-order progress each other task keeps
    beta: float = 0.999  # the decay of the EMA of the squared gradient norms, in [0, 1)
    eps: float = 1e-8  # added to that EMA before its inverse square root

    def check(self, key: str) -> None:
        if not 0 <= self.tau <= 1 or not 0 <= self.beta < 1 or self.eps < 0:
            raise ConfigError(
                f"{key}.tau={self.tau} must lie in [0, 1], {key}.beta={self.beta} "
                f"in [0, 1) and {key}.eps={self.eps} must not be negative"
            )


WEIGHT_SUMS = ("one", "tasks")  # what ExcessMTL's weights add up to


@dataclass
class ExcessMTLConfig(WeightingConfig):
    """`weighting=excess_mtl`, He et al. 2024, ExcessMTL: loss weights that move toward the
    tasks further from convergence, by an estimate of their excess risk on the shared
    parameters (needs a strategy that shares some); the whole loss is weighted."""

    # η_α of the exponentiated-gradient step (eq. 9), above 0: LibMTL's default (torchjd's is
    # 1.0, which saturates the weights within a few hundred steps; the authors' NYUv2 script 1e-4)
    robust_step_size: float = 0.01
    # steps with uniform weights whose mean excess risk is the baseline, at least 1: 1, the
    # first step's, as the authors' code and LibMTL; Appendix C.1 uses 3 epochs' worth
    n_warmup_steps: int = 1
    # what the weights add up to: one (the paper's simplex, eq. 9) | tasks (T, as the authors'
    # code and LibMTL, whose weights start at 1: the same direction, a T times larger loss)
    weights_sum_to: str = "one"

    def check(self, key: str) -> None:
        if self.robust_step_size <= 0 or self.n_warmup_steps < 1:
            raise ConfigError(
                f"{key}.robust_step_size={self.robust_step_size} must be positive and "
                f"{key}.n_warmup_steps={self.n_warmup_steps} at least 1"
            )
        check_choice(f"{key}.weights_sum_to", self.weights_sum_to, WEIGHT_SUMS)


@dataclass
class ScalarizationConfig(WeightingConfig):
    """`weighting=scalarization`: L = Σ_t w_t L_t with w the lattice point `point` of the
    simplex at `resolution` (every weight a multiple of 1/resolution, Σ_t w_t = 1; for 2 tasks
    point k is (k/resolution, 1 − k/resolution)). `+method=scalarization` in a `-m` run sweeps
    `point` over the whole lattice: 9 runs for 2 tasks at resolution 8, 45 for 3."""

    resolution: int = 8
    # Set by the sweep. Unset (one run, or one job of a sweep over methods): the point nearest
    # equal weights, so that the weighting trains like every other one with its defaults.
    point: int | None = None

    def check(self, key: str) -> None:
        check_range(f"{key}.resolution", self.resolution, 1)
        if self.point is not None:
            check_range(f"{key}.point", self.point, 0)
