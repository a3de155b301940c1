"""timm-galaxy-attn: the attention CNN of Jetley et al. (2018) for galaxy morphology (timm, transformers).

Importing this package registers the timm models ``galaxy_attn_vgg`` and ``galaxy_attn_vgg_small`` and the
transformers classes (``AutoConfig``, ``AutoModelForImageClassification``, ``AutoImageProcessor``) for
``model_type="galaxy_attn_vgg"``.
"""

from . import hf  # noqa: F401  (importing it registers the transformers Auto classes)
from .attention import AttentionEstimator, capture_attention
from .labels import DATASET_CLASSES, class_names
from .model import GalaxyAttnVGG

__version__ = "0.1.0"

__all__ = [
    "AttentionEstimator",
    "DATASET_CLASSES",
    "GalaxyAttnVGG",
    "capture_attention",
    "class_names",
]
