"""Checkpoints: everything needed to continue a run exactly, loadable with weights_only=True."""

import re
import warnings
from pathlib import Path
from typing import Any

import torch

from mtlrun.errors import UserError
from mtlrun.runfolder import write_atomic


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    def save(tmp: str) -> None:
        # Our own file object: closed when torch.save fails (a full disk), so the space of the
        # partial file comes back once it is removed, for meta.json to say "failed".
        with open(tmp, "wb") as f:
            torch.save(state, f)

    write_atomic(path, save)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint at `path`, loaded with weights_only=True: tensors and plain data only.
    A file that holds anything else is refused, never loaded some other way, since unpickling
    arbitrary objects can run code."""
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}; was the run started and did it finish an epoch?")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for damaged files
        raise UserError(unloadable(path, error)) from None


def unloadable(path: Path, error: Exception) -> str:
    """One line on what is wrong with a checkpoint torch would not load, without torch's
    advice to load it with weights_only=False (mtlrun never does)."""
    text = str(error)
    code = re.search(r"GLOBAL ([\w.]+)", text)
    if code:
        return (
            f"checkpoint {path} holds a Python object ({code.group(1)}) that could run code "
            "when loaded, so mtlrun refuses it; use a checkpoint written by mtlrun, or train again"
        )
    if isinstance(error, EOFError) or path.stat().st_size == 0:
        reason = "the file is empty"
    elif "zip archive" in text:
        reason = "a damaged or truncated zip archive"
    elif "Weights only load failed" in text:
        reason = "not a PyTorch checkpoint"
    else:
        first = text.split(". ")[0].splitlines()[0] if text else ""
        reason = f"{type(error).__name__}: {first[:80]}" if first else type(error).__name__
    return (
        f"checkpoint {path} is corrupt or unreadable ({reason}); use the other checkpoint "
        "(last.pt / best.pt) or train again"
    )


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
