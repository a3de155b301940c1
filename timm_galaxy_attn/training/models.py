"""The model of a run trained from scratch: timm.create_model with the galaxy_attn_vgg options."""

from __future__ import annotations

from typing import Any

import timm
import torch.nn as nn

import timm_galaxy_attn

from .config import TrainConfig

__all__ = ["GALAXY_MODEL_OPTIONS", "WEIGHT_PREFIXES", "create_model", "has_attention", "is_galaxy_model"]

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
