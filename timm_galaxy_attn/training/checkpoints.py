"""Checkpoints: ``checkpoints/step_NNNNNNNN/`` (accelerate state + trainer state) and the best weights.

Every write goes through a temporary name and a rename (:mod:`timm_galaxy_attn._io`), so a kill while saving
keeps the previous checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch.nn as nn
from accelerate import Accelerator

from timm_galaxy_attn._io import atomic_write, replace_dir

from ._json import write_json
from .errors import TrainingError

__all__ = [
    "BEST_NAME",
    "STATE_NAME",
    "list_checkpoints",
    "load_best",
    "load_checkpoint",
    "new_state",
    "remove_leftovers",
    "resume_state",
    "save_best",
    "save_checkpoint",
]

STATE_NAME = "trainer_state.json"
BEST_NAME = "best.safetensors"


def new_state() -> dict[str, Any]:
    """The trainer state of a run that has not trained yet (saved as trainer_state.json)."""
    return {
        "epoch": 0,
        "step_in_epoch": 0,
        "global_step": 0,
        "history": [],
        "best_epoch": None,
        "best_macro_f1": -1.0,
        "train_time_s": 0.0,
        "train_images": 0,
    }


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Complete checkpoints (renamed into place), oldest first.

    Args:
        ckpt_dir: The run's ``checkpoints/`` folder.
    """
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.glob("step_*") if p.is_dir() and not p.name.endswith(".old"))


def remove_leftovers(ckpt_dir: Path) -> None:
    """Delete the temporary folders a kill during a save left behind."""
    for leftover in ckpt_dir.glob(".tmp-*") if ckpt_dir.is_dir() else []:
        shutil.rmtree(leftover, ignore_errors=True)


def save_checkpoint(accelerator: Accelerator, ckpt_dir: Path, state: dict[str, Any], keep: int) -> Path:
    """save_state into ``.tmp-step_N``, add trainer_state.json, rename to ``step_N``; prune old ones.

    Args:
        accelerator: Saves the model, optimizer, scheduler and RNG states (every process takes part).
        ckpt_dir: The run's ``checkpoints/`` folder.
        state: The trainer state (``global_step`` names the checkpoint).
        keep: How many step checkpoints to keep (at least 1).
    """
    final = ckpt_dir / f"step_{state['global_step']:08d}"
    tmp = ckpt_dir / f".tmp-{final.name}"  # one name every process knows
    if accelerator.is_main_process:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(tmp / STATE_NAME, state)
        replace_dir(tmp, final)
        for stale in list_checkpoints(ckpt_dir)[: -max(keep, 1)]:
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, path: Path) -> dict[str, Any]:
    """load_state + trainer_state.json, with a clear error for a damaged checkpoint.

    Args:
        accelerator: Loads the states into the prepared objects.
        path: A ``step_N`` folder.

    Raises:
        TrainingError: The checkpoint is damaged or incomplete.
    """
    try:
        state = json.loads((path / STATE_NAME).read_text())
        accelerator.load_state(str(path))
    except Exception as e:  # noqa: BLE001 - any failure here means the checkpoint cannot be used
        raise TrainingError(
            f"Checkpoint {path} cannot be loaded ({type(e).__name__}: {e}). It is damaged or incomplete, or "
            "was written by another version of the training code (other optimizer parameter groups): delete "
            f"that folder to resume from an older checkpoint in {path.parent} (if any), or start again with "
            "a new --output-dir."
        ) from e
    return state


def save_best(model: nn.Module, path: Path, epoch: int) -> None:
    """The best epoch's weights: one safetensors file (epoch in its metadata), replaced atomically.

    Args:
        model: The unwrapped model.
        path: The file (``checkpoints/best.safetensors``).
        epoch: The epoch (1-based) these weights are of.
    """
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(
        path, lambda tmp: safetensors.torch.save_file(weights, str(tmp), metadata={"epoch": str(epoch)})
    )


def load_best(model: nn.Module, path: Path) -> int:
    """Load the best-epoch weights into ``model``; return that epoch.

    Args:
        model: The unwrapped model.
        path: The file :func:`save_best` wrote.

    Raises:
        TrainingError: The file cannot be read.
    """
    try:
        with safetensors.safe_open(str(path), "pt") as f:
            epoch = int(f.metadata()["epoch"])
        model.load_state_dict(safetensors.torch.load_file(str(path)))
    except Exception as e:  # noqa: BLE001 - any failure means the file cannot be used
        raise TrainingError(
            f"Best-epoch weights {path} cannot be read ({type(e).__name__}: {e}); delete the run "
            "folder's checkpoints and train again in a new --output-dir."
        ) from e
    return epoch


def resume_state(accelerator: Accelerator, resume: bool, ckpt_dir: Path, steps: int) -> dict[str, Any]:
    """The trainer state to start from: the last checkpoint's on --resume, else a fresh one.

    Args:
        accelerator: Loads the checkpoint's states.
        resume: Whether the run resumes.
        ckpt_dir: The run's ``checkpoints/`` folder.
        steps: Optimizer steps per epoch (for the message).
    """
    state = new_state()
    ckpts = list_checkpoints(ckpt_dir)
    if resume and ckpts:
        state = load_checkpoint(accelerator, ckpts[-1])
        accelerator.print(
            f"Resumed from {ckpts[-1]} (epoch {state['epoch'] + 1}, step {state['step_in_epoch']}"
            f" of {steps}, global step {state['global_step']})"
        )
    elif resume:
        accelerator.print(f"No checkpoint in {ckpt_dir} yet: starting the run from the beginning.")
    if accelerator.is_main_process:  # folders left by a kill during a save
        remove_leftovers(ckpt_dir)
    return state
