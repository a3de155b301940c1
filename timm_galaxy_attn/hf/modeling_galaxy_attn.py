"""GalaxyAttnForImageClassification: a transformers ``PreTrainedModel`` around the timm GalaxyAttnVGG.

The timm model is the attribute ``timm_model``; a registered checkpoint conversion adds that prefix when
loading and strips it when saving, so ``model.safetensors`` holds the plain timm keys that
``timm.create_model(..., pretrained=True)`` loads too (the pattern of transformers' TimmWrapper).
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Any

import huggingface_hub.constants
import timm
import torch
import torch.nn as nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput

from ..attention import capture_attention
from ..labels import MIRROR_LABEL_SWAPS, dataset_of_label_names
from ..model import GalaxyAttnVGG, init_weights
from ..tta import d4_probs, mirror_permutation
from .configuration_galaxy_attn import GalaxyAttnConfig

__all__ = ["GalaxyAttnPreTrainedModel", "GalaxyAttnForImageClassification"]


class GalaxyAttnPreTrainedModel(PreTrainedModel):
    """Shared loading, initialisation and key layout of the GalaxyAttn transformers models."""

    config_class = GalaxyAttnConfig
    config: GalaxyAttnConfig
    base_model_prefix = "timm_model"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["GalaxyAttnVGG"]
    model_tags = ["timm", "galaxy-morphology"]

    def _init_weights(self, module: nn.Module) -> None:
        """GalaxyAttnVGG's own initialisation, applied only to weights a checkpoint did not provide."""
        init_weights(module, classifier=module is getattr(self.timm_model, "fc", None), init=init)

    def _set_gradient_checkpointing(self, enable: bool = True, *args: Any, **kwargs: Any) -> None:
        self.timm_model.set_grad_checkpointing(enable)

    def load_state_dict(self, state_dict: dict[str, torch.Tensor], *args: Any, **kwargs: Any):
        """Accept timm-keyed state dicts too (e.g. a Trainer resuming from a saved folder)."""
        prefix = f"{self.base_model_prefix}."
        state_dict = {k if k.startswith(prefix) else prefix + k: v for k, v in state_dict.items()}
        return super().load_state_dict(state_dict, *args, **kwargs)

    def get_input_embeddings(self) -> None:
        return None


class GalaxyAttnForImageClassification(GalaxyAttnPreTrainedModel):
    """VGG-att3-concat (Jetley et al. 2018) for galaxy morphology, as a transformers image classifier.

    ``forward(pixel_values, labels=None, output_attentions=None, output_hidden_states=None)`` returns an
    :class:`~transformers.modeling_outputs.ImageClassifierOutput`: ``logits`` (B, num_labels); ``loss``
    (cross-entropy) when ``labels`` are given; ``attentions``, the three normalised attention maps
    (B, H_s, W_s) shallow to deep, when ``output_attentions=True``; ``hidden_states``, the local features
    l1, l2, l3 and the final map, when ``output_hidden_states=True``.
    """

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        """``PreTrainedModel.from_pretrained``; names a Hub id missing from the offline cache."""
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except OSError as e:
            name = str(pretrained_model_name_or_path)
            if os.path.isdir(name) or not huggingface_hub.constants.HF_HUB_OFFLINE:
                raise
            raise OSError(
                f"{name!r} is not in the Hugging Face cache ({huggingface_hub.constants.HF_HUB_CACHE}) and "
                "HF_HUB_OFFLINE=1 forbids downloading it. Unset HF_HUB_OFFLINE to download it, or pass the "
                "path "
                "of a local folder written by hub/publish.py or save_pretrained_folder."
            ) from e

    def __init__(self, config: GalaxyAttnConfig) -> None:
        super().__init__(config)
        self.timm_model: GalaxyAttnVGG = timm.create_model(
            config.architecture,
            pretrained=False,
            num_classes=config.num_labels,
            pretrained_cfg_overlay=config.pretrained_cfg or None,
            **config.timm_model_args(),
        )
        self.num_labels = config.num_labels
        self.post_init()

    def _d4_logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The log of the mean class probabilities of the 8 D4 views (the mirror label swap undone)."""
        swaps = MIRROR_LABEL_SWAPS.get(dataset_of_label_names(self.config.label_names) or "", {})
        perm = mirror_permutation(self.num_labels, swaps, pixel_values.device)
        probs = d4_probs(lambda v: self.timm_model(v).float().softmax(-1), pixel_values, perm).mean(0)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> ImageClassifierOutput | tuple[torch.Tensor, ...]:
        """Classify a batch of preprocessed images (see the class docstring for the outputs)."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_attentions = (
            output_attentions if output_attentions is not None else self.config.output_attentions
        )
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        if output_attentions and not self.config.attention:
            raise ValueError(
                "output_attentions=True needs attention estimators, but this model was built with "
                "attention=False (the ablation); it has no attention maps."
            )
        pixel_values = pixel_values.to(self.device, self.dtype)
        model = self.timm_model
        attentions = hidden_states = logits = None
        tta = self.config.tta == "d4" and not self.training
        with capture_attention(model) if output_attentions else nullcontext() as maps:
            if output_hidden_states:
                features, intermediates = model.forward_intermediates(pixel_values)
                logits = model.forward_head(features)
                hidden_states = tuple(intermediates)
            elif output_attentions or not tta:
                logits = model(pixel_values)
        if output_attentions:
            attentions = tuple(maps)
        if tta:  # the 8 views' probabilities; maps and hidden states stay the identity view's
            logits = self._d4_logits(pixel_values)

        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config)

        if not return_dict:
            output = tuple(x for x in (loss, logits, hidden_states, attentions) if x is not None)
            return output
        return ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=hidden_states, attentions=attentions
        )
