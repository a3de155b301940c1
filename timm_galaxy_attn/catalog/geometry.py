"""The model's input pixels: timm's eval transform as uint8 pixels of the crop, then one normalisation.

timm's eval transform (``Resize(floor(S / crop_pct))`` of the short side, ``CenterCrop(S)``, to tensor,
normalise) resizes the whole image, then keeps the centre. :class:`EvalGeometry` gives the same uint8 pixels
(bit for bit) while resizing only what the crop needs: PIL's horizontal pass on the rows the crop reads,
its vertical pass on the crop's columns. :class:`ModelPixels` applies it (or timm's own geometry where it
does not apply) and :func:`normalize_batch` turns a uint8 batch into the model's input with the floats of
timm's ``ToTensor`` + ``Normalize``. The training data (``data.transforms``), the catalogue engine and the
transformers image processor all go through these two; the module lives here, not in ``data``, because
``import timm_galaxy_attn`` loads the catalogue and the processor while ``data`` loads ``datasets``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
import timm.data
import torch
import torchvision.transforms.functional as TF
from PIL import Image

__all__ = ["DATA_CONFIG_KEYS", "EvalGeometry", "ModelPixels", "normalize_batch"]

_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
_SUPPORT = {  # PIL's filter supports (src/libImaging/Resample.c)
    Image.Resampling.BOX: 0.5,
    Image.Resampling.BILINEAR: 1.0,
    Image.Resampling.HAMMING: 1.0,
    Image.Resampling.BICUBIC: 2.0,
    Image.Resampling.LANCZOS: 3.0,
}
# The timm data-config keys of the eval preprocessing.
DATA_CONFIG_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")


@dataclasses.dataclass(frozen=True)
class EvalGeometry:
    """timm's centre-crop eval geometry for a square ``size`` input: resize the short side to
    ``scale_size`` with ``resample``, keep the central ``size`` x ``size``."""

    size: int
    scale_size: int
    resample: int

    @classmethod
    def from_data_config(cls, data_config: dict[str, Any]) -> EvalGeometry | None:
        """The geometry of ``data_config``, or None where it is not a plain centre crop of a square."""
        _, h, w = data_config["input_size"]
        crop_pct = data_config.get("crop_pct") or timm.data.DEFAULT_CROP_PCT
        mode = data_config.get("crop_mode") or "center"
        interpolation = data_config.get("interpolation", "bilinear")
        if h != w or mode != "center" or crop_pct > 1 or interpolation not in _FILTERS:
            return None
        return cls(int(h), math.floor(h / crop_pct), _FILTERS[interpolation])

    def draft_scale(self, width: int, height: int) -> int:
        """The JPEG DCT scale (1, 2, 4, 8) ``Image.draft`` picks for a ``width`` x ``height`` image."""
        rw, rh = self.resized_size(width, height)
        scale = min(width // rw, height // rh)
        return next((k for k in (8, 4, 2) if scale >= k), 1)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the short-side resize (torchvision's rounding)."""
        if width <= height:
            return self.scale_size, int(self.scale_size * height / width)
        return int(self.scale_size * width / height), self.scale_size

    def _rows_needed(self, height: int, out_height: int, first: int) -> tuple[int, int]:
        """Input rows PIL's vertical pass reads for output rows ``first .. first + size`` (and a margin)."""
        scale = height / out_height
        support = _SUPPORT[self.resample] * max(scale, 1.0)
        lo = int((first + 0.5) * scale - support + 0.5)
        hi = int((first + self.size - 0.5) * scale + support + 0.5)
        return max(lo - 2, 0), min(hi + 2, height)

    def pixels(self, img: Image.Image, full_size: tuple[int, int] | None = None) -> np.ndarray:
        """The uint8 model pixels (size, size, channels) of ``img``: the crop of the resized image, resizing
        only what the crop needs.

        Args:
            img: The decoded image (RGB for the model's 3 channels), full size or a JPEG draft of it.
            full_size: (width, height) of the full image when ``img`` is a draft; default ``img.size``.
        """
        rw, rh = self.resized_size(*(full_size or img.size))
        s, (width, height) = self.size, img.size
        top, left = int(round((rh - s) / 2.0)), int(round((rw - s) / 2.0))
        if self.resample not in _SUPPORT:  # nearest: no filter support to reason about
            return np.asarray(img.resize((rw, rh), self.resample).crop((left, top, left + s, top + s)))
        # PIL resizes horizontally, then vertically (each output pixel is rounded to uint8 in between):
        # the horizontal pass on the rows the crop needs, for its columns, then the vertical pass on
        # those columns, set at their rows of a full-height canvas (rows it never reads stay black).
        # A pass restricted by a box samples at the same floats as the full pass only where
        # _box_is_exact says so; elsewhere the pass computes the full width/height and is cut after.
        y0, y1 = self._rows_needed(height, rh, top)
        strip = img.crop((0, y0, width, y1))
        if rw != width and _box_is_exact(width, rw, left, s):
            fx = width / rw
            strip = strip.resize((s, y1 - y0), self.resample, box=(left * fx, 0, (left + s) * fx, y1 - y0))
        else:
            if rw != width:
                strip = strip.resize((rw, y1 - y0), self.resample)
            strip = strip.crop((left, 0, left + s, y1 - y0))
        if rh == height:
            return np.asarray(strip.crop((0, top - y0, s, top - y0 + s)))
        canvas = Image.new(strip.mode, (s, height))
        canvas.paste(strip, (0, y0))
        if _box_is_exact(height, rh, top, s):
            fy = height / rh
            return np.asarray(canvas.resize((s, s), self.resample, box=(0, top * fy, s, (top + s) * fy)))
        return np.asarray(canvas.resize((s, rh), self.resample).crop((0, top, s, top + s)))


@functools.lru_cache(maxsize=256)
def _box_is_exact(in_size: int, out_size: int, first: int, n: int) -> bool:
    """Whether PIL samples outputs ``first .. first + n`` of a shrinking ``in_size`` -> ``out_size`` pass
    at the same floats when given only their box, so that the pixels are the same.

    PIL takes the box as C floats and mixes float and double arithmetic; this holds for certain when the
    scale and the box edges are exact in float32 (e.g. 423 -> 256 px), else the full pass is used.
    """
    scale = in_size / out_size
    edges = (scale, first * scale, (first + n) * scale)
    return scale >= 1 and all(float(np.float32(v)) == v for v in edges)


class ModelPixels:
    """Turns decoded images into the model's uint8 (S, S, C) input pixels, as timm's eval geometry does.

    With an :class:`EvalGeometry` (plain centre crops) its crop-only resize; otherwise timm's own eval
    geometry (``use_prefetcher=True``: no normalisation) and a transpose. Picklable.

    Args:
        data_config: timm data config (``input_size``, ``interpolation``, ``crop_pct``, ``crop_mode``).
        jpeg_draft: Let callers decode JPEGs at a DCT scale (:func:`.decode.open_image`): recorded here.
    """

    def __init__(self, data_config: dict[str, Any], jpeg_draft: bool = False) -> None:
        self.data_config = dict(data_config)
        self.geometry = EvalGeometry.from_data_config(self.data_config)
        self.jpeg_draft = jpeg_draft and self.geometry is not None
        self._timm = None

    def describe(self) -> dict[str, Any]:
        """What the catalogue metadata records about the decoding (it decides the numbers)."""
        return {"geometry": "pil_box" if self.geometry else "timm", "jpeg_draft": self.jpeg_draft}

    def __call__(self, img: Image.Image, full_size: tuple[int, int] | None = None) -> np.ndarray:
        if self.geometry is not None:
            return self.geometry.pixels(img, full_size)
        if self._timm is None:
            kw = {k: self.data_config[k] for k in DATA_CONFIG_KEYS if k in self.data_config}
            self._timm = timm.data.create_transform(**kw, is_training=False, use_prefetcher=True)
        return np.ascontiguousarray(np.asarray(self._timm(img)).transpose(1, 2, 0))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_timm": None}


def normalize_batch(x: torch.Tensor, data_config: dict[str, Any]) -> torch.Tensor:
    """Normalise a uint8 batch for the model: timm's ``ToTensor`` + ``Normalize`` (torchvision's), batched.

    Args:
        x: uint8 pixels (B, C, S, S), on any device (a channels-last view keeps its memory layout).
        data_config: timm data config with the per-channel ``mean`` and ``std`` (default 0.5).

    Returns:
        float32 ``(x / 255 - mean) / std``, on ``x``'s device.
    """
    if x.dtype != torch.uint8 or x.ndim != 4:
        raise TypeError(
            f"normalize_batch expects uint8 pixels (B, C, S, S), got {x.dtype} {tuple(x.shape)}; "
            "stack the uint8 output of ModelPixels or prepare_tensors."
        )
    mean, std = data_config.get("mean", (0.5,) * 3), data_config.get("std", (0.5,) * 3)
    return TF.normalize(x.float().div_(255), mean, std, inplace=True)
