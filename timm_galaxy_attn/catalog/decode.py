"""Image files to RGB for the catalogue: PIL's rules for modes, libjpeg-turbo for JPEGs, DCT drafts.

JPEGs (RGB/YCbCr) are decoded by libjpeg-turbo through torchvision (the pixels of PIL's decoder, about
twice as fast); anything else, and any failure, goes through PIL.

JPEG draft (``jpeg_draft=True``): ``Image.draft`` has libjpeg decode at 1/2, 1/4 or 1/8 scale through the
DCT, only when the scaled image still has at least the pixels of the resized image the crop comes from
(the crop is never upsampled; :class:`.geometry.EvalGeometry`). The pixels then differ a little: on 200
SDSS JPEGs enlarged 2x, the shipped model's probabilities moved by 0.0012 on average (at most 0.031) and
98.5% kept their top class. For 423 px SDSS JPEGs and the shipped 128 px model (a 212 px crop -> 128 px)
no scale qualifies.
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from .geometry import EvalGeometry

__all__ = ["InputError", "decode_image", "open_image", "pil_to_rgb"]


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
