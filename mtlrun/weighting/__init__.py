"""Loss weighting and gradient aggregation methods, registered by name."""

from mtlrun.weighting import (  # noqa: F401  (they register)
    aligned_mtl,
    cagrad,
    conflict_free,
    dualproj,
    dwa,
    excess_mtl,
    fairgrad,
    famo,
    fixed,
    graddrop,
    gradnorm,
    gradvac,
    imtl_g,
    mgda,
    mgda_ub,
    nashmtl,
    pcd,
    pcgrad,
    random_weights,
    scalarization,
    scale_invariant,
    uncertainty,
    upgrad,
)
from mtlrun.weighting.base import WEIGHTINGS, Weighting, check_sharing, total_loss

__all__ = ["WEIGHTINGS", "Weighting", "check_sharing", "total_loss"]
