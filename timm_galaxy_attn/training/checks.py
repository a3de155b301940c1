"""Every check of a run's configuration, in one place: :func:`validate_config`, called once before a run.

Each failure is a :class:`.errors.TrainingError` whose message names the option and the fix; nothing has
been loaded or written when it is raised.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import timm

from timm_galaxy_attn.labels import DATASET_CLASSES
from timm_galaxy_attn.pretrained import SHIPPED_TAGS

from .config import KNOWN_SOURCES, TrainConfig
from .errors import TrainingError
from .models import GALAXY_MODEL_OPTIONS, WEIGHT_PREFIXES, initial_files, is_galaxy_model

__all__ = ["check_model_name", "check_weights_source", "validate_config"]

# Options that count things: each must be at least 1.
_COUNTS = ("epochs", "batch_size", "eval_batch_size", "keep_checkpoints", "log_every")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_values(cfg: TrainConfig) -> None:
    """Counts at least 1, a positive learning rate, no negative checkpoint interval."""
    for name in _COUNTS:
        if getattr(cfg, name) < 1:
            raise TrainingError(f"{_flag(name)} {getattr(cfg, name)}: must be at least 1.")
    if not cfg.lr > 0:
        raise TrainingError(f"--lr {cfg.lr}: must be > 0.")
    if cfg.checkpoint_every_steps < 0:
        raise TrainingError(
            f"--checkpoint-every-steps {cfg.checkpoint_every_steps}: must be >= 0 (0: only at epoch ends)."
        )


def _check_dataset(cfg: TrainConfig) -> None:
    """--dataset is a known source or an existing path; --dataset-name a known class set."""
    source = cfg.dataset
    if source not in KNOWN_SOURCES and not Path(source).exists():
        close = difflib.get_close_matches(source, KNOWN_SOURCES, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise TrainingError(
            f"Unknown dataset {source!r}: it is neither a known source ({', '.join(KNOWN_SOURCES)}) nor an "
            f"existing file or folder.{hint}"
        )
    if cfg.dataset_name is not None and cfg.dataset_name not in DATASET_CLASSES:
        raise TrainingError(
            f"--dataset-name {cfg.dataset_name!r} is not one of {', '.join(sorted(DATASET_CLASSES))}."
        )


def check_model_name(name: str) -> None:
    """An unknown timm model name is a TrainingError with the closest names.

    Args:
        name: A --model value (names of trained weights, ``local-dir:``/``hf-hub:``, pass).
    """
    if name.startswith(WEIGHT_PREFIXES):  # a folder or Hub repository: check_weights_source checks it
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


def check_weights_source(name: str) -> None:
    """A model folder must hold config.json; a tag must exist and have weights.

    Args:
        name: The --model of a --pretrained run.
    """
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


def _typed_model_options(cfg: TrainConfig) -> str:
    """The galaxy_attn_vgg architecture options set, as flags (empty when none is)."""
    return ", ".join(_flag(k) for k in GALAXY_MODEL_OPTIONS if getattr(cfg, k) is not None)


def _check_scratch(cfg: TrainConfig) -> None:
    """Without --pretrained: an architecture name, no fine-tuning flags, galaxy options on galaxy models."""
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
    flags = _typed_model_options(cfg)
    if flags and not is_galaxy_model(cfg.model):
        raise TrainingError(f"{flags} only apply to galaxy_attn_vgg models, not {cfg.model!r}; drop them.")
    if cfg.initial_checkpoint and not cfg.resume:  # resumed: the run's checkpoint replaces these weights
        initial_files(cfg.initial_checkpoint)


def _check_finetune(cfg: TrainConfig) -> None:
    """With --pretrained: a positive backbone lr scale, no architecture options, weights that exist."""
    scale = cfg.backbone_lr_scale
    if not scale > 0:
        raise TrainingError(f"--backbone-lr-scale {scale}: must be > 0 (use --freeze-backbone for 0).")
    if cfg.freeze_backbone and scale != 1:
        raise TrainingError(
            "--backbone-lr-scale has no effect with --freeze-backbone (no backbone lr); drop one."
        )
    flags = _typed_model_options(cfg)
    if flags:
        raise TrainingError(f"{flags}: with --pretrained the architecture comes with the weights; drop them.")
    if cfg.initial_checkpoint:
        raise TrainingError(
            "--initial-checkpoint continues weights with their own classifier; --pretrained starts a fresh "
            "one on --model's weights. Use one of them."
        )
    check_weights_source(cfg.model)


def validate_config(cfg: TrainConfig) -> None:
    """Check the whole config of a run: values, dataset, model and fine-tuning options.

    Args:
        cfg: The config the run will use (a resumed run's saved one).

    Raises:
        TrainingError: The first problem found, with its fix.
    """
    from .joint import check_joint

    _check_values(cfg)
    _check_dataset(cfg)
    check_joint(cfg)
    check_model_name(cfg.model)
    if cfg.pretrained:
        _check_finetune(cfg)
    else:
        _check_scratch(cfg)
