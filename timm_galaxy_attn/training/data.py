"""The data of a run: its data config, the splits as uint8 tensors and their training augmentation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import timm
import torch
import torch.nn as nn
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset

from timm_galaxy_attn.labels import DATASET_CLASSES, MIRROR_LABEL_SWAPS
from timm_galaxy_attn.pretrained import architecture_cfg

from .config import TrainConfig
from .models import is_galaxy_model

__all__ = [
    "Splits",
    "class_weights",
    "finetune_data_config",
    "load_splits",
    "make_eval_loader",
    "resolve_data_config",
]


def _overrides(data_config: dict[str, Any], cfg: TrainConfig) -> dict[str, Any]:
    """--image-size, --crop-pct, --mean and --std, where given, replace the data config's."""
    if cfg.image_size is not None:
        data_config["input_size"] = (3, cfg.image_size, cfg.image_size)
    if cfg.crop_pct is not None:
        data_config["crop_pct"] = cfg.crop_pct
    for key in ("mean", "std"):
        if getattr(cfg, key) is not None:
            data_config[key] = tuple(getattr(cfg, key))
    return data_config


def resolve_data_config(tag: str | None, cfg: TrainConfig) -> dict[str, Any]:
    """The preprocessing of a run from scratch: galaxy mean/std, the source's crop (whole image if no tag).

    Args:
        tag: The dataset tag (its crop); None keeps the whole image.
        cfg: The run's config; a galaxy_attn_vgg variant brings its input size, and the options typed win.
    """
    from timm_galaxy_attn.data import SOURCE_CROP_PCT

    data_config = timm.data.resolve_data_config(pretrained_cfg=architecture_cfg("galaxy_attn_vgg"))
    data_config["crop_pct"] = SOURCE_CROP_PCT.get(tag, 1.0)  # synthetic / own files: keep the whole image
    if is_galaxy_model(cfg.model):  # the variant's own input size (galaxy_attn_vgg_small_s4: 128 px)
        data_config["input_size"] = tuple(architecture_cfg(cfg.model.split(".")[0])["input_size"])
    return _overrides(data_config, cfg)


def finetune_data_config(model: nn.Module, cfg: TrainConfig) -> dict[str, Any]:
    """The preprocessing the weights of ``model`` were trained with (their pretrained_cfg).

    Args:
        model: The pretrained model.
        cfg: The run's config; --image-size, --crop-pct, --mean and --std, when typed, override.
    """
    data_config = dict(timm.data.resolve_model_data_config(model))
    data_config.update({k: tuple(v) for k, v in data_config.items() if isinstance(v, list)})
    return _overrides(data_config, cfg)


def _dataset_kwargs(cfg: TrainConfig, data_config: dict[str, Any] | None) -> dict[str, Any]:
    """The keyword arguments of load_galaxy_dataset for this run."""
    kwargs: dict[str, Any] = dict(
        seed=cfg.split_seed, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, split=cfg.split
    )
    if cfg.data_path:
        kwargs["path"] = cfg.data_path
    if cfg.dataset_name:
        kwargs["dataset_name"] = cfg.dataset_name
    if cfg.group_column:
        kwargs["group_column"] = cfg.group_column
    if cfg.dataset == "synthetic":  # rendered at the input size, whole frame
        size = (data_config or resolve_data_config(None, cfg))["input_size"][-1]
        kwargs.update(n_per_class=cfg.synthetic_per_class, image_size=size)
    return kwargs


@dataclasses.dataclass
class Splits:
    """The decoded splits of a run and what names them.

    ``tensors``: ``{split: (x uint8 (N, 3, S, S), y (N,))}``; ``tag`` picks the data config (a named source,
    ``--dataset-name``, or the class set a path source declares); ``class_set`` names the classes (for the
    mirror label swap), also for synthetic images; ``augment`` is the training augmentation
    (``BatchAugment``) at ``data_config``.
    """

    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]]
    label_names: list[str]
    info: dict[str, Any]
    tag: str | None
    class_set: str | None
    data_config: dict[str, Any]
    augment: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    train_votes: torch.Tensor | None = None  # --joint: vote rows of the training images (joint.py)
    train_sources: torch.Tensor | None = None  # --joint: 0 gz1_sdss, i the i-th joint source

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def describe(self) -> str:
        """The line a run prints about its data."""
        sizes = ", ".join(f"{k} {len(v[1])}" for k, v in self.tensors.items())
        if self.train_sources is not None:
            sizes += f" (train: {int((self.train_sources == 0).sum())} with GZ1 labels, the rest votes)"
        return (
            f"Data: {sizes} images at {self.data_config['input_size'][-1]} px, {self.num_classes} classes; "
            f"data config {self.data_config}"
        )


def load_splits(cfg: TrainConfig, accelerator: Accelerator, pretrained: nn.Module | None = None) -> Splits:
    """Load the DatasetDict, settle the dataset tag and data config, decode each split once to uint8 tensors;
    the training augmentation at that data config.

    Args:
        cfg: The run's config.
        accelerator: One process per machine fills the dataset cache, the others wait; prints the
            augmentation.
        pretrained: The model being fine-tuned: its weights' data config replaces the dataset's.
    """
    from timm_galaxy_attn.data import load_galaxy_dataset, prepare_tensors, split_info

    tag = cfg.dataset_name or (cfg.dataset if cfg.dataset in DATASET_CLASSES else None)
    data_config = None if pretrained is None else finetune_data_config(pretrained, cfg)
    kwargs = _dataset_kwargs(cfg, data_config)
    with accelerator.local_main_process_first():  # one process per machine fills the dataset cache
        dsdict = load_galaxy_dataset(cfg.dataset, **kwargs)
    info = split_info(dsdict)
    class_set = tag or info.get("dataset_name")
    if tag is None and cfg.dataset != "synthetic" and class_set in DATASET_CLASSES:
        tag = class_set  # e.g. a Galaxy10_DECals.h5 path
    data_config = data_config or resolve_data_config(tag, cfg)
    label_names = list(dsdict["train"].features["label"].names)
    size = data_config["input_size"][-1]
    tensors = {name: prepare_tensors(dsdict[name], data_config, image_size=size) for name in dsdict}
    if cfg.max_train_samples and cfg.max_train_samples < len(tensors["train"][1]):
        g = torch.Generator().manual_seed(cfg.split_seed)
        keep = torch.randperm(len(tensors["train"][1]), generator=g)[: cfg.max_train_samples].sort().values
        tensors["train"] = (tensors["train"][0][keep], tensors["train"][1][keep])
    augment = _augment(cfg, data_config, class_set, accelerator)
    return Splits(tensors, label_names, info, tag, class_set, data_config, augment)


def class_weights(labels: torch.Tensor, num_classes: int, power: float) -> torch.Tensor:
    """Per-class weights count^-power, scaled so that the mean weight over the training images is 1.

    Args:
        labels: Labels of the training images.
        num_classes: Classes of the dataset.
        power: 1: inverse frequency, 0.5: inverse square root.
    """
    counts = torch.bincount(labels, minlength=num_classes).double().clamp(min=1)
    w = counts.pow(-power)
    return (w / (w[labels].mean())).float()


def make_eval_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> DataLoader:
    """Evaluation batches in order (accelerate shards them over processes once prepared)."""
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


def _augment(cfg: TrainConfig, data_config: dict[str, Any], class_set: str | None, accelerator: Accelerator):
    """On-the-fly training augmentation (rotations, flips with the mirror label swap, shifts, jitter)."""
    from timm_galaxy_attn.data import BatchAugment

    augment = BatchAugment(
        data_config,
        rotate=None if cfg.rotate == "none" else cfg.rotate,
        flip=bool(cfg.flip),
        mirror_label_swap=MIRROR_LABEL_SWAPS.get(class_set),
        max_shift=cfg.max_shift,
        brightness=cfg.brightness,
        contrast=cfg.contrast,
    )
    accelerator.print(f"Augmentation: {augment}")
    if cfg.flip and class_set not in MIRROR_LABEL_SWAPS:
        accelerator.print(
            "Warning: the class set of this dataset is unknown, so mirror flips keep every label; "
            "pass --no-flip if a class changes under a mirror (e.g. the winding sense of spirals)."
        )
    return augment
