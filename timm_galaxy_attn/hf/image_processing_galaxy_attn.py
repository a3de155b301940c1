"""GalaxyAttnImageProcessor: timm's eval transform of the model's data config, as a transformers processor.

The processor stores the timm data config (input size, interpolation, crop, mean, std) and goes through the
package's one pixel path (:class:`~timm_galaxy_attn.catalog.geometry.ModelPixels`, then
:func:`~timm_galaxy_attn.catalog.geometry.normalize_batch`), which gives the floats of
``timm.data.create_transform(**data_config, is_training=False)``: the transformers and timm paths give the
same pixels and the same logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import PIL.Image
import timm.data
import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

from ..catalog.geometry import DATA_CONFIG_KEYS, ModelPixels, normalize_batch

__all__ = ["GalaxyAttnImageProcessor"]


def _data_config_of(pretrained_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The processor's arguments from a timm pretrained_cfg (or data config), resolved as timm resolves it."""
    data_config = timm.data.resolve_data_config(pretrained_cfg=dict(pretrained_cfg), verbose=False)
    return {key: data_config[key] for key in DATA_CONFIG_KEYS if key in data_config}


class GalaxyAttnImageProcessor(BaseImageProcessor):
    """Resize, centre-crop and normalise galaxy images exactly as timm's eval transform does.

    Args:
        input_size: (channels, height, width) the model takes.
        interpolation: Resize interpolation (``"bicubic"``, ``"bilinear"``...).
        mean / std: Per-channel normalisation.
        crop_pct: The centre crop keeps this fraction of the resized image (resize to ``size / crop_pct``).
        crop_mode: timm crop mode (``"center"``).

    Accepts PIL images, HxWxC uint8 arrays and CxHxW uint8 tensors (one or a list); returns
    ``{"pixel_values": float tensor (B, C, H, W)}``.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        input_size: tuple[int, int, int] | list[int] = (3, 32, 32),
        interpolation: str = "bicubic",
        mean: tuple[float, ...] | list[float] = (0.5, 0.5, 0.5),
        std: tuple[float, ...] | list[float] = (0.5, 0.5, 0.5),
        crop_pct: float = 1.0,
        crop_mode: str = "center",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if len(input_size) != 3:
            raise ValueError(f"input_size must be (channels, height, width), got {input_size!r}.")
        if len(mean) != input_size[0] or len(std) != input_size[0]:
            raise ValueError(
                f"mean and std need {input_size[0]} values (one per channel), got {mean!r}, {std!r}."
            )
        self.input_size = [int(v) for v in input_size]
        self.interpolation = str(interpolation)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self.crop_pct = float(crop_pct)
        self.crop_mode = str(crop_mode)
        self._pixels = ModelPixels(self.data_config)

    @property
    def data_config(self) -> dict[str, Any]:
        """The timm data config this processor applies."""
        return {
            "input_size": tuple(self.input_size),
            "interpolation": self.interpolation,
            "mean": tuple(self.mean),
            "std": tuple(self.std),
            "crop_pct": self.crop_pct,
            "crop_mode": self.crop_mode,
        }

    @classmethod
    def from_pretrained_cfg(cls, pretrained_cfg: Mapping[str, Any]) -> GalaxyAttnImageProcessor:
        """Build the processor from a timm pretrained_cfg (or data config), resolved as timm resolves it."""
        return cls(**_data_config_of(pretrained_cfg))

    @classmethod
    def from_dict(cls, image_processor_dict: dict[str, Any], **kwargs: Any) -> Any:
        """Build from a saved processor config, or from a timm ``config.json`` holding a ``pretrained_cfg``.

        transformers (>= 5.25) reads a local folder whose ``config.json`` has a ``pretrained_cfg`` as a timm
        checkpoint and hands that file here instead of ``preprocessor_config.json``; the data config in its
        ``pretrained_cfg`` is the same one, so it is taken from there.
        """
        if "pretrained_cfg" in image_processor_dict:
            image_processor_dict = _data_config_of(image_processor_dict["pretrained_cfg"])
        return super().from_dict(image_processor_dict, **kwargs)

    def _to_pil(self, image: Any) -> PIL.Image.Image:
        channels = self.input_size[0]
        if isinstance(image, PIL.Image.Image):
            pil = image
        elif isinstance(image, np.ndarray | torch.Tensor):
            array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else image
            if isinstance(image, torch.Tensor) and array.ndim == 3 and array.shape[0] in (1, 3, 4):
                array = np.moveaxis(array, 0, -1)  # tensors are channels-first
            if array.dtype != np.uint8:
                raise TypeError(
                    f"GalaxyAttnImageProcessor takes uint8 pixels (0-255), got dtype {array.dtype}; convert "
                    "the "
                    "image with e.g. (x * 255).round().clip(0, 255).astype('uint8'), or pass a PIL image."
                )
            if array.ndim == 3 and array.shape[-1] == 1:
                array = array[..., 0]
            if array.ndim not in (2, 3):
                raise ValueError(f"Expected one image (H, W[, C]), got an array of shape {array.shape}.")
            pil = PIL.Image.fromarray(array)
        else:
            raise TypeError(
                f"GalaxyAttnImageProcessor cannot read a {type(image).__name__}; pass PIL images, uint8 "
                "numpy "
                "arrays (H, W, C) or uint8 tensors (C, H, W)."
            )
        if channels == 3 and pil.mode != "RGB":
            pil = pil.convert("RGB")  # grayscale, RGBA and palette images, as timm's dataset readers do
        return pil

    def preprocess(self, images: Any, return_tensors: str | None = "pt", **kwargs: Any) -> BatchFeature:
        """Apply the timm eval transform to one image or a list of images.

        Args:
            images: A PIL image, HxWxC uint8 array or CxHxW uint8 tensor, or a list (or 4-D batch) of them.
            return_tensors: ``"pt"`` (or None): the pixel values are PyTorch tensors.

        Returns:
            ``BatchFeature`` with ``pixel_values``, float32 (B, C, H, W).
        """
        if return_tensors not in (None, "pt"):
            raise ValueError(
                "GalaxyAttnImageProcessor returns PyTorch tensors only, got "
                f"return_tensors={return_tensors!r}."
            )
        if kwargs:
            raise TypeError(
                f"GalaxyAttnImageProcessor got unexpected arguments {sorted(kwargs)}; the preprocessing is "
                "fixed "
                "by the model's data config (input_size, interpolation, crop_pct, mean, std)."
            )
        batched = isinstance(images, list | tuple) or (
            isinstance(images, np.ndarray | torch.Tensor) and images.ndim == 4
        )
        items = list(images) if batched else [images]
        if not items:
            raise ValueError("No images given to GalaxyAttnImageProcessor.")
        pixels = [self._pixels(self._to_pil(image)) for image in items]
        uint8 = torch.from_numpy(np.stack([p if p.ndim == 3 else p[..., None] for p in pixels]))
        pixel_values = normalize_batch(uint8.permute(0, 3, 1, 2), self.data_config).contiguous()
        return BatchFeature({"pixel_values": pixel_values}, tensor_type="pt")

    def __call__(self, images: Any, *args: Any, **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, *args, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        output = {key: getattr(self, key) for key in DATA_CONFIG_KEYS}
        output["image_processor_type"] = type(self).__name__
        return output
