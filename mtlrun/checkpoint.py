"""Checkpoints: everything needed to continue a run exactly, loadable with weights_only=True."""

from pathlib import Path
from typing import Any

import torch

from mtlrun.errors import UserError
from mtlrun.runfolder import write_atomic


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}; was the run started and did it finish an epoch?")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for damaged files
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"checkpoint {path} is corrupt or unreadable ({reason}); "
            "use the other checkpoint (last.pt / best.pt) or train again"
        ) from None


def rng_states(data_generator: torch.Generator) -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "data": data_generator.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any], data_generator: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    data_generator.set_state(states["data"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
