"""Fine-tuning from trained weights (--pretrained): checks, loading, fresh head, freezing, param groups."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn as nn

import timm_galaxy_attn
from timm_galaxy_attn.pretrained import SHIPPED_TAGS

from .config import TrainConfig, as_config
from .data import normalization_overrides
from .errors import TrainingError
from .models import GALAXY_MODEL_OPTIONS, WEIGHT_PREFIXES

__all__ = [
    "check_finetune",
    "finetune_data_config",
    "finetune_model",
    "finetune_summary",
    "freeze_batchnorm_stats",
    "head_parameter_names",
    "load_pretrained",
    "make_optimizer",
]

Config = TrainConfig | Mapping[str, Any]


def _check_scratch(cfg: TrainConfig) -> None:
    """Without --pretrained: no weights named by --model, no fine-tuning flags."""
    if cfg.model.startswith(WEIGHT_PREFIXES):
        raise TrainingError(
            f"--model {cfg.model!r} names trained weights: add --pretrained to fine-tune them (a fresh "
            "classifier for the dataset's classes), or give an architecture name to train from scratch."
        )
    for flag, given in (
        ("--freeze-backbone", cfg.freeze_backbone),
        ("--backbone-lr-scale", cfg.backbone_lr_scale != 1),
    ):
        if given:
            raise TrainingError(
                f"{flag} needs --pretrained: without pretrained weights there is no backbone to freeze "
                "or slow down. Add --pretrained --model TAG (e.g. galaxy_attn_vgg_tiny_s4.gz1_sdss) or "
                "local-dir:FOLDER."
            )


def check_finetune(cfg: Config) -> None:
    """Refuse fine-tuning flags that cannot work together, before anything is loaded or written."""
    cfg = as_config(cfg)
    if not cfg.pretrained:
        _check_scratch(cfg)
        return
    scale = cfg.backbone_lr_scale
    if not scale > 0:
        raise TrainingError(f"--backbone-lr-scale {scale}: must be > 0 (use --freeze-backbone for 0).")
    if cfg.freeze_backbone and scale != 1:
        raise TrainingError(
            "--backbone-lr-scale has no effect with --freeze-backbone (no backbone lr); drop one."
        )
    typed = [k for k in GALAXY_MODEL_OPTIONS if cfg[k] is not None]
    if typed:
        flags = ", ".join("--" + k.replace("_", "-") for k in typed)
        raise TrainingError(f"{flags}: with --pretrained the architecture comes with the weights; drop them.")
    check_weights_source(cfg.model)


def check_weights_source(name: str) -> None:
    """A model folder must hold config.json; a tag must exist and have weights."""
    if name.startswith("hf-hub:"):
        return
    if name.startswith("local-dir:"):
        folder = Path(name.removeprefix("local-dir:")).expanduser()
        if not (folder / "config.json").is_file():
            raise TrainingError(
                f"--model {name!r}: {folder} is not a model folder (config.json + model.safetensors, e.g. a "
                "run's RUN_DIR/model)."
            )
        return
    base, _, tag = name.partition(".")
    if tag and name not in timm.list_pretrained(base):
        tags = [t for t in timm.list_pretrained(base) if t.split(".")[0] == base]
        raise TrainingError(
            f"--model {name!r}: {base} has no tag {tag!r}. Its tags: {', '.join(tags) or 'none'}; tags with "
            f"weights: {', '.join(SHIPPED_TAGS)}."
        )


def weights_location(name: str) -> str:
    """Where the weights of ``name`` should be: a folder, a file or a Hub repository."""
    if name.startswith(WEIGHT_PREFIXES):
        return name.split(":", 1)[1]
    pc = timm.models.get_pretrained_cfg(name)
    return (pc.file or pc.hf_hub_id or "no source in its config") if pc is not None else "nowhere"


def load_pretrained(cfg: Config) -> nn.Module | None:
    """The --pretrained model, still with its own classifier (None without --pretrained).

    Every failure (unknown tag, no weights here, unreadable folder) becomes a TrainingError."""
    cfg = as_config(cfg)
    if not cfg.pretrained:
        return None
    check_finetune(cfg)
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


def finetune_data_config(model: nn.Module, cfg: Config) -> dict[str, Any]:
    """The preprocessing the weights were trained with (their pretrained_cfg).

    ``--image-size`` and ``--crop-pct``, when typed, override it."""
    cfg = as_config(cfg)
    data_config = dict(timm.data.resolve_model_data_config(model))
    data_config.update({k: tuple(v) for k, v in data_config.items() if isinstance(v, list)})
    if cfg.image_size is not None:
        data_config["input_size"] = (3, cfg.image_size, cfg.image_size)
    if cfg.crop_pct is not None:
        data_config["crop_pct"] = cfg.crop_pct
    return normalization_overrides(data_config, cfg)


def head_parameter_names(model: nn.Module) -> set[str]:
    """Parameter names of the head: the classifier and, in galaxy_attn_vgg models, the attention estimators.

    The estimators' vectors u decide where the network looks (3 x 128 parameters in the tiny variant); the
    projector and the convolutions that make the local features are backbone."""
    modules = [model.get_classifier()]
    modules += [m for m in model.modules() if isinstance(m, timm_galaxy_attn.AttentionEstimator)]
    ids = {id(p) for m in modules for p in m.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def finetune_model(model: nn.Module, num_classes: int, cfg: Config) -> nn.Module:
    """A fresh classifier for the dataset's classes (drawn from the current seed).

    With --freeze-backbone every parameter outside the head stops taking gradients."""
    model.reset_classifier(num_classes)
    if as_config(cfg).freeze_backbone:
        head = head_parameter_names(model)
        for name, param in model.named_parameters():
            param.requires_grad_(name in head)
    return model


def freeze_batchnorm_stats(model: nn.Module) -> None:
    """BatchNorm layers whose parameters are all frozen go to eval mode: their running statistics stay."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(
            p.requires_grad for p in m.parameters()
        ):
            m.eval()


def make_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """SGD or AdamW over the trainable parameters.

    With --pretrained two groups: ``head`` at lr, ``backbone`` (the pretrained rest) at
    lr * --backbone-lr-scale.
    """
    cfg = as_config(cfg)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if cfg.pretrained:
        head = head_parameter_names(model)
        lrs = {"head": cfg.lr, "backbone": cfg.lr * cfg.backbone_lr_scale}
        groups = [
            {"params": [p for n, p in trainable if (n in head) == (part == "head")], "lr": lr, "name": part}
            for part, lr in lrs.items()
        ]
        groups = [g for g in groups if g["params"]]
    else:
        groups = [{"params": [p for _, p in trainable], "lr": cfg.lr}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def finetune_summary(model: nn.Module, cfg: Config) -> dict[str, Any] | None:
    """What metrics.json records of a fine-tuning run (None when training from scratch)."""
    cfg = as_config(cfg)
    if not cfg.pretrained:
        return None
    return {
        "from": cfg.model,
        "freeze_backbone": bool(cfg.freeze_backbone),
        "backbone_lr_scale": cfg.backbone_lr_scale,
        "head_parameters": sorted(head_parameter_names(model)),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
