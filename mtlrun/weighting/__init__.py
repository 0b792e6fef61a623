"""Loss weighting and gradient aggregation methods, registered by name."""

from mtlrun.weighting import (  # noqa: F401  (they register)
    cagrad,
    dwa,
    fixed,
    gradnorm,
    mgda,
    mgda_ub,
    nashmtl,
    pcgrad,
    uncertainty,
    upgrad,
)
from mtlrun.weighting.base import WEIGHTINGS, Weighting, check_sharing, total_loss

__all__ = ["WEIGHTINGS", "Weighting", "check_sharing", "total_loss"]
