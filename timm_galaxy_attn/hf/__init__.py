"""transformers integration: GalaxyAttnConfig, GalaxyAttnForImageClassification, GalaxyAttnImageProcessor.

Importing this package (``import timm_galaxy_attn`` does) registers them with AutoConfig,
AutoModelForImageClassification and AutoImageProcessor for ``model_type`` ``"galaxy_attn_vgg"``, and registers
the checkpoint conversion that lets the transformers model read and write plain timm-keyed weights.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification
from transformers.conversion_mapping import (
    get_checkpoint_conversion_mapping,
    register_checkpoint_conversion_mapping,
)
from transformers.core_model_loading import PrefixChange

from .configuration_galaxy_attn import GalaxyAttnConfig
from .folder import FOLDER_FILES, config_from_timm_model, recast_folder_weights, save_pretrained_folder
from .image_processing_galaxy_attn import GalaxyAttnImageProcessor
from .modeling_galaxy_attn import GalaxyAttnForImageClassification, GalaxyAttnPreTrainedModel

__all__ = [
    "FOLDER_FILES",
    "GalaxyAttnConfig",
    "GalaxyAttnForImageClassification",
    "GalaxyAttnImageProcessor",
    "GalaxyAttnPreTrainedModel",
    "config_from_timm_model",
    "recast_folder_weights",
    "save_pretrained_folder",
]


def _register() -> None:
    model_type = GalaxyAttnConfig.model_type
    AutoConfig.register(model_type, GalaxyAttnConfig, exist_ok=True)
    AutoModel.register(GalaxyAttnConfig, GalaxyAttnForImageClassification, exist_ok=True)
    AutoModelForImageClassification.register(
        GalaxyAttnConfig, GalaxyAttnForImageClassification, exist_ok=True
    )
    AutoImageProcessor.register(
        GalaxyAttnConfig,
        image_processor_classes={"pil": GalaxyAttnImageProcessor, "torchvision": GalaxyAttnImageProcessor},
        exist_ok=True,
    )
    # Weights are stored with timm's keys; the transformers model keeps the timm model under `timm_model.`.
    if get_checkpoint_conversion_mapping(model_type) is None:
        register_checkpoint_conversion_mapping(model_type, [PrefixChange(prefix_to_add="timm_model")])


_register()
