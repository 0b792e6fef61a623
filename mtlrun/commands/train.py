"""`mtlrun train [overrides]`: Hydra's own main, so -m, --cfg, --help and launchers work."""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mtlrun.config import config_dir
from mtlrun.errors import UserError
from mtlrun.train import train


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        train(cfg, run_dir)
    except UserError as error:
        print(f"mtlrun: error: {error}", file=sys.stderr)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            return None  # one failed job does not stop the sweep
        sys.exit(2)
    except KeyboardInterrupt:
        print(run_dir)
        sys.exit(130)
    print(run_dir)
    return None
