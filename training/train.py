"""Train a galaxy classifier (``galaxy_attn_vgg*`` or any timm model) with accelerate.

One process (CPU, one GPU)::

    python training/train.py --dataset synthetic --model galaxy_attn_vgg_small --epochs 10 \\
        --output-dir runs/syn

Many processes (CPU via gloo, several GPUs, several nodes)::

    accelerate launch --multi_gpu --num_processes 2 training/train.py --dataset gz1_sdss ... \\
        --output-dir runs/gz1

What a run writes into ``--output-dir``:

- ``train_config.json``: the resolved configuration (recipe values, overridden by explicit arguments);
- ``checkpoints/step_NNNNNNNN/``: ``Accelerator.save_state`` plus ``trainer_state.json`` (epoch, step,
  history), written into a temporary folder and renamed, so a kill while saving keeps the previous one;
  ``checkpoints/best.safetensors``: the weights of the best epoch on validation macro-F1;
- ``tensorboard/``: accelerate's TensorBoard tracker; ``attention/epoch_NNN.png``: attention heatmaps of
  the same validation galaxies after every epoch (galaxy_attn_vgg models with attention);
- at the end, the best epoch scored once on test: ``metrics.json``, ``confusion_matrix.png``,
  ``predictions.npz`` (validation and test logits, for calibration and bootstrap without retraining) and
  ``model/`` (config.json + model.safetensors with the label names, ``timm.create_model("local-dir:...")``).

Data: the split is decoded once into uint8 tensors (``prepare_tensors``) at the data config of the dataset:
the ``galaxy_attn_vgg.<dataset>`` pretrained config (crop, mean, std) where that tag exists, for every model,
so baselines see the same pixels; for other sources (synthetic, your own files) the same config with the whole
image kept (``crop_pct=1``). ``--image-size`` and ``--crop-pct`` override it. Training batches are augmented
on the fly (``BatchAugment``: rotations, flips with the mirror label swap), evaluation batches only
normalised (``normalize_batch``).

Fine-tuning (``--pretrained``): ``--model`` names trained weights (a tag such as
``galaxy_attn_vgg_tiny_s4.gz1_sdss``, ``local-dir:FOLDER`` or ``hf-hub:ORG/NAME``); the model starts from
them with a fresh classifier for the dataset's classes (``reset_classifier``), and the data config (input
size, crop, mean/std) is the weights' own pretrained_cfg. ``--freeze-backbone`` trains the head only: the
classifier and the attention estimators (their vectors u choose where the network looks; a few hundred
parameters), with every BatchNorm of the frozen backbone kept in eval mode; ``--backbone-lr-scale F`` gives
the pretrained non-head parameters the learning rate ``lr * F`` (a second optimizer parameter group).

Determinism: the data order of epoch ``e`` is a permutation drawn from ``(seed, e)`` and the torch RNG is
re-seeded from ``(seed, epoch, step, process)`` before each step, so a resumed run replays exactly what an
uninterrupted run does.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import timm
import torch
import torch.nn as nn
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

import timm_galaxy_attn
from timm_galaxy_attn.labels import DATASET_CLASSES, MIRROR_LABEL_SWAPS
from timm_galaxy_attn.pretrained import SHIPPED_TAGS

# ----------------------------------------------------------------------------------------------------------
# Recipes: values used for every argument left unset on the command line.
# ----------------------------------------------------------------------------------------------------------

RECIPES: dict[str, dict[str, Any]] = {
    # Misquith (2023): 32x32 inputs, batch 128, SGD lr 0.1 momentum 0.9 weight decay 5e-4, lr halved every
    # 25 epochs; no augmentation beyond the resize, plain cross-entropy, fp32.
    "paper": dict(
        image_size=32,
        batch_size=128,
        epochs=100,
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        sched="step",
        decay_epochs=25,
        decay_rate=0.5,
        warmup_epochs=0,
        label_smoothing=0.0,
        balance="none",
        balance_power=1.0,
        rotate="none",
        flip=False,
        max_shift=0.0,
        brightness=0.0,
        contrast=0.0,
        mixed_precision="no",
        channels_last=False,
        clip_grad=0.0,
    ),
    # Ours, for a CPU budget: AdamW with warmup + cosine, label smoothing, class weights in the loss (inverse
    # square-root frequency: rare classes count without overfitting the 48-image ones), any-angle rotations
    # and mirror flips (with the chirality label swap), bf16 autocast and channels_last.
    "default": dict(
        image_size=None,
        batch_size=64,
        epochs=30,
        optimizer="adamw",
        lr=2e-3,
        momentum=0.9,
        weight_decay=0.05,
        sched="cosine",
        decay_epochs=25,
        decay_rate=0.5,
        warmup_epochs=1,
        label_smoothing=0.1,
        balance="loss",
        balance_power=0.5,
        rotate="any",
        flip=True,
        max_shift=0.0625,
        brightness=0.1,
        contrast=0.1,
        mixed_precision="auto",  # bf16 where native (timm_galaxy_attn.device); the run records the choice
        channels_last=True,
        clip_grad=5.0,
    ),
}

# Options of galaxy_attn_vgg models passed to timm.create_model (argparse dest -> model kwarg).
GALAXY_MODEL_OPTIONS = {
    "stem_stride": "stem_stride",
    "compatibility": "compatibility",
    "normalize": "normalize",
    "attn_position": "attn_position",
    "attention": "attention",
}
KNOWN_SOURCES = ("synthetic", "galaxy10_decals", "galaxy10_sdss", "gz1_sdss")
# Arguments that may differ when resuming (they do not change what is computed).
RESUME_FREE = {"resume", "output_dir", "stop_after_steps", "log_every", "eval_batch_size", "cpu"}
CONFIG_NAME = "train_config.json"
STATE_NAME = "trainer_state.json"
BEST_NAME = "best.safetensors"


class TrainingError(RuntimeError):
    """A problem with the arguments, the data or the run folder; the message says how to fix it."""


def build_parser() -> argparse.ArgumentParser:
    """The command line. Recipe-controlled options default to None (= take the recipe's value)."""
    p = argparse.ArgumentParser(
        description="Train galaxy_attn_vgg (or any timm model) on a galaxy dataset with accelerate.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        default=None,
        help=f"a load_galaxy_dataset source: {', '.join(KNOWN_SOURCES)}, or a path (.h5, parquet, "
        "image folder)",
    )
    g.add_argument(
        "--data-path", default=None, help="local file/folder for a named source (else its default)"
    )
    g.add_argument(
        "--dataset-name",
        default=None,
        help="class-name set of a path source (galaxy10_decals, galaxy10_sdss, gz1_sdss): picks "
        "its data config and mirror label swap",
    )
    g.add_argument(
        "--group-column",
        default=None,
        help="a column of a parquet source whose equal values stay on one side of the split (object id, IAU "
        "name; IAU names without ra/dec columns also join the 10-arcsec sky grouping)",
    )
    g.add_argument("--split", default="grouped", help="split rule of load_galaxy_dataset ('grouped', 'hub')")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation/test split")
    g.add_argument("--val-fraction", type=float, default=0.1)
    g.add_argument("--test-fraction", type=float, default=0.1)
    g.add_argument(
        "--synthetic-per-class", type=int, default=200, help="images per class of --dataset synthetic"
    )
    g.add_argument("--max-train-samples", type=int, default=None, help="use only this many training images")
    g.add_argument("--image-size", type=int, default=None, help="input size (default: the data config's)")
    g.add_argument(
        "--crop-pct", type=float, default=None, help="centre-crop fraction (default: data config's)"
    )
    g.add_argument(
        "--mean", type=float, nargs=3, default=None, help="per-channel mean (default: data config's)"
    )
    g.add_argument(
        "--std", type=float, nargs=3, default=None, help="per-channel std (default: data config's)"
    )

    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default="galaxy_attn_vgg_small",
        help="any timm model name; with --pretrained also a tag with weights, local-dir:FOLDER or "
        "hf-hub:ORG/NAME",
    )
    g.add_argument(
        "--pretrained",
        action="store_true",
        help="fine-tune: start from the weights of --model with a fresh classifier for the dataset's "
        "classes; the data config (input size, crop, mean/std) comes from the weights' pretrained_cfg",
    )
    g.add_argument(
        "--freeze-backbone",
        action="store_true",
        help="with --pretrained: train only the head (classifier + attention estimators); BatchNorm "
        "statistics of the backbone stay the pretrained ones",
    )
    g.add_argument(
        "--backbone-lr-scale",
        type=float,
        default=1.0,
        help="with --pretrained: learning rate of the pretrained non-head parameters = lr * this",
    )
    g.add_argument("--drop-rate", type=float, default=None, help="dropout before the classifier")
    g.add_argument("--stem-stride", type=int, default=None, choices=(1, 2, 4), help="galaxy_attn_vgg only")
    g.add_argument("--compatibility", default=None, choices=("pc", "dp"), help="galaxy_attn_vgg only")
    g.add_argument("--normalize", default=None, choices=("softmax", "sigmoid"), help="galaxy_attn_vgg only")
    g.add_argument("--attn-position", default=None, choices=("before", "after"), help="galaxy_attn_vgg only")
    g.add_argument(
        "--no-attention",
        dest="attention",
        action="store_const",
        const=False,
        default=None,
        help="galaxy_attn_vgg ablation: classifier on the global feature g, no attention",
    )

    g = p.add_argument_group("optimisation (defaults come from --recipe)")
    g.add_argument("--recipe", choices=sorted(RECIPES), default="default")
    g.add_argument("--epochs", type=int, default=None)
    g.add_argument("--batch-size", type=int, default=None, help="per process")
    g.add_argument("--optimizer", choices=("sgd", "adamw"), default=None)
    g.add_argument("--lr", type=float, default=None)
    g.add_argument("--momentum", type=float, default=None)
    g.add_argument("--weight-decay", type=float, default=None)
    g.add_argument("--sched", choices=("step", "cosine", "constant"), default=None)
    g.add_argument("--decay-epochs", type=int, default=None, help="step schedule: epochs between decays")
    g.add_argument("--decay-rate", type=float, default=None, help="step schedule: lr factor per decay")
    g.add_argument("--warmup-epochs", type=float, default=None)
    g.add_argument("--label-smoothing", type=float, default=None)
    g.add_argument(
        "--balance",
        choices=("none", "loss", "sampler"),
        default=None,
        help="class balancing: weights in the loss or a weighted sampler",
    )
    g.add_argument(
        "--balance-power",
        type=float,
        default=None,
        help="class weight = count^-power (1: inverse frequency, 0.5: inverse square root)",
    )
    g.add_argument("--rotate", choices=("any", "90", "none"), default=None, help="rotation augmentation")
    g.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mirror flips (with the dataset's mirror label swap)",
    )
    g.add_argument("--max-shift", type=float, default=None, help="random shift, fraction of the image side")
    g.add_argument("--brightness", type=float, default=None, help="brightness jitter (factor in 1 +- v)")
    g.add_argument("--contrast", type=float, default=None, help="contrast jitter (factor in 1 +- v)")
    g.add_argument(
        "--mixed-precision",
        choices=("auto", "no", "bf16", "fp16"),
        default=None,
        help="auto: bf16 where the device runs it natively, else no (fp16 on GPUs without bf16)",
    )
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--clip-grad", type=float, default=None, help="gradient norm clip (0: off)")
    g.add_argument("--seed", type=int, default=0, help="seed of initialisation, data order and augmentation")
    g.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")

    g = p.add_argument_group("run")
    g.add_argument("--output-dir", required=True)
    g.add_argument(
        "--resume", action="store_true", help="continue the run in --output-dir from its last checkpoint"
    )
    g.add_argument(
        "--checkpoint-every-steps",
        type=int,
        default=0,
        help="also checkpoint every N optimizer steps (0: only at the end of each epoch)",
    )
    g.add_argument("--keep-checkpoints", type=int, default=1, help="how many step checkpoints to keep")
    g.add_argument("--num-heatmaps", type=int, default=8, help="validation galaxies in the attention grids")
    g.add_argument("--eval-batch-size", type=int, default=256)
    g.add_argument("--log-every", type=int, default=10, help="TensorBoard step logging interval")
    g.add_argument(
        "--stop-after-steps",
        type=int,
        default=None,
        help="debug: stop (as if killed) after this many optimizer steps of the whole run",
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Return the parsed arguments and the subset typed on the command line (``dest -> value``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dataset is None and not args.resume:
        parser.error("the following arguments are required: --dataset (only --resume reads it from the run)")
    quiet = build_parser()
    for action in quiet._actions:  # re-parse with no defaults: what is left was typed
        if action.dest != "help":
            action.default = argparse.SUPPRESS
            action.required = False
    return args, vars(quiet.parse_args(argv))


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """Merge the recipe with the explicit arguments (explicit wins) into one flat dict."""
    cfg = dict(RECIPES[args.recipe])
    for key, value in vars(args).items():
        if value is not None or key not in cfg:
            cfg[key] = value
    if args.pretrained and args.image_size is None:
        cfg["image_size"] = None  # fine-tuning: the input size of the weights, not the recipe's
    return cfg


# ----------------------------------------------------------------------------------------------------------
# Learning-rate schedule (a pure function of the optimizer step: resuming needs no scheduler pickle).
# ----------------------------------------------------------------------------------------------------------


def lr_factor(
    step: int,
    *,
    steps_per_epoch: int,
    epochs: int,
    sched: str,
    warmup_epochs: float = 0.0,
    decay_epochs: int = 25,
    decay_rate: float = 0.5,
    min_factor: float = 0.01,
) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based).

    ``step``: ``decay_rate ** (epoch // decay_epochs)`` (the paper: halved every 25 epochs);
    ``cosine``: linear warmup over ``warmup_epochs``, then cosine from 1 down to ``min_factor``;
    ``constant``: 1 after the warmup.
    """
    warmup = int(round(warmup_epochs * steps_per_epoch))
    if step < warmup:
        return (step + 1) / warmup
    if sched == "step":
        return decay_rate ** ((step // steps_per_epoch) // decay_epochs)
    if sched == "constant":
        return 1.0
    if sched == "cosine":
        total = max(epochs * steps_per_epoch - warmup, 1)
        progress = min((step - warmup) / total, 1.0)
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {sched!r}; choose step, cosine or constant")


def make_lr_lambda(cfg: dict[str, Any], steps_per_epoch: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        return lr_factor(
            step,
            steps_per_epoch=steps_per_epoch,
            epochs=cfg["epochs"],
            sched=cfg["sched"],
            warmup_epochs=cfg["warmup_epochs"],
            decay_epochs=cfg["decay_epochs"],
            decay_rate=cfg["decay_rate"],
        )

    return factor


# ----------------------------------------------------------------------------------------------------------
# Model and data
# ----------------------------------------------------------------------------------------------------------


def has_accelerator_device() -> bool:
    """True when torch sees a GPU (CUDA/ROCm), XPU or MPS device."""
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def is_galaxy_model(name: str) -> bool:
    return name.split(".")[0].startswith("galaxy_attn_vgg")


def check_model_name(name: str) -> None:
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


def check_dataset(cfg: dict[str, Any]) -> str | None:
    """Validate --dataset; return the dataset tag (key of DATASET_CLASSES) or None."""
    source = cfg["dataset"]
    if source not in KNOWN_SOURCES and not Path(source).exists():
        close = difflib.get_close_matches(source, KNOWN_SOURCES, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise TrainingError(
            f"Unknown dataset {source!r}: it is neither a known source ({', '.join(KNOWN_SOURCES)}) nor an "
            f"existing file or folder.{hint}"
        )
    tag = cfg.get("dataset_name") or (source if source in DATASET_CLASSES else None)
    if tag is not None and tag not in DATASET_CLASSES:
        raise TrainingError(f"--dataset-name {tag!r} is not one of {', '.join(sorted(DATASET_CLASSES))}.")
    return tag


def resolve_data_config(tag: str | None, cfg: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing of the run: galaxy mean/std, the source's crop (whole image if no tag)."""
    from timm_galaxy_attn.data import SOURCE_CROP_PCT

    galaxy_cfg = timm.models.get_pretrained_cfg("galaxy_attn_vgg").to_dict()
    data_config = timm.data.resolve_data_config(pretrained_cfg=galaxy_cfg)
    data_config["crop_pct"] = SOURCE_CROP_PCT.get(tag, 1.0)  # synthetic / own files: keep the whole image
    if cfg["image_size"] is not None:
        data_config["input_size"] = (3, cfg["image_size"], cfg["image_size"])
    elif is_galaxy_model(cfg["model"]):  # the variant's own input size (galaxy_attn_vgg_small_s4: 128 px)
        variant = timm.models.get_pretrained_cfg(cfg["model"].split(".")[0])
        data_config["input_size"] = tuple(variant.input_size)
    if cfg["crop_pct"] is not None:
        data_config["crop_pct"] = cfg["crop_pct"]
    return normalization_overrides(data_config, cfg)


# ----------------------------------------------------------------------------------------------------------
# Fine-tuning from trained weights (--pretrained)
# ----------------------------------------------------------------------------------------------------------

WEIGHT_PREFIXES = ("local-dir:", "hf-hub:")


def check_finetune(cfg: dict[str, Any]) -> None:
    """Refuse fine-tuning flags that cannot work together, before anything is loaded or written."""
    name, scale = cfg["model"], cfg.get("backbone_lr_scale", 1.0)
    if not cfg.get("pretrained"):
        if name.startswith(WEIGHT_PREFIXES):
            raise TrainingError(
                f"--model {name!r} names trained weights: add --pretrained to fine-tune them (a fresh "
                "classifier for the dataset's classes), or give an architecture name to train from scratch."
            )
        for flag, given in (
            ("--freeze-backbone", cfg.get("freeze_backbone")),
            ("--backbone-lr-scale", scale != 1),
        ):
            if given:
                raise TrainingError(
                    f"{flag} needs --pretrained: without pretrained weights there is no backbone to freeze "
                    "or slow down. Add --pretrained --model TAG (e.g. galaxy_attn_vgg_tiny_s4.gz1_sdss) or "
                    "local-dir:FOLDER."
                )
        return
    if not scale > 0:
        raise TrainingError(f"--backbone-lr-scale {scale}: must be > 0 (use --freeze-backbone for 0).")
    if cfg.get("freeze_backbone") and scale != 1:
        raise TrainingError(
            "--backbone-lr-scale has no effect with --freeze-backbone (no backbone lr); drop one."
        )
    typed = [k for k in GALAXY_MODEL_OPTIONS if cfg.get(k) is not None]
    if typed:
        flags = ", ".join("--" + k.replace("_", "-") for k in typed)
        raise TrainingError(f"{flags}: with --pretrained the architecture comes with the weights; drop them.")
    check_weights_source(name)


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


def load_pretrained(cfg: dict[str, Any]) -> nn.Module | None:
    """The --pretrained model, still with its own classifier (None without --pretrained).

    Every failure (unknown tag, no weights here, unreadable folder) becomes a TrainingError."""
    if not cfg.get("pretrained"):
        return None
    check_finetune(cfg)
    kwargs = {"drop_rate": cfg["drop_rate"]} if cfg.get("drop_rate") is not None else {}
    try:
        return timm.create_model(cfg["model"], pretrained=True, **kwargs)
    except (RuntimeError, OSError, ValueError, KeyError) as err:
        detail = str(err) or f"no weights at {weights_location(cfg['model'])}"
        raise TrainingError(
            f"Cannot load the pretrained weights of --model {cfg['model']!r} ({type(err).__name__}: "
            f"{detail}). Start from a tag with weights ({', '.join(SHIPPED_TAGS)}) or "
            "a model folder (local-dir:FOLDER), or drop --pretrained to train from scratch."
        ) from err


def weights_location(name: str) -> str:
    """Where the weights of ``name`` should be: a folder, a file or a Hub repository."""
    if name.startswith(WEIGHT_PREFIXES):
        return name.split(":", 1)[1]
    pc = timm.models.get_pretrained_cfg(name)
    return (pc.file or pc.hf_hub_id or "no source in its config") if pc is not None else "nowhere"


def finetune_data_config(model: nn.Module, cfg: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing the weights were trained with (their pretrained_cfg).

    ``--image-size`` and ``--crop-pct``, when typed, override it."""
    data_config = dict(timm.data.resolve_model_data_config(model))
    data_config.update({k: tuple(v) for k, v in data_config.items() if isinstance(v, list)})
    if cfg["image_size"] is not None:
        data_config["input_size"] = (3, cfg["image_size"], cfg["image_size"])
    if cfg["crop_pct"] is not None:
        data_config["crop_pct"] = cfg["crop_pct"]
    return normalization_overrides(data_config, cfg)


def head_parameter_names(model: nn.Module) -> set[str]:
    """Parameter names of the head: the classifier and, in galaxy_attn_vgg models, the attention estimators.

    The estimators' vectors u decide where the network looks (3 x 128 parameters in the tiny variant); the
    projector and the convolutions that make the local features are backbone."""
    modules = [model.get_classifier()]
    modules += [m for m in model.modules() if isinstance(m, timm_galaxy_attn.AttentionEstimator)]
    ids = {id(p) for m in modules for p in m.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def finetune_model(model: nn.Module, num_classes: int, cfg: dict[str, Any]) -> nn.Module:
    """A fresh classifier for the dataset's classes (drawn from the current seed).

    With --freeze-backbone every parameter outside the head stops taking gradients."""
    model.reset_classifier(num_classes)
    if cfg.get("freeze_backbone"):
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


def make_optimizer(model: nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """SGD or AdamW over the trainable parameters.

    With --pretrained two groups: ``head`` at lr, ``backbone`` (the pretrained rest) at
    lr * --backbone-lr-scale.
    """
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if cfg.get("pretrained"):
        head = head_parameter_names(model)
        lrs = {"head": cfg["lr"], "backbone": cfg["lr"] * cfg.get("backbone_lr_scale", 1.0)}
        groups = [
            {"params": [p for n, p in trainable if (n in head) == (part == "head")], "lr": lr, "name": part}
            for part, lr in lrs.items()
        ]
        groups = [g for g in groups if g["params"]]
    else:
        groups = [{"params": [p for _, p in trainable], "lr": cfg["lr"]}]
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"]
        )
    return torch.optim.AdamW(groups, lr=cfg["lr"], weight_decay=cfg["weight_decay"])


def finetune_summary(model: nn.Module, cfg: dict[str, Any]) -> dict[str, Any] | None:
    """What metrics.json records of a fine-tuning run (None when training from scratch)."""
    if not cfg.get("pretrained"):
        return None
    head = sorted(head_parameter_names(model))
    return {
        "from": cfg["model"],
        "freeze_backbone": bool(cfg.get("freeze_backbone")),
        "backbone_lr_scale": cfg.get("backbone_lr_scale", 1.0),
        "head_parameters": head,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def normalization_overrides(data_config: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """--mean / --std, when given, replace the data config's (a scratch run on a pretrained model's input)."""
    for key in ("mean", "std"):
        if cfg.get(key) is not None:
            data_config[key] = tuple(cfg[key])
    return data_config


def create_model(cfg: dict[str, Any], tag: str | None, num_classes: int) -> nn.Module:
    """timm.create_model with the dataset's classes and, for galaxy_attn_vgg, the architecture options."""
    name = cfg["model"]
    kwargs: dict[str, Any] = {"num_classes": num_classes}
    galaxy_opts = {kw: cfg[key] for key, kw in GALAXY_MODEL_OPTIONS.items() if cfg.get(key) is not None}
    if is_galaxy_model(name):
        kwargs.update(galaxy_opts)
        if tag is not None and "." not in name and f"{name}.{tag}" in timm.list_pretrained(name):
            name = f"{name}.{tag}"  # the dataset's tag of the variant, when it has one (its label names)
    elif galaxy_opts:
        flags = ", ".join("--" + k.replace("_", "-") for k in galaxy_opts)
        raise TrainingError(f"{flags} only apply to galaxy_attn_vgg models, not {name!r}; drop them.")
    if cfg.get("drop_rate") is not None:
        kwargs["drop_rate"] = cfg["drop_rate"]
    return timm.create_model(name, pretrained=False, **kwargs)


def load_splits(
    cfg: dict[str, Any], tag: str | None, accelerator: Accelerator, data_config: dict[str, Any] | None = None
):
    """Load the DatasetDict, settle the dataset tag and data config, decode each split once to uint8 tensors.

    Returns ``(tensors {split: (x uint8 (N, 3, S, S), y (N,))}, label_names, split_info, tag, class_set,
    data_config)``: ``tag`` picks the data config (a named source, ``--dataset-name``, or the class set a path
    source declares); ``class_set`` names the classes (for the mirror label swap), also for synthetic images.
    A given ``data_config`` (fine-tuning: the weights' own) replaces the dataset's.
    """
    from timm_galaxy_attn.data import load_galaxy_dataset, prepare_tensors, split_info

    kwargs: dict[str, Any] = dict(
        seed=cfg["split_seed"],
        val_fraction=cfg["val_fraction"],
        test_fraction=cfg["test_fraction"],
        split=cfg["split"],
    )
    if cfg["data_path"]:
        kwargs["path"] = cfg["data_path"]
    if cfg["dataset_name"]:
        kwargs["dataset_name"] = cfg["dataset_name"]
    if cfg.get("group_column"):
        kwargs["group_column"] = cfg["group_column"]
    if cfg["dataset"] == "synthetic":  # rendered at the input size, whole frame
        size = (data_config or resolve_data_config(None, cfg))["input_size"][-1]
        kwargs.update(n_per_class=cfg["synthetic_per_class"], image_size=size)
    with accelerator.local_main_process_first():  # one process per machine fills the dataset cache
        dsdict = load_galaxy_dataset(cfg["dataset"], **kwargs)
    info = split_info(dsdict)
    class_set = tag or info.get("dataset_name")
    if tag is None and cfg["dataset"] != "synthetic" and class_set in DATASET_CLASSES:
        tag = class_set  # e.g. a Galaxy10_DECals.h5 path
    data_config = data_config or resolve_data_config(tag, cfg)
    label_names = list(dsdict["train"].features["label"].names)
    size = data_config["input_size"][-1]
    tensors = {name: prepare_tensors(dsdict[name], data_config, image_size=size) for name in dsdict}
    if cfg["max_train_samples"] and cfg["max_train_samples"] < len(tensors["train"][1]):
        g = torch.Generator().manual_seed(cfg["split_seed"])
        keep = torch.randperm(len(tensors["train"][1]), generator=g)[: cfg["max_train_samples"]].sort().values
        tensors["train"] = (tensors["train"][0][keep], tensors["train"][1][keep])
    return tensors, label_names, info, tag, class_set, data_config


def class_weights(labels: torch.Tensor, num_classes: int, power: float) -> torch.Tensor:
    """Per-class weights count^-power, scaled so that the mean weight over the training images is 1."""
    counts = torch.bincount(labels, minlength=num_classes).double().clamp(min=1)
    w = counts.pow(-power)
    return (w / (w[labels].mean())).float()


def epoch_order(cfg: dict[str, Any], epoch: int, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Training indices of ``epoch``: a permutation (or a class-balanced draw) from (seed, epoch)."""
    g = torch.Generator().manual_seed(cfg["seed"] * 100_003 + epoch)
    if cfg["balance"] == "sampler":
        w = class_weights(labels, num_classes, cfg["balance_power"])[labels].double()
        return torch.multinomial(w, len(labels), replacement=True, generator=g)
    return torch.randperm(len(labels), generator=g)


def step_batches(order: torch.Tensor, global_batch: int, world: int) -> list[torch.Tensor]:
    """Split the epoch's order into global batches (a final one smaller than ``world`` is dropped)."""
    batches = list(order.split(global_batch))
    if batches and len(batches[-1]) < world:
        batches.pop()
    return batches


# ----------------------------------------------------------------------------------------------------------
# Files: atomic writes, checkpoints
# ----------------------------------------------------------------------------------------------------------


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Complete checkpoints (renamed into place), oldest first."""
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.glob("step_*") if p.is_dir() and not p.name.endswith(".old"))


def save_checkpoint(accelerator: Accelerator, ckpt_dir: Path, state: dict[str, Any], keep: int) -> Path:
    """save_state into ``.tmp-step_N``, add trainer_state.json, rename to ``step_N``; prune old ones."""
    final = ckpt_dir / f"step_{state['global_step']:08d}"
    tmp = ckpt_dir / f".tmp-{final.name}"
    if accelerator.is_main_process:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(tmp / STATE_NAME, state)
        old = final.with_name(final.name + ".old")
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        for stale in list_checkpoints(ckpt_dir)[: -max(keep, 1)]:
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, path: Path) -> dict[str, Any]:
    """load_state + trainer_state.json, with a clear error for a damaged checkpoint."""
    try:
        state = json.loads((path / STATE_NAME).read_text())
        accelerator.load_state(str(path))
    except Exception as e:  # noqa: BLE001 - any failure here means the checkpoint cannot be used
        raise TrainingError(
            f"Checkpoint {path} cannot be loaded ({type(e).__name__}: {e}). It is damaged or incomplete: "
            f"delete that folder to resume from an older checkpoint in {path.parent} (if any), or start "
            "again with a new --output-dir."
        ) from e
    return state


def save_model_folder(
    model: nn.Module, folder: Path, label_names: list[str], data_config: dict[str, Any]
) -> None:
    """Write ``folder`` (config.json + model.safetensors) loadable by ``timm.create_model("local-dir:...")``.

    galaxy_attn_vgg models go through ``timm_galaxy_attn.hf.save_pretrained_folder`` (one folder for timm and
    transformers); other timm models through timm's ``save_for_hf`` (timm keys only). Both write atomically.
    """
    if isinstance(model, timm_galaxy_attn.GalaxyAttnVGG):
        from timm_galaxy_attn.hf import save_pretrained_folder

        save_pretrained_folder(
            model, folder, label_names=label_names, data_config=data_config, overwrite=True
        )
        return
    from timm.models import save_for_hf

    model.pretrained_cfg = {**model.pretrained_cfg, **data_config}
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_for_hf(
        model,
        str(tmp),
        model_config={"label_names": list(label_names)},
        data_config=data_config,
        safe_serialization=True,
    )
    old = folder.with_name(f".{folder.name}.old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------
# Evaluation and heatmaps
# ----------------------------------------------------------------------------------------------------------


def make_eval_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> DataLoader:
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


@torch.no_grad()
def predict(
    accelerator: Accelerator,
    model: nn.Module,
    loader: DataLoader,
    data_config: dict[str, Any],
    channels_last: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every example of ``loader``, gathered over processes exactly once."""
    from timm_galaxy_attn.data import normalize_batch

    model.eval()
    all_logits, all_labels = [], []
    for xb, yb in loader:
        x = normalize_batch(xb, data_config)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with accelerator.autocast():
            logits = model(x)
        logits, yb = accelerator.gather_for_metrics((logits.float(), yb))
        all_logits.append(logits.cpu())
        all_labels.append(yb.cpu())
    return torch.cat(all_logits).numpy(), torch.cat(all_labels).numpy()


def score(logits: np.ndarray, labels: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    from timm_galaxy_attn.metrics import compute_classification_metrics

    probs = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
    return compute_classification_metrics(labels, logits.argmax(1), probs, label_names=label_names)


def heatmap_indices(labels: torch.Tensor, n: int) -> list[int]:
    """Fixed validation galaxies for the heatmaps: round-robin over classes, first occurrences first."""
    per_class = [torch.nonzero(labels == c).flatten().tolist() for c in range(int(labels.max()) + 1)]
    out: list[int] = []
    depth = 0
    while len(out) < n and any(depth < len(ix) for ix in per_class):
        out.extend(ix[depth] for ix in per_class if depth < len(ix))
        depth += 1
    return out[:n]


@torch.no_grad()
def save_heatmaps(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    data_config: dict[str, Any],
    label_names: list[str],
    path: Path,
    device: torch.device,
    epoch: int,
) -> None:
    """Attention maps of the fixed galaxies, one row each (image + 3 maps), titled true/pred."""
    from timm_galaxy_attn.data import normalize_batch
    from timm_galaxy_attn.viz import save_attention_grid

    was_training = model.training
    model.eval()
    with timm_galaxy_attn.capture_attention(model) as maps:
        logits = model(normalize_batch(images.to(device), data_config))
    model.train(was_training)
    pred = logits.argmax(1).cpu()
    rows = [[m[i].cpu() for m in maps] for i in range(len(images))]
    titles = [
        f"true: {label_names[t]} | pred: {label_names[p]}"
        for t, p in zip(labels.tolist(), pred.tolist(), strict=True)
    ]
    save_attention_grid(list(images), rows, path, titles=titles, title=f"epoch {epoch}")


def has_attention(model: nn.Module) -> bool:
    return any(isinstance(m, timm_galaxy_attn.AttentionEstimator) for m in model.modules())


# ----------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------


def prepare_output_dir(cfg: dict[str, Any], argv_cfg: dict[str, Any]) -> dict[str, Any] | None:
    """Refuse to overwrite another run; on --resume, return the run's saved config (checking the arguments).

    Returns None when the run to resume is already complete.
    """
    out = Path(cfg["output_dir"])
    saved_path = out / CONFIG_NAME
    if not cfg["resume"]:
        if out.exists() and any(out.iterdir()):
            raise TrainingError(
                f"Output dir {out} already holds files (a previous run?). Pass --resume to continue that "
                "run, or choose a new --output-dir; nothing was overwritten."
            )
        return cfg
    if not saved_path.is_file():
        raise TrainingError(
            f"--resume: {out} holds no run ({CONFIG_NAME} missing); start it without --resume."
        )
    saved = json.loads(saved_path.read_text())
    clash = {
        k: (saved.get(k), v)
        for k, v in argv_cfg.items()
        if v is not None and k not in RESUME_FREE and k in saved and saved[k] != v
    }
    if clash:
        lines = ", ".join(
            f"--{k.replace('_', '-')} {new!r} (run has {old!r})" for k, (old, new) in clash.items()
        )
        raise TrainingError(
            f"--resume with different arguments: {lines}. Resume with the run's own arguments "
            f"(see {saved_path}), or start a new --output-dir."
        )
    if (out / "metrics.json").is_file():
        print(f"The run in {out} is already complete (metrics.json exists); nothing to do.")
        return None
    saved.update({k: cfg[k] for k in RESUME_FREE})
    return saved


def main(argv: Sequence[str] | None = None) -> int:
    session_start = time.time()
    args, explicit = parse_args(argv)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    cfg = resolve_config(args)
    base = None
    if not cfg["resume"]:  # fail before anything is created
        check_model_name(cfg["model"])
        check_dataset(cfg)
        check_finetune(cfg)
        base = load_pretrained(cfg)
    cfg = prepare_output_dir(cfg, explicit)
    if cfg is None:
        return 0
    check_model_name(cfg["model"])
    tag = check_dataset(cfg)
    if base is None:  # resumed runs: the weights the run started from (its checkpoint replaces them)
        base = load_pretrained(cfg)
    out = Path(cfg["output_dir"])
    ckpt_dir = out / "checkpoints"

    from timm_galaxy_attn.device import accelerate_mixed_precision

    cfg["mixed_precision"] = accelerate_mixed_precision(  # auto -> no/bf16/fp16 for this device
        cfg["mixed_precision"], cpu=cfg["cpu"] or not has_accelerator_device()
    )
    # accelerate forms a gloo process group on CPU only when told it runs on CPU: so say so when this machine
    # has no accelerator (then `accelerate launch --multi_gpu --num_processes N` gives N CPU processes).
    accelerator = Accelerator(
        cpu=cfg["cpu"] or not has_accelerator_device(),
        mixed_precision=cfg["mixed_precision"],
        log_with="tensorboard",
        project_dir=str(out),
        step_scheduler_with_optimizer=False,
    )
    world, rank = accelerator.num_processes, accelerator.process_index
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        if not cfg["resume"]:
            cfg["command"] = "train.py " + shlex.join(argv_list)
            cfg["timm_galaxy_attn_version"] = timm_galaxy_attn.__version__
            write_json(out / CONFIG_NAME, cfg)
    accelerator.print("Resolved configuration:\n" + json.dumps(cfg, indent=2, default=_json_default))

    tensors, label_names, info, tag, class_set, data_config = load_splits(
        cfg, tag, accelerator, None if base is None else finetune_data_config(base, cfg)
    )
    num_classes = len(label_names)
    train_x, train_y = tensors["train"]
    accelerator.print(
        f"Data: {', '.join(f'{k} {len(v[1])}' for k, v in tensors.items())} images at "
        f"{data_config['input_size'][-1]} px, {num_classes} classes; data config {data_config}"
    )

    set_seed(cfg["seed"])
    model = create_model(cfg, tag, num_classes) if base is None else finetune_model(base, num_classes, cfg)
    finetune = finetune_summary(model, cfg)
    attention = has_attention(model)
    heatmaps = attention and cfg["num_heatmaps"] > 0
    if cfg["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    n_params = sum(p.numel() for p in model.parameters())
    accelerator.print(
        f"Model: {cfg['model']} ({n_params / 1e6:.2f} M parameters)"
        + ("" if attention else "; no attention estimators, so no heatmaps are drawn")
        + (f"; fine-tuning {finetune}" if finetune else "")
    )

    optimizer = make_optimizer(model, cfg)
    global_batch = cfg["batch_size"] * world
    steps_per_epoch = len(step_batches(torch.arange(len(train_y)), global_batch, world))
    if steps_per_epoch == 0:
        raise TrainingError(f"{len(train_y)} training images cannot fill one step of {world} processes.")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, make_lr_lambda(cfg, steps_per_epoch))
    loss_weight = (
        class_weights(train_y, num_classes, cfg["balance_power"]) if cfg["balance"] == "loss" else None
    )
    criterion = nn.CrossEntropyLoss(weight=loss_weight, label_smoothing=cfg["label_smoothing"])

    val_loader = make_eval_loader(*tensors["validation"], cfg["eval_batch_size"])
    test_loader = make_eval_loader(*tensors["test"], cfg["eval_batch_size"])
    model, optimizer, scheduler, val_loader, test_loader = accelerator.prepare(
        model, optimizer, scheduler, val_loader, test_loader
    )
    criterion = criterion.to(accelerator.device)
    unwrapped = accelerator.unwrap_model(model)

    from timm_galaxy_attn.data import BatchAugment

    augment = BatchAugment(
        data_config,
        rotate=None if cfg["rotate"] == "none" else cfg["rotate"],
        flip=bool(cfg["flip"]),
        mirror_label_swap=MIRROR_LABEL_SWAPS.get(class_set),
        max_shift=cfg["max_shift"],
        brightness=cfg["brightness"],
        contrast=cfg["contrast"],
    )
    accelerator.print(f"Augmentation: {augment}")
    if cfg["flip"] and class_set not in MIRROR_LABEL_SWAPS:
        accelerator.print(
            "Warning: the class set of this dataset is unknown, so mirror flips keep every label; "
            "pass --no-flip if a class changes under a mirror (e.g. the winding sense of spirals)."
        )

    state: dict[str, Any] = {
        "epoch": 0,
        "step_in_epoch": 0,
        "global_step": 0,
        "history": [],
        "best_epoch": None,
        "best_macro_f1": -1.0,
        "train_time_s": 0.0,
        "train_images": 0,
    }
    ckpts = list_checkpoints(ckpt_dir)
    if cfg["resume"]:
        if ckpts:
            state = load_checkpoint(accelerator, ckpts[-1])
            accelerator.print(
                f"Resumed from {ckpts[-1]} (epoch {state['epoch'] + 1}, step {state['step_in_epoch']}"
                f" of {steps_per_epoch}, global step {state['global_step']})"
            )
        else:
            accelerator.print(f"No checkpoint in {ckpt_dir} yet: starting the run from the beginning.")
    if accelerator.is_main_process:  # folders left by a kill during a save
        for leftover in ckpt_dir.glob(".tmp-*") if ckpt_dir.is_dir() else []:
            shutil.rmtree(leftover, ignore_errors=True)

    tb_config = {k: v for k, v in cfg.items() if isinstance(v, (int, float, str, bool))}
    accelerator.init_trackers("tensorboard", config=tb_config)
    heat_idx = heatmap_indices(tensors["validation"][1], cfg["num_heatmaps"]) if heatmaps else []
    heat_x, heat_y = tensors["validation"][0][heat_idx], tensors["validation"][1][heat_idx]
    if heatmaps and accelerator.is_main_process:
        (out / "attention").mkdir(exist_ok=True)

    base_wall = state.get("wall_time_s", 0.0)

    def snapshot(**updates: Any) -> dict[str, Any]:
        state.update(updates, wall_time_s=base_wall + time.time() - session_start)
        return state

    stop_at = cfg["stop_after_steps"]
    for epoch in range(state["epoch"], cfg["epochs"]):
        model.train()
        if cfg.get("freeze_backbone"):
            freeze_batchnorm_stats(model)
        batches = step_batches(epoch_order(cfg, epoch, train_y, num_classes), global_batch, world)
        start_step = state["step_in_epoch"] if epoch == state["epoch"] else 0
        # this process's running loss * n, correct, n (kept in the state so a mid-epoch resume continues it)
        sums = torch.tensor(state.get("epoch_sums") if start_step else [0.0, 0.0, 0.0], dtype=torch.float64)
        bar = tqdm(
            total=len(batches),
            initial=start_step,
            desc=f"epoch {epoch + 1}/{cfg['epochs']}",
            disable=not accelerator.is_local_main_process,
            unit="step",
            dynamic_ncols=True,
        )
        t0, seen = time.time(), 0
        for step in range(start_step, len(batches)):
            # every draw of this step (augmentation, dropout) from (seed, step, process): resumable exactly
            step_seed = cfg["seed"] * 1_000_003 + (epoch * steps_per_epoch + step) * world + rank
            torch.manual_seed(step_seed)
            idx = batches[step].tensor_split(world)[rank]
            x, y = augment(
                train_x[idx].to(accelerator.device),
                train_y[idx].to(accelerator.device),
                generator=torch.Generator().manual_seed(step_seed),
            )
            if cfg["channels_last"]:
                x = x.contiguous(memory_format=torch.channels_last)
            with accelerator.autocast():
                logits = model(x)
            loss = criterion(logits.float(), y)
            accelerator.backward(loss)
            if cfg["clip_grad"]:
                accelerator.clip_grad_norm_(model.parameters(), cfg["clip_grad"])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["global_step"] += 1
            loss_value = loss.item()
            sums += torch.tensor(
                [loss_value * len(y), (logits.argmax(1) == y).sum().item(), len(y)], dtype=torch.float64
            )
            seen += len(batches[step])
            bar.update(1)
            bar.set_postfix(
                loss=f"{loss_value:.3f}",
                img_s=f"{seen / max(time.time() - t0, 1e-9):.0f}",
                lr=f"{scheduler.get_last_lr()[0]:.2e}",
            )
            if state["global_step"] % cfg["log_every"] == 0:
                accelerator.log(
                    {"train/loss_step": loss_value, "train/lr": scheduler.get_last_lr()[0]},
                    step=state["global_step"],
                )
            every = cfg["checkpoint_every_steps"]
            if every and state["global_step"] % every == 0 and step < len(batches) - 1:
                snapshot(
                    epoch=epoch,
                    step_in_epoch=step + 1,
                    epoch_sums=sums.tolist(),
                    train_time_s=state["train_time_s"] + time.time() - t0,
                    train_images=state["train_images"] + seen,
                )
                t0, seen = time.time(), 0  # already counted into the saved state
                save_checkpoint(accelerator, ckpt_dir, state, cfg["keep_checkpoints"])
            if stop_at is not None and state["global_step"] >= stop_at:
                bar.close()
                accelerator.print(
                    f"Stopping after step {state['global_step']} (--stop-after-steps); continue "
                    "with --resume."
                )
                accelerator.end_training()
                return 0
        bar.close()
        epoch_time = time.time() - t0
        state["train_time_s"] += epoch_time
        state["train_images"] += seen
        totals = accelerator.reduce(sums.to(accelerator.device), reduction="sum").cpu()

        val_logits, val_labels = predict(accelerator, model, val_loader, data_config, cfg["channels_last"])
        val = score(val_logits, val_labels, label_names)  # the same on every process (gathered logits)
        record = {
            "epoch": epoch + 1,
            "train_loss": float(totals[0] / max(totals[2], 1)),
            "train_accuracy": float(totals[1] / max(totals[2], 1)),
            "val_accuracy": val["accuracy"],
            "val_macro_f1": val["macro_f1"],
            "val_balanced_accuracy": val["balanced_accuracy"],
            "val_ece": val["ece"],
            "val_n": val["n"],
            "lr": scheduler.get_last_lr()[0],
            "images_per_s": seen / max(epoch_time, 1e-9),
        }
        state["history"].append(record)
        accelerator.log({TB_NAMES[k]: v for k, v in record.items() if k in TB_NAMES}, step=epoch + 1)
        accelerator.print(
            f"epoch {epoch + 1}: train loss {record['train_loss']:.4f} acc {record['train_accuracy']:.4f}"
            f" | val acc {val['accuracy']:.4f} macro-F1 {val['macro_f1']:.4f} bal-acc "
            f"{val['balanced_accuracy']:.4f} | {record['images_per_s']:.0f} img/s"
        )
        if val["macro_f1"] > state["best_macro_f1"]:
            state.update(best_epoch=epoch + 1, best_macro_f1=val["macro_f1"])
            if accelerator.is_main_process:
                save_best(unwrapped, ckpt_dir / BEST_NAME, epoch + 1)
        if heatmaps and accelerator.is_main_process:
            save_heatmaps(
                unwrapped,
                heat_x,
                heat_y,
                data_config,
                label_names,
                out / "attention" / f"epoch_{epoch + 1:03d}.png",
                accelerator.device,
                epoch + 1,
            )
        snapshot(epoch=epoch + 1, step_in_epoch=0, epoch_sums=None)
        save_checkpoint(accelerator, ckpt_dir, state, cfg["keep_checkpoints"])

    # ---- the end: the best epoch on validation, scored once on test ----
    if state["best_epoch"] is None:
        raise TrainingError("No epoch was trained (--epochs 0?); nothing to score.")
    best_epoch = load_best(unwrapped, ckpt_dir / BEST_NAME)
    val_logits, val_labels = predict(accelerator, model, val_loader, data_config, cfg["channels_last"])
    test_logits, test_labels = predict(accelerator, model, test_loader, data_config, cfg["channels_last"])
    if accelerator.is_main_process:
        test = score(test_logits, test_labels, label_names)
        metrics = {
            "test": test,
            "validation": score(val_logits, val_labels, label_names),
            "best_epoch": best_epoch,
            "selection": "epoch with the highest validation macro_f1; test scored once with its weights",
            "dataset": cfg["dataset"],
            "dataset_tag": tag,
            "label_names": label_names,
            "split": info,
            "n": {name: int(len(t[1])) for name, t in tensors.items()},
            "seed": cfg["seed"],
            "split_seed": cfg["split_seed"],
            "image_size": data_config["input_size"][-1],
            "data_config": data_config,
            "model": cfg["model"],
            "finetune": finetune,
            "num_params": n_params,
            "recipe": cfg["recipe"],
            "epochs": cfg["epochs"],
            "num_processes": world,
            "mixed_precision": cfg["mixed_precision"],
            "train_time_s": state["train_time_s"],
            "wall_time_s": base_wall + time.time() - session_start,
            "images_per_s": state["train_images"] / max(state["train_time_s"], 1e-9),
            "history": state["history"],
            "command": cfg.get("command"),
            "config": cfg,
        }
        write_outputs(out, metrics, unwrapped, data_config, val_logits, val_labels, test_logits, test_labels)
        print(
            f"\nBest epoch {best_epoch} of {cfg['epochs']} (validation macro-F1 "
            f"{state['best_macro_f1']:.4f}). "
            f"Test: accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f}, balanced accuracy "
            f"{test['balanced_accuracy']:.4f}, ECE {test['ece']:.4f} (n={test['n']}); "
            f"{metrics['wall_time_s'] / 60:.1f} min, {metrics['images_per_s']:.0f} train images/s.\n"
            f"  metrics:     {out / 'metrics.json'}\n"
            f"  confusion:   {out / 'confusion_matrix.png'}\n"
            + (f"  heatmaps:    {out / 'attention'}/epoch_NNN.png\n" if heatmaps else "")
            + f"  model:       {out / 'model'}  (timm.create_model('local-dir:{out / 'model'}'))\n"
            f"  tensorboard: tensorboard --logdir {out / 'tensorboard'}"
        )
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return 0


TB_NAMES = {
    "train_loss": "train/loss",
    "train_accuracy": "train/accuracy",
    "val_accuracy": "val/accuracy",
    "val_macro_f1": "val/macro_f1",
    "val_balanced_accuracy": "val/balanced_accuracy",
    "val_ece": "val/ece",
    "lr": "train/lr_epoch",
    "images_per_s": "train/images_per_s",
}


def save_best(model: nn.Module, path: Path, epoch: int) -> None:
    """The best epoch's weights: one safetensors file (epoch in its metadata), replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(weights, str(tmp), metadata={"epoch": str(epoch)})
    os.replace(tmp, path)


def load_best(model: nn.Module, path: Path) -> int:
    """Load the best-epoch weights into ``model``; return that epoch."""
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


def write_outputs(
    out: Path,
    metrics: dict[str, Any],
    model: nn.Module,
    data_config: dict[str, Any],
    val_logits: np.ndarray,
    val_labels: np.ndarray,
    test_logits: np.ndarray,
    test_labels: np.ndarray,
) -> None:
    """confusion_matrix.png, predictions.npz, model/ and, last (it marks a complete run), metrics.json."""
    from timm_galaxy_attn.viz import plot_confusion_matrix

    label_names = metrics["label_names"]
    plot_confusion_matrix(
        np.asarray(metrics["test"]["confusion_matrix"]),
        label_names,
        out / "confusion_matrix.png",
        title=f"{metrics['model']} on {metrics['dataset']} (test)",
    )
    tmp = out / ".predictions.tmp.npz"
    np.savez_compressed(
        tmp,
        val_logits=val_logits,
        val_labels=val_labels,
        test_logits=test_logits,
        test_labels=test_labels,
        test_probs=torch.softmax(torch.from_numpy(test_logits).double(), 1).numpy(),
        label_names=np.array(label_names),
    )
    os.replace(tmp, out / "predictions.npz")
    model = model.float().cpu().to(memory_format=torch.contiguous_format)  # plain fp32 CPU tensors on disk
    save_model_folder(model, out / "model", label_names, data_config)
    write_json(out / "metrics.json", metrics)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TrainingError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
