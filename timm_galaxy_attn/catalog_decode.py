"""Image decoding for the catalogue: timm's eval geometry on the crop only, JPEG DCT scaling.

timm's eval transform (``Resize(floor(S / crop_pct))`` of the short side, ``CenterCrop(S)``, to tensor,
normalise) resizes the whole image, then keeps the centre; its tensor steps run once per image on torch's
intra-op thread pool, the pool the model's forward uses. :class:`EvalGeometry` gives the same uint8 pixels
(bit for bit) while resizing only what the crop needs: PIL's horizontal pass on the rows the crop reads,
its vertical pass on the crop's columns. The engine turns a batch of these uint8 arrays into a normalised
tensor in one step.

JPEGs (RGB/YCbCr) are decoded by libjpeg-turbo through torchvision (the pixels of PIL's decoder, about
twice as fast); anything else, and any failure, goes through PIL.

JPEG draft (``jpeg_draft=True``): ``Image.draft`` has libjpeg decode at 1/2, 1/4 or 1/8 scale through the
DCT, only when the scaled image still has at least the pixels of the resized image the crop comes from
(the crop is never upsampled). The pixels then differ a little: on 200 SDSS JPEGs enlarged 2x, the shipped
model's probabilities moved by 0.0012 on average (at most 0.031) and 98.5% kept their top class. For
423 px SDSS JPEGs and the shipped 128 px model (a 212 px crop -> 128 px) no scale qualifies.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["EvalGeometry", "InputError", "ModelPixels", "decode_image", "open_image", "pil_to_rgb"]

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
_DEFAULT_CROP_PCT = 0.875  # timm's default when a config has none


class InputError(ValueError):
    """An input that cannot become a galaxy image; the message goes into the row's ``error`` column."""


def pil_to_rgb(img: Image.Image) -> Image.Image:
    """Decode ``img`` and return it as RGB; grayscale and real transparency are :class:`InputError`."""
    img.load()  # decode now: truncated files fail here
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(img.getchannel("A"))
        if alpha.min() < 255:
            raise InputError(
                f"{img.mode} image with transparent pixels (alpha min {alpha.min()}); composite it on the "
                "survey's sky background and save as RGB"
            )
        img = img.convert("RGB" if img.mode != "LA" else "L")
    if img.mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
        raise InputError(
            f"grayscale ({img.mode}) image: the model needs a 3-band colour composite; give the RGB "
            "cutout or per-band FITS files (NAME_g.fits, NAME_r.fits, NAME_z.fits)"
        )
    if img.mode != "RGB":
        img = img.convert("RGB")  # CMYK, YCbCr, ...: colour conversions PIL knows
    return img


@functools.cache
def _torchvision_decode_jpeg():
    """torchvision's ``decode_jpeg`` and its RGB mode, or None where torchvision has no image codecs.

    torchvision 0.29 deprecates its codecs in favour of TorchCodec (a DeprecationWarning at each call,
    silenced here by its message); when they are gone, JPEGs are decoded by PIL alone, with the same
    pixels, more slowly.
    """
    warnings.filterwarnings(
        "ignore",
        message="The image decoding and encoding capabilities of TorchVision",
        category=DeprecationWarning,
    )
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except Exception:
        return None
    return decode_jpeg, ImageReadMode.RGB


def _turbo_decode(path: str) -> Image.Image | None:
    """An RGB (YCbCr) JPEG decoded by torchvision's libjpeg-turbo call, or None to leave it to PIL.

    The same library and settings as PIL's decoder (the same pixels, checked by the tests), about twice
    as fast; anything it does not take (other colour spaces, broken files) goes to PIL, which gives the
    error message.
    """
    codec = _torchvision_decode_jpeg()
    if codec is None:
        return None
    decode_jpeg, rgb = codec
    try:
        import torch

        chw = decode_jpeg(torch.from_numpy(np.fromfile(path, dtype=np.uint8)), mode=rgb)
    except Exception:
        return None
    return Image.fromarray(np.ascontiguousarray(chw.numpy().transpose(1, 2, 0)))


def open_image(path: str, draft: EvalGeometry | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode the image file ``path`` to RGB; return it and its full (width, height).

    ``draft``: for JPEGs, let libjpeg decode at the smallest 1/2^k scale that still has the pixels of
    ``draft``'s resized image (the image returned is then smaller than the full size).
    """
    try:
        with Image.open(path) as img:
            full = img.size
            if img.format == "JPEG" and img.mode == "RGB":
                scaled = draft is not None and draft.draft_scale(*full) > 1
                if not scaled and (fast := _turbo_decode(path)) is not None and fast.size == full:
                    return fast, full
            if draft is not None and img.format == "JPEG":
                img.draft("RGB", draft.resized_size(*full))
            return pil_to_rgb(img), full
    except InputError:
        raise
    except Image.UnidentifiedImageError:
        raise InputError("not an image PIL can read (corrupt file or unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"truncated or corrupt image: {exc}") from None


def decode_image(path: str) -> np.ndarray:
    """The full-resolution (H, W, 3) uint8 pixels of the image file ``path``."""
    return np.asarray(open_image(path)[0])


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
        crop_pct = data_config.get("crop_pct") or _DEFAULT_CROP_PCT
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
        """(size, size, 3) uint8 model pixels of the RGB ``img`` (the full image, or a draft of an image
        of ``full_size``): the crop of the resized image, resizing only what the crop needs."""
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
        canvas = Image.new("RGB", (s, height))
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
    """Turns decoded RGB images into the model's uint8 (S, S, 3) input pixels.

    With an :class:`EvalGeometry` (plain centre crops) its crop-only resize; otherwise timm's own eval
    geometry (``use_prefetcher=True``: no normalisation) and a transpose. Picklable.
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
            import timm.data

            kw = {
                k: self.data_config[k]
                for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
                if k in self.data_config
            }
            self._timm = timm.data.create_transform(**kw, is_training=False, use_prefetcher=True)
        return np.ascontiguousarray(np.asarray(self._timm(img)).transpose(1, 2, 0))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_timm": None}
