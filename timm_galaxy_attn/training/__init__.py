"""The parts of ``training/train.py``: the typed config (its command line, its checks, the recipes), data,
models and fine-tuning, joint training with the Galaxy Zoo 2 vote head (``joint``), the optimizer and LR
schedule, the training loop, checkpoints, the run folder and its report."""

from __future__ import annotations

from .arguments import build_parser, parse_args
from .checkpoints import list_checkpoints, load_best, load_checkpoint, save_best, save_checkpoint
from .checks import check_model_name, validate_config
from .config import KNOWN_SOURCES, TrainConfig, resolve_config
from .data import Splits, class_weights, finetune_data_config, load_splits, resolve_data_config
from .errors import TrainingError
from .finetune import finetune_model, head_parameter_names, load_pretrained
from .heatmaps import heatmap_indices
from .loop import epoch_order, step_batches
from .models import create_model
from .optim import MIN_LR_RATE, build_scheduler, make_lr_lambda, make_optimizer
from .recipes import RECIPES

__all__ = [
    "KNOWN_SOURCES",
    "MIN_LR_RATE",
    "RECIPES",
    "Splits",
    "TrainConfig",
    "TrainingError",
    "build_parser",
    "build_scheduler",
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
    "make_lr_lambda",
    "make_optimizer",
    "parse_args",
    "resolve_config",
    "resolve_data_config",
    "save_best",
    "save_checkpoint",
    "step_batches",
    "validate_config",
]
