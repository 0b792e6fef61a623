"""An example mtlrun plug-in. Importing it registers four parts through `mtlrun.register`:

- dataset `gaussian_blobs`: vectors from K Gaussian clusters, with a class target `cluster` and
  a real target `radius` (`blobs.py`);
- backbone `residual_mlp`: a linear stem, then residual blocks x + f(x) (`residual_mlp.py`);
- task type `hinge_classification`: Crammer & Singer's multi-class hinge loss (`hinge.py`);
- weighting `random_weighting`: Random Loss Weighting, Lin et al. 2022 (`random_weighting.py`).

Its `configs/` folder (next to this file) goes on Hydra's search path, so
`mtlrun train +experiment=plugin_example` composes.
mtlrun imports this module through the entry point the package declares (group
`mtlrun.plugins`) once the package is installed.
"""

from mtlrun_plugin_example import blobs, hinge, random_weighting, residual_mlp

__version__ = "0.1.0"
__all__ = ["blobs", "hinge", "random_weighting", "residual_mlp"]
