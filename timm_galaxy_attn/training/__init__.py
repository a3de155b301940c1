"""The parts of ``training/train.py``: configuration and recipes, data, models and fine-tuning, the LR
schedule, the training loop, checkpoints, the run folder and its report."""

from __future__ import annotations

from .arguments import build_parser, parse_args
from .checkpoints import list_checkpoints, load_best, load_checkpoint, save_best, save_checkpoint
from .config import TrainConfig, as_config, resolve_config
from .data import (
    KNOWN_SOURCES,
    Splits,
    check_dataset,
    class_weights,
    epoch_order,
    load_splits,
    resolve_data_config,
    step_batches,
)
from .errors import TrainingError
from .finetune import (
    check_finetune,
    finetune_data_config,
    finetune_model,
    head_parameter_names,
    load_pretrained,
    make_optimizer,
)
from .heatmaps import heatmap_indices
from .models import check_model_name, create_model
from .recipes import RECIPES
from .schedule import build_scheduler, lr_factor, make_lr_lambda

__all__ = [
    "KNOWN_SOURCES",
    "RECIPES",
    "Splits",
    "TrainConfig",
    "TrainingError",
    "as_config",
    "build_parser",
    "build_scheduler",
    "check_dataset",
    "check_finetune",
    "check_model_name",
    "class_weights",
    "create_model",
    "epoch_order",
    "finetune_data_config",
    "finetune_model",
    "head_parameter_names",
    "heatmap_indices",
    "list_checkpoints",
    "load_best",
    "load_checkpoint",
    "load_pretrained",
    "load_splits",
    "lr_factor",
    "make_lr_lambda",
    "make_optimizer",
    "parse_args",
    "resolve_config",
    "resolve_data_config",
    "save_best",
    "save_checkpoint",
    "step_batches",
]
