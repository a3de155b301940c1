"""Image files to RGB for the catalogue: PIL's rules for modes, libjpeg-turbo for JPEGs, DCT drafts.

Every format goes through PIL, except the full decode of RGB JPEGs when ``simplejpeg`` is installed
(``pip install timm-galaxy-attn[jpeg]``): it bundles libjpeg-turbo too and gives the same pixels, faster
(``benchmarks/jpeg_decode.py`` checks both on the gz1_sdss validation split).

JPEG draft (``jpeg_draft=True``): ``Image.draft`` has libjpeg decode at 1/2, 1/4 or 1/8 scale through the
DCT, only when the scaled image still has at least the pixels of the resized image the crop comes from
(the crop is never upsampled; :class:`.geometry.EvalGeometry`). The pixels then differ a little from the
full decode (``benchmarks/predict.py`` measures how much, docs/catalogue.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

try:  # optional: the same pixels as PIL's JPEG decode, faster
    import simplejpeg
except ImportError:
    simplejpeg = None

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


def open_image(path: str, draft: EvalGeometry | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode an image file to RGB.

    Args:
        path: The image file.
        draft: For JPEGs, let libjpeg decode at the smallest 1/2^k scale that still has the pixels of
            ``draft``'s resized image (the image returned is then smaller than the full size).

    Returns:
        The RGB image and the file's full (width, height).

    Raises:
        InputError: The file is no image, is truncated or corrupt, grayscale or transparent.
    """
    try:
        with Image.open(path) as img:
            full = img.size
            if img.format == "JPEG" and draft is not None:
                img.draft("RGB", draft.resized_size(*full))
            elif img.format == "JPEG" and img.mode == "RGB" and simplejpeg is not None:
                data = Path(path).read_bytes()
                return Image.fromarray(simplejpeg.decode_jpeg(data, colorspace="RGB")), full
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
