"""The typed configuration of a training run: recipe values, overridden by the arguments typed.

:class:`TrainConfig` holds every option of ``training/train.py`` (one field per command-line option, plus
the ``command`` and package version a run records); ``train_config.json`` is its :meth:`~TrainConfig.to_dict`.
Recipe-controlled fields default to the ``default`` recipe. Read access by key (``cfg["lr"]``) and
:func:`as_config` let the helpers also take a plain mapping of some of the keys (the rest at their defaults).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from .errors import TrainingError
from .recipes import RECIPE_KEYS, RECIPES

__all__ = ["TrainConfig", "as_config", "has_accelerator_device", "resolve_config", "resolve_device"]


def _recipe(key: str) -> Any:
    return dataclasses.field(default=RECIPES["default"][key])


@dataclasses.dataclass
class TrainConfig:
    """Every option of a run, in the order ``train_config.json`` lists them (recipe options first)."""

    # recipe-controlled (defaults: the ``default`` recipe)
    image_size: int | None = _recipe("image_size")
    batch_size: int = _recipe("batch_size")
    epochs: int = _recipe("epochs")
    optimizer: str = _recipe("optimizer")
    lr: float = _recipe("lr")
    momentum: float = _recipe("momentum")
    weight_decay: float = _recipe("weight_decay")
    sched: str = _recipe("sched")
    decay_epochs: int = _recipe("decay_epochs")
    decay_rate: float = _recipe("decay_rate")
    warmup_epochs: float = _recipe("warmup_epochs")
    label_smoothing: float = _recipe("label_smoothing")
    balance: str = _recipe("balance")
    balance_power: float = _recipe("balance_power")
    rotate: str = _recipe("rotate")
    flip: bool = _recipe("flip")
    max_shift: float = _recipe("max_shift")
    brightness: float = _recipe("brightness")
    contrast: float = _recipe("contrast")
    mixed_precision: str = _recipe("mixed_precision")
    channels_last: bool = _recipe("channels_last")
    clip_grad: float = _recipe("clip_grad")
    # data
    dataset: str | None = None
    data_path: str | None = None
    dataset_name: str | None = None
    group_column: str | None = None
    split: str = "grouped"
    split_seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    synthetic_per_class: int = 200
    max_train_samples: int | None = None
    crop_pct: float | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    # model
    model: str = "galaxy_attn_vgg_small"
    pretrained: bool = False
    freeze_backbone: bool = False
    backbone_lr_scale: float = 1.0
    drop_rate: float | None = None
    stem_stride: int | None = None
    compatibility: str | None = None
    normalize: str | None = None
    attn_position: str | None = None
    attention: bool | None = None
    # run
    recipe: str = "default"
    seed: int = 0
    cpu: bool = False
    compile: bool = False
    output_dir: str | None = None
    resume: bool = False
    checkpoint_every_steps: int = 0
    keep_checkpoints: int = 1
    num_heatmaps: int = 8
    eval_batch_size: int = 256
    log_every: int = 10
    stop_after_steps: int | None = None
    # recorded by a new run
    command: str | None = None
    timm_galaxy_attn_version: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainConfig:
        """A config from ``values`` (e.g. a saved train_config.json); missing keys take their defaults."""
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TrainingError(f"Unknown training options {', '.join(sorted(unknown))}.")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


def as_config(cfg: TrainConfig | Mapping[str, Any]) -> TrainConfig:
    """``cfg`` itself, or a TrainConfig of the keys of a mapping (the others at their defaults)."""
    return cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_mapping(cfg)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """Merge the recipe with the explicit arguments (explicit wins).

    Recipe options left unset (None) take the recipe's value; every other option is the argument's."""
    values = dict(RECIPES[args.recipe])
    for key, value in vars(args).items():
        if value is not None or key not in RECIPE_KEYS:
            values[key] = value
    if args.pretrained and args.image_size is None:
        values["image_size"] = None  # fine-tuning: the input size of the weights, not the recipe's
    return TrainConfig.from_mapping(values)


def has_accelerator_device() -> bool:
    """True when torch sees a GPU (CUDA/ROCm), XPU or MPS device."""
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def resolve_device(cfg: TrainConfig) -> tuple[TrainConfig, bool]:
    """Settle ``mixed_precision="auto"`` for this device; also return whether the run is on the CPU."""
    from timm_galaxy_attn.device import accelerate_mixed_precision

    cpu = cfg.cpu or not has_accelerator_device()
    return dataclasses.replace(
        cfg, mixed_precision=accelerate_mixed_precision(cfg.mixed_precision, cpu=cpu)
    ), cpu
