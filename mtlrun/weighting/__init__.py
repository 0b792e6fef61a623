"""Loss weighting and gradient aggregation methods, registered by name."""

from mtlrun.parts import WEIGHTINGS
from mtlrun.weighting.base import Weighting, WeightingConfig, check_sharing, total_loss

__all__ = ["WEIGHTINGS", "Weighting", "WeightingConfig", "check_sharing", "total_loss"]
