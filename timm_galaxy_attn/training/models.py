"""The model of a run trained from scratch: name check, timm.create_model with the galaxy options."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import timm
import torch.nn as nn

import timm_galaxy_attn

from .config import TrainConfig, as_config
from .errors import TrainingError

__all__ = ["GALAXY_MODEL_OPTIONS", "WEIGHT_PREFIXES", "check_model_name", "create_model", "has_attention"]

# Options of galaxy_attn_vgg models passed to timm.create_model (TrainConfig field -> model kwarg).
GALAXY_MODEL_OPTIONS = {
    "stem_stride": "stem_stride",
    "compatibility": "compatibility",
    "normalize": "normalize",
    "attn_position": "attn_position",
    "attention": "attention",
}
# --model prefixes that name trained weights (a folder, a Hub repository) rather than an architecture.
WEIGHT_PREFIXES = ("local-dir:", "hf-hub:")


def is_galaxy_model(name: str) -> bool:
    """True for the galaxy_attn_vgg family (with or without a tag)."""
    return name.split(".")[0].startswith("galaxy_attn_vgg")


def has_attention(model: nn.Module) -> bool:
    """True when ``model`` has attention estimators (so heatmaps can be drawn)."""
    return any(isinstance(m, timm_galaxy_attn.AttentionEstimator) for m in model.modules())


def check_model_name(name: str) -> None:
    """An unknown timm model name is a TrainingError with the closest names."""
    if name.startswith(WEIGHT_PREFIXES):  # a folder or Hub repository: checked by check_finetune
        return
    base = name.split(".")[0]
    if timm.is_model(base):
        return
    close = difflib.get_close_matches(base, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise TrainingError(
        f"Unknown model {name!r}: timm has no model of that name.{hint} Use a name from timm.list_models() "
        "(e.g. galaxy_attn_vgg, galaxy_attn_vgg_small, resnet18, efficientnet_b0)."
    )


def create_model(cfg: TrainConfig | Mapping[str, Any], tag: str | None, num_classes: int) -> nn.Module:
    """timm.create_model with the dataset's classes and, for galaxy_attn_vgg, the architecture options."""
    cfg = as_config(cfg)
    name = cfg.model
    kwargs: dict[str, Any] = {"num_classes": num_classes}
    galaxy_opts = {kw: cfg[key] for key, kw in GALAXY_MODEL_OPTIONS.items() if cfg[key] is not None}
    if is_galaxy_model(name):
        kwargs.update(galaxy_opts)
        if tag is not None and "." not in name and f"{name}.{tag}" in timm.list_pretrained(name):
            name = f"{name}.{tag}"  # the dataset's tag of the variant, when it has one (its label names)
    elif galaxy_opts:
        flags = ", ".join("--" + k.replace("_", "-") for k in galaxy_opts)
        raise TrainingError(f"{flags} only apply to galaxy_attn_vgg models, not {name!r}; drop them.")
    if cfg.drop_rate is not None:
        kwargs["drop_rate"] = cfg.drop_rate
    return timm.create_model(name, pretrained=False, **kwargs)
