"""The model of a run that is not fine-tuning: timm.create_model with the galaxy_attn_vgg options, trained
from scratch or continued from an initial checkpoint (``--initial-checkpoint``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import safetensors.torch
import timm
import torch.nn as nn

import timm_galaxy_attn
from timm_galaxy_attn.vote_head import VOTE_HEAD_FILE, has_vote_head_weights, read_vote_head

from .config import TrainConfig
from .errors import TrainingError

__all__ = [
    "GALAXY_MODEL_OPTIONS",
    "WEIGHT_PREFIXES",
    "create_model",
    "has_attention",
    "initial_files",
    "is_galaxy_model",
    "load_initial_checkpoint",
]

# Options of galaxy_attn_vgg models passed to timm.create_model (TrainConfig field = model kwarg).
GALAXY_MODEL_OPTIONS = ("stem_stride", "compatibility", "normalize", "attn_position", "attention")
# --model prefixes that name trained weights (a folder, a Hub repository) rather than an architecture.
WEIGHT_PREFIXES = ("local-dir:", "hf-hub:")


def is_galaxy_model(name: str) -> bool:
    """True for the galaxy_attn_vgg family (with or without a tag)."""
    return name.split(".")[0].startswith("galaxy_attn_vgg")


def has_attention(model: nn.Module) -> bool:
    """True when ``model`` has attention estimators (so heatmaps can be drawn)."""
    return any(isinstance(m, timm_galaxy_attn.AttentionEstimator) for m in model.modules())


def create_model(cfg: TrainConfig, tag: str | None, num_classes: int) -> nn.Module:
    """timm.create_model with the dataset's classes and, for galaxy_attn_vgg, the architecture options.

    Args:
        cfg: The run's (validated) config: ``model``, ``drop_rate`` and the galaxy_attn_vgg options.
        tag: The dataset tag; a galaxy_attn_vgg variant with that tag takes its label names.
        num_classes: Classes of the dataset.
    """
    name = cfg.model
    kwargs: dict[str, Any] = {"num_classes": num_classes}
    if is_galaxy_model(name):
        kwargs.update({k: getattr(cfg, k) for k in GALAXY_MODEL_OPTIONS if getattr(cfg, k) is not None})
        if tag is not None and "." not in name and f"{name}.{tag}" in timm.list_pretrained(name):
            name = f"{name}.{tag}"  # the dataset's tag of the variant, when it has one (its label names)
    if cfg.joint:
        kwargs["vote_head"] = True  # the GZ2 vote head of joint training (timm_galaxy_attn.vote_head)
    if cfg.drop_rate is not None:
        kwargs["drop_rate"] = cfg.drop_rate
    return timm.create_model(name, pretrained=False, **kwargs)


def initial_files(location: str) -> tuple[Path, Path]:
    """The weights file of an --initial-checkpoint and where its vote head would be (beside it)."""
    path = Path(location).expanduser()
    weights = path / "model.safetensors" if path.is_dir() else path
    if not weights.is_file() or weights.suffix != ".safetensors":
        raise TrainingError(
            f"--initial-checkpoint {location}: no safetensors weights there. Give a model folder holding "
            "model.safetensors (a run's RUN_DIR/model, a shipped tag's folder) or a .safetensors file."
        )
    return weights, weights.with_name(VOTE_HEAD_FILE)


def load_initial_checkpoint(model: nn.Module, location: str) -> list[str]:
    """Load the weights of an --initial-checkpoint into ``model``, classifier included; safetensors only.

    The vote head comes from ``vote_head.safetensors`` beside the weights when the model has one and the file
    is there; otherwise it keeps its fresh initialisation.

    Args:
        model: The run's freshly created model (:func:`create_model`).
        location: A model folder or a ``.safetensors`` file.

    Returns:
        The parameter names that kept their fresh initialisation (the vote head's, or none).

    Raises:
        TrainingError: No weights there, or weights of another network (names or shapes differ).
    """
    weights, vote_file = initial_files(location)
    state = safetensors.torch.load_file(str(weights))
    has_votes = getattr(model, "vote_head", None) is not None
    if has_votes and vote_file.is_file() and not has_vote_head_weights(state):
        state.update(read_vote_head(vote_file))
    own = model.state_dict()
    fresh = sorted(k for k in own if k not in state and k.startswith("vote_head."))
    missing = sorted(k for k in own if k not in state and k not in fresh)
    unexpected = sorted(k for k in state if k not in own)
    wrong = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        found = "; ".join(
            f"{what}: {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}"
            for what, names in (("missing", missing), ("unexpected", unexpected), ("other shape", wrong))
            if names
        )
        raise TrainingError(
            f"--initial-checkpoint {location} holds the weights of another network than --model "
            f"{model.pretrained_cfg.get('architecture', '?')} with these options ({found}). Give the options "
            "the weights were trained with (their config.json's model_args, e.g. --stem-stride 4) or, to "
            "start a new classifier on other weights, use --pretrained --model local-dir:FOLDER."
        )
    model.load_state_dict(state, strict=False)
    return fresh
