"""timm-galaxy-attn: the attention CNN of Jetley et al. (2018) for galaxy morphology (timm, transformers).

Importing this package registers the timm models ``galaxy_attn_vgg``, ``galaxy_attn_vgg_small``,
``galaxy_attn_vgg_small_s4`` and ``galaxy_attn_vgg_tiny_s4`` and the transformers classes (``AutoConfig``,
``AutoModelForImageClassification``, ``AutoImageProcessor``) for ``model_type="galaxy_attn_vgg"``. Data,
metrics, pictures and the catalogue engine load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import hf  # noqa: F401  (importing it registers the transformers Auto classes)
from .attention import AttentionEstimator, capture_attention
from .catalog import predict
from .labels import DATASET_CLASSES, class_names
from .model import GalaxyAttnVGG
from .pretrained import pretrained_path

__version__ = "0.1.0"

# Public names served lazily from their modules, so that `import timm_galaxy_attn` stays light.
_LAZY = {
    "load_galaxy_dataset": "data",
    "make_synthetic_galaxies": "data",
    "split_info": "data",
    "prepare_tensors": "data",
    "BatchAugment": "data",
    "normalize_batch": "data",
    "eval_transform": "data",
    "train_transform": "data",
    "compute_classification_metrics": "metrics",
    "load_metric": "metrics",
    "attention_figure": "viz",
    "save_attention_grid": "viz",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AttentionEstimator",
    "DATASET_CLASSES",
    "GalaxyAttnVGG",
    "capture_attention",
    "class_names",
    "predict",
    "pretrained_path",
    *_LAZY,
]
