"""Fine-tuning from trained weights (--pretrained): loading, the head, a fresh classifier, frozen backbone."""

from __future__ import annotations

from typing import Any

import timm
import torch.nn as nn

import timm_galaxy_attn
from timm_galaxy_attn.pretrained import SHIPPED_TAGS

from .config import TrainConfig
from .errors import TrainingError
from .models import WEIGHT_PREFIXES

__all__ = [
    "finetune_model",
    "freeze_batchnorm_stats",
    "head_parameter_names",
    "load_pretrained",
    "weights_location",
]


def weights_location(name: str) -> str:
    """Where the weights of ``name`` should be: a folder, a file or a Hub repository."""
    if name.startswith(WEIGHT_PREFIXES):
        return name.split(":", 1)[1]
    pc = timm.models.get_pretrained_cfg(name)
    return (pc.file or pc.hf_hub_id or "no source in its config") if pc is not None else "nowhere"


def load_pretrained(cfg: TrainConfig) -> nn.Module | None:
    """The --pretrained model, still with its own classifier (None without --pretrained).

    Args:
        cfg: ``pretrained``, ``model`` (the weights) and ``drop_rate``.

    Raises:
        TrainingError: The weights cannot be loaded (none there, unreadable folder, unknown tag).
    """
    if not cfg.pretrained:
        return None
    kwargs = {"drop_rate": cfg.drop_rate} if cfg.drop_rate is not None else {}
    try:
        return timm.create_model(cfg.model, pretrained=True, **kwargs)
    except (RuntimeError, OSError, ValueError, KeyError) as err:
        detail = str(err) or f"no weights at {weights_location(cfg.model)}"
        raise TrainingError(
            f"Cannot load the pretrained weights of --model {cfg.model!r} ({type(err).__name__}: "
            f"{detail}). Start from a tag with weights ({', '.join(SHIPPED_TAGS)}) or "
            "a model folder (local-dir:FOLDER), or drop --pretrained to train from scratch."
        ) from err


def head_parameter_names(model: nn.Module) -> set[str]:
    """Parameter names of the head: the classifier and, in galaxy_attn_vgg models, the attention estimators.

    The estimators' vectors u decide where the network looks (3 x 128 parameters in the tiny variant); the
    projector and the convolutions that make the local features are backbone.

    Args:
        model: A timm model (``get_classifier``).
    """
    modules = [model.get_classifier()]
    modules += [m for m in model.modules() if isinstance(m, timm_galaxy_attn.AttentionEstimator)]
    ids = {id(p) for m in modules for p in m.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def finetune_model(model: nn.Module, num_classes: int, cfg: TrainConfig) -> tuple[nn.Module, dict[str, Any]]:
    """A fresh classifier for the dataset's classes (drawn from the current seed), and its summary.

    With --freeze-backbone every parameter outside the head stops taking gradients.

    Args:
        model: The pretrained model (:func:`load_pretrained`).
        num_classes: Classes of the dataset.
        cfg: ``model``, ``freeze_backbone`` and ``backbone_lr_scale``.

    Returns:
        The model, and what metrics.json records of the fine-tuning (``finetune``).
    """
    model.reset_classifier(num_classes)
    head = head_parameter_names(model)
    if cfg.freeze_backbone:
        for name, param in model.named_parameters():
            param.requires_grad_(name in head)
    summary = {
        "from": cfg.model,
        "freeze_backbone": bool(cfg.freeze_backbone),
        "backbone_lr_scale": cfg.backbone_lr_scale,
        "head_parameters": sorted(head),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    return model, summary


def freeze_batchnorm_stats(model: nn.Module) -> None:
    """BatchNorm layers whose parameters are all frozen go to eval mode: their running statistics stay."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(
            p.requires_grad for p in m.parameters()
        ):
            m.eval()
