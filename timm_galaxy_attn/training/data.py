"""The data of a run: the dataset check, its data config, the splits as uint8 tensors, the epoch order."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset

from timm_galaxy_attn.labels import DATASET_CLASSES, MIRROR_LABEL_SWAPS

from .config import TrainConfig, as_config
from .errors import TrainingError
from .models import is_galaxy_model

__all__ = [
    "KNOWN_SOURCES",
    "Splits",
    "check_dataset",
    "class_weights",
    "epoch_order",
    "load_splits",
    "make_augment",
    "make_eval_loader",
    "normalization_overrides",
    "resolve_data_config",
    "step_batches",
]

KNOWN_SOURCES = ("synthetic", "galaxy10_decals", "galaxy10_sdss", "gz1_sdss")
Config = TrainConfig | Mapping[str, Any]


def check_dataset(cfg: Config) -> str | None:
    """Validate --dataset; return the dataset tag (key of DATASET_CLASSES) or None."""
    cfg = as_config(cfg)
    source = cfg.dataset
    if source not in KNOWN_SOURCES and not Path(source).exists():
        close = difflib.get_close_matches(source, KNOWN_SOURCES, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise TrainingError(
            f"Unknown dataset {source!r}: it is neither a known source ({', '.join(KNOWN_SOURCES)}) nor an "
            f"existing file or folder.{hint}"
        )
    tag = cfg.dataset_name or (source if source in DATASET_CLASSES else None)
    if tag is not None and tag not in DATASET_CLASSES:
        raise TrainingError(f"--dataset-name {tag!r} is not one of {', '.join(sorted(DATASET_CLASSES))}.")
    return tag


def normalization_overrides(data_config: dict[str, Any], cfg: Config) -> dict[str, Any]:
    """--mean / --std, when given, replace the data config's (a scratch run on a pretrained model's input)."""
    cfg = as_config(cfg)
    for key in ("mean", "std"):
        if cfg[key] is not None:
            data_config[key] = tuple(cfg[key])
    return data_config


def resolve_data_config(tag: str | None, cfg: Config) -> dict[str, Any]:
    """The preprocessing of the run: galaxy mean/std, the source's crop (whole image if no tag)."""
    from timm_galaxy_attn.data import SOURCE_CROP_PCT

    cfg = as_config(cfg)
    galaxy_cfg = timm.models.get_pretrained_cfg("galaxy_attn_vgg").to_dict()
    data_config = timm.data.resolve_data_config(pretrained_cfg=galaxy_cfg)
    data_config["crop_pct"] = SOURCE_CROP_PCT.get(tag, 1.0)  # synthetic / own files: keep the whole image
    if cfg.image_size is not None:
        data_config["input_size"] = (3, cfg.image_size, cfg.image_size)
    elif is_galaxy_model(cfg.model):  # the variant's own input size (galaxy_attn_vgg_small_s4: 128 px)
        variant = timm.models.get_pretrained_cfg(cfg.model.split(".")[0])
        data_config["input_size"] = tuple(variant.input_size)
    if cfg.crop_pct is not None:
        data_config["crop_pct"] = cfg.crop_pct
    return normalization_overrides(data_config, cfg)


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
    mirror label swap), also for synthetic images.
    """

    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]]
    label_names: list[str]
    info: dict[str, Any]
    tag: str | None
    class_set: str | None
    data_config: dict[str, Any]

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def describe(self) -> str:
        """The line a run prints about its data."""
        sizes = ", ".join(f"{k} {len(v[1])}" for k, v in self.tensors.items())
        return (
            f"Data: {sizes} images at {self.data_config['input_size'][-1]} px, {self.num_classes} classes; "
            f"data config {self.data_config}"
        )


def load_splits(
    cfg: Config, tag: str | None, accelerator: Accelerator, data_config: dict[str, Any] | None = None
) -> Splits:
    """Load the DatasetDict, settle the dataset tag and data config, decode each split once to uint8 tensors.

    A given ``data_config`` (fine-tuning: the weights' own) replaces the dataset's.
    """
    from timm_galaxy_attn.data import load_galaxy_dataset, prepare_tensors, split_info

    cfg = as_config(cfg)
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
    return Splits(tensors, label_names, info, tag, class_set, data_config)


def class_weights(labels: torch.Tensor, num_classes: int, power: float) -> torch.Tensor:
    """Per-class weights count^-power, scaled so that the mean weight over the training images is 1."""
    counts = torch.bincount(labels, minlength=num_classes).double().clamp(min=1)
    w = counts.pow(-power)
    return (w / (w[labels].mean())).float()


def epoch_order(cfg: Config, epoch: int, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Training indices of ``epoch``: a permutation (or a class-balanced draw) from (seed, epoch)."""
    cfg = as_config(cfg)
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    if cfg.balance == "sampler":
        w = class_weights(labels, num_classes, cfg.balance_power)[labels].double()
        return torch.multinomial(w, len(labels), replacement=True, generator=g)
    return torch.randperm(len(labels), generator=g)


def step_batches(order: torch.Tensor, global_batch: int, world: int) -> list[torch.Tensor]:
    """Split the epoch's order into global batches (a final one smaller than ``world`` is dropped)."""
    batches = list(order.split(global_batch))
    if batches and len(batches[-1]) < world:
        batches.pop()
    return batches


def make_eval_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> DataLoader:
    """Evaluation batches in order (accelerate shards them over processes once prepared)."""
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


def make_augment(cfg: Config, data: Splits, accelerator: Accelerator):
    """On-the-fly training augmentation (rotations, flips with the mirror label swap, shifts, jitter)."""
    from timm_galaxy_attn.data import BatchAugment

    cfg = as_config(cfg)
    augment = BatchAugment(
        data.data_config,
        rotate=None if cfg.rotate == "none" else cfg.rotate,
        flip=bool(cfg.flip),
        mirror_label_swap=MIRROR_LABEL_SWAPS.get(data.class_set),
        max_shift=cfg.max_shift,
        brightness=cfg.brightness,
        contrast=cfg.contrast,
    )
    accelerator.print(f"Augmentation: {augment}")
    if cfg.flip and data.class_set not in MIRROR_LABEL_SWAPS:
        accelerator.print(
            "Warning: the class set of this dataset is unknown, so mirror flips keep every label; "
            "pass --no-flip if a class changes under a mirror (e.g. the winding sense of spirals)."
        )
    return augment
