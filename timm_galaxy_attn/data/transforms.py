"""Transforms for galaxies: per-image PIL transforms and a fast batched path, on one pixel path.

The pixels are timm's eval geometry (resize to ``S / crop_pct``, centre crop ``S``) as
:class:`~timm_galaxy_attn.catalog.geometry.ModelPixels` computes them, and the normalisation is
:func:`~timm_galaxy_attn.catalog.geometry.normalize_batch`; the catalogue and the transformers image processor
use the same two, so every path gives the floats of ``timm.data.create_transform(**data_config)``.

* :func:`eval_transform`: PIL image -> normalised float tensor (3, S, S).
* :func:`train_transform`: the same geometry, a random 90-degree turn and mild brightness/contrast jitter.
* :func:`prepare_tensors` decodes a split once into uint8 tensors (N, 3, S, S); :class:`BatchAugment`
  augments and normalises whole batches on CPU or GPU (one ``affine_grid``/``grid_sample`` call for
  rotation, mirror and shift); :func:`normalize_batch` normalises them for evaluation.

Augmentations that respect galaxies: a galaxy has no "up", so any rotation is allowed; a mirror flip
changes the sense of winding of spiral arms, so it swaps the labels in ``mirror_label_swap``
(``timm_galaxy_attn.labels.MIRROR_LABEL_SWAPS``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision import transforms as T

from ..catalog.geometry import DATA_CONFIG_KEYS, ModelPixels, normalize_batch

__all__ = ["BatchAugment", "eval_transform", "normalize_batch", "prepare_tensors", "train_transform"]

_DEFAULTS = {"interpolation": "bilinear", "mean": (0.5,) * 3, "std": (0.5,) * 3, "crop_pct": 1.0}


def _eval_config(data_config: dict[str, Any], image_size: int | None) -> dict[str, Any]:
    """``data_config``'s eval keys for 3-channel square inputs of ``image_size`` (default: its own)."""
    size = int(image_size) if image_size is not None else int(data_config["input_size"][-1])
    config = {
        **_DEFAULTS,
        "crop_mode": "center",
        **{k: data_config[k] for k in DATA_CONFIG_KEYS if k in data_config},
    }
    return {**config, "input_size": (3, size, size)}


def _rgb(img: Image.Image) -> Image.Image:
    return img if img.mode == "RGB" else img.convert("RGB")


class _UInt8Pixels:
    """PIL image -> uint8 (3, S, S) tensor: the model pixels of the RGB image (picklable, for workers)."""

    def __init__(self, data_config: dict[str, Any]) -> None:
        self.pixels = ModelPixels(data_config)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.array(self.pixels(_rgb(img)))).permute(2, 0, 1)  # a writable copy


class _EvalTransform(_UInt8Pixels):
    """PIL image -> normalised float (3, S, S) tensor."""

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return normalize_batch(super().__call__(img)[None], self.pixels.data_config)[0]


def eval_transform(data_config: dict[str, Any], image_size: int | None = None) -> _EvalTransform:
    """The per-image eval transform: the floats of timm's eval transform for ``data_config``.

    Args:
        data_config: timm data config (``input_size``, ``interpolation``, ``crop_pct``, ``mean``, ``std``).
        image_size: Side of the square input; default ``data_config["input_size"][-1]``.

    Returns:
        A picklable callable: PIL image (converted to RGB) -> float32 tensor (3, S, S).
    """
    return _EvalTransform(_eval_config(data_config, image_size))


def train_transform(data_config: dict[str, Any], image_size: int | None = None) -> T.Compose:
    """The per-image training transform: the eval geometry, a random 90-degree rotation and mild
    brightness/contrast jitter (no mirror: a per-image transform cannot swap labels; use
    :class:`BatchAugment` for flips and free rotations).

    Args:
        data_config: timm data config (``input_size``, ``interpolation``, ``crop_pct``, ``mean``, ``std``).
        image_size: Side of the square input; default ``data_config["input_size"][-1]``.

    Returns:
        A callable: PIL image -> float32 tensor (3, S, S).
    """
    config = _eval_config(data_config, image_size)
    k90 = T.RandomChoice([T.Lambda(lambda x, k=k: torch.rot90(x, k, dims=(-2, -1))) for k in range(4)])
    return T.Compose(
        [
            _UInt8Pixels(config),
            k90,
            T.ConvertImageDtype(torch.float32),
            T.ColorJitter(brightness=0.1, contrast=0.1),
            T.Normalize(config["mean"], config["std"]),
        ]
    )


def prepare_tensors(
    split_ds, data_config: dict[str, Any], image_size: int | None = None, *, image_column: str = "image"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a split once into the model's uint8 pixels, not normalised (:func:`normalize_batch` does).

    Args:
        split_ds: A ``datasets.Dataset`` with an image column and ``label``.
        data_config: timm data config of the eval geometry.
        image_size: Side of the square input; default ``data_config["input_size"][-1]``.
        image_column: The column of PIL images (converted to RGB).

    Returns:
        (uint8 (N, 3, S, S), int64 labels (N,)).
    """
    pixels = _UInt8Pixels(_eval_config(data_config, image_size))
    s = pixels.pixels.data_config["input_size"][-1]
    x = torch.empty((len(split_ds), 3, s, s), dtype=torch.uint8)
    for i, row in enumerate(split_ds):
        x[i] = pixels(row[image_column])
    y = torch.as_tensor(np.asarray(split_ds["label"]), dtype=torch.int64)
    return x, y


class BatchAugment:
    """Augment and normalise a uint8 batch: ``(x (B, 3, S, S) uint8, y (B,)) -> (x float, y)``.

    Args:
        data_config: timm data config (mean, std).
        rotate: ``"any"`` (uniform angle, bilinear, reflected border), ``"90"`` (multiples of 90
            degrees, exact) or ``None``.
        flip: mirror half of the images (labels mapped through ``mirror_label_swap``).
        mirror_label_swap: labels that swap under a mirror, e.g. ``{1: 2, 2: 1}`` for gz1_sdss.
        max_shift: largest shift as a fraction of the image side (whole pixels unless ``rotate="any"``).
        brightness, contrast: multiplicative factors drawn from ``[1 - v, 1 + v]``.
        generator: default ``torch.Generator`` for the draws (a call may pass its own).
    """

    def __init__(
        self,
        data_config: dict[str, Any],
        rotate: str | None = "any",
        flip: bool = True,
        mirror_label_swap: dict[int, int] | None = None,
        max_shift: float = 0.0625,
        brightness: float = 0.1,
        contrast: float = 0.1,
        generator: torch.Generator | None = None,
    ):
        if rotate not in ("any", "90", None):
            raise ValueError(f"rotate={rotate!r}: use 'any', '90' or None")
        self.data_config = data_config
        self.rotate, self.flip = rotate, flip
        self.swap = dict(mirror_label_swap or {})
        self.max_shift, self.brightness, self.contrast = max_shift, brightness, contrast
        self.generator = generator
        self._lut = None
        if self.swap:
            size = max(max(self.swap), max(self.swap.values())) + 1
            lut = torch.arange(size)
            for a, b in self.swap.items():
                lut[a] = b
            self._lut = lut

    def __repr__(self) -> str:
        return (
            f"BatchAugment(rotate={self.rotate!r}, flip={self.flip}, mirror_label_swap={self.swap}, "
            f"max_shift={self.max_shift}, brightness={self.brightness}, contrast={self.contrast})"
        )

    def _swap_labels(self, y: torch.Tensor, mirrored: torch.Tensor) -> torch.Tensor:
        if self._lut is None:
            return y
        lut = self._lut.to(y.device)
        inside = y < len(lut)
        swapped = torch.where(inside, lut[y.clamp(max=len(lut) - 1)], y)
        return torch.where(mirrored.to(y.device), swapped, y)

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise TypeError(f"BatchAugment expects uint8 (B, 3, H, W), got {x.dtype} {tuple(x.shape)}")
        g = generator if generator is not None else self.generator
        b, _, h, w = x.shape
        # all draws on CPU from one generator: identical results on any device
        if self.rotate == "any":
            angle = torch.rand(b, generator=g) * (2 * math.pi)
        elif self.rotate == "90":
            angle = torch.randint(0, 4, (b,), generator=g).float() * (math.pi / 2)
        else:
            angle = torch.zeros(b)
        mirrored = torch.rand(b, generator=g) < 0.5 if self.flip else torch.zeros(b, dtype=torch.bool)
        shift = (torch.rand(b, 2, generator=g) * 2 - 1) * self.max_shift
        if self.rotate != "any":
            shift = torch.round(shift * torch.tensor([w, h])) / torch.tensor([w, h])  # whole pixels: exact
        bright = 1 + (torch.rand(b, generator=g) * 2 - 1) * self.brightness
        contr = 1 + (torch.rand(b, generator=g) * 2 - 1) * self.contrast

        xf = x.float().div_(255)
        if self.rotate is not None or self.flip or self.max_shift > 0:
            cos, sin = torch.cos(angle), torch.sin(angle)
            sx = torch.where(mirrored, -1.0, 1.0)
            theta = torch.zeros(b, 2, 3)
            theta[:, 0, 0], theta[:, 0, 1] = cos * sx, -sin
            theta[:, 1, 0], theta[:, 1, 1] = sin * sx, cos
            theta[:, :, 2] = shift * 2  # normalised coordinates span 2
            if self.rotate == "90":  # snap to exact 0/1 so 90-degree turns are permutations of pixels
                theta[:, :, :2] = torch.round(theta[:, :, :2])
            grid = F.affine_grid(theta.to(x.device), list(xf.shape), align_corners=False)
            mode = "bilinear" if self.rotate == "any" else "nearest"
            xf = F.grid_sample(xf, grid, mode=mode, padding_mode="reflection", align_corners=False)
        mean_img = xf.mean(dim=(1, 2, 3), keepdim=True)
        xf = (xf - mean_img) * contr.view(-1, 1, 1, 1).to(x.device) + mean_img
        xf = (xf * bright.view(-1, 1, 1, 1).to(x.device)).clamp_(0, 1)
        mean, std = (
            self.data_config.get("mean", _DEFAULTS["mean"]),
            self.data_config.get("std", _DEFAULTS["std"]),
        )
        return TF.normalize(xf, mean, std, inplace=True), self._swap_labels(y, mirrored)
