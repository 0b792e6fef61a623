"""Loss weighting and gradient aggregation methods, registered by name."""

from mtlrun.weighting import fixed  # noqa: F401  (they register)
from mtlrun.weighting.base import WEIGHTINGS, Weighting, total_loss

__all__ = ["WEIGHTINGS", "Weighting", "total_loss"]
