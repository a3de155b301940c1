"""Image and attention-map inputs, tile scaling, fonts, the PIL canvas the pictures are composed on and the
atomic PNG write every picture goes through.

Small galaxy images are enlarged by an integer factor with nearest-neighbour sampling, so pixels stay honest;
text uses the DejaVu Sans font that matplotlib ships.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .._io import atomic_write

NUM_MAPS = 3
_MIN_TILE = 128  # smallest displayed tile side, in pixels
_MAX_TILE = 256  # larger images are shown downscaled to this
_BG = (255, 255, 255)
_FG = (20, 20, 20)
PIL_PNG_LEVEL = 6  # PIL's default zlib level


def save_png(image: Image.Image, path: str | os.PathLike, compress_level: int = PIL_PNG_LEVEL) -> Path:
    """Save the PIL ``image`` as a PNG at ``path`` (atomically, parent folders created); returns ``path``."""
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG", compress_level=compress_level))


# --------------------------------------------------------------------------------------------- inputs
def to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _channels_last(image: Any, arr: np.ndarray, what: str) -> np.ndarray:
    """(H, W), (H, W, C) or (C, H, W) with C in (1, 3) -> (H, W, 3)."""
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.moveaxis(arr, 0, -1)  # (C, H, W) -> (H, W, C)
    elif arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] in (1, 3) and hasattr(image, "detach"):
        arr = np.moveaxis(arr, 0, -1)  # a tiny tensor is channels-first
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(
            f"{what} must be a PIL image, an (H, W, 3) array or a (3, H, W) tensor; got shape {arr.shape}"
        )
    return np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr


def as_rgb_uint8(image: Any, what: str = "image") -> np.ndarray:
    """PIL image, (H, W, 3) or (H, W) array, (3, H, W) array/tensor (uint8 or [0, 1]) -> (H, W, 3) uint8."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = _channels_last(image, to_numpy(image), what)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.bool_) or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{what} has unsupported dtype {arr.dtype}; use uint8 or floats in [0, 1]")
    integer = np.issubdtype(arr.dtype, np.integer)
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or inf")
    if integer:
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError(f"{what} has integer values outside 0..255")
        return arr.astype(np.uint8)
    if arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
        raise ValueError(
            f"{what} has float values in [{arr.min():.3g}, {arr.max():.3g}], outside [0, 1]: it looks "
            "normalised; pass the unnormalised image (uint8, or floats in [0, 1])"
        )
    return np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)


def as_map(m: Any, what: str) -> np.ndarray:
    arr = to_numpy(m)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{what} must be a 2-D (H_s, W_s) attention map, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or inf")
    return arr


def check_maps(maps: Any, what: str = "maps") -> list[np.ndarray]:
    if isinstance(maps, (str, bytes)) or not hasattr(maps, "__len__"):
        raise ValueError(f"{what} must be a sequence of {NUM_MAPS} attention maps")
    if len(maps) != NUM_MAPS:
        raise ValueError(
            f"{what} holds {len(maps)} attention maps; expected {NUM_MAPS} "
            "(one per estimator, shallow to deep)"
        )
    return [as_map(m, f"{what}[{i}]") for i, m in enumerate(maps)]


def _min_max(m: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]; a constant map becomes all zeros (nothing stands out)."""
    lo, hi = float(m.min()), float(m.max())
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return np.zeros_like(m)
    return (m - lo) / (hi - lo)


# --------------------------------------------------------------------------------------------- tiles
def tile_side(sides: Sequence[int]) -> int:
    """Displayed tile side: small images are enlarged by an integer factor to at least _MIN_TILE."""
    side = max(sides)
    if side >= _MIN_TILE:
        return min(side, _MAX_TILE)
    return side * math.ceil(_MIN_TILE / side)


def _fit(h: int, w: int, tile: int) -> tuple[int, int]:
    scale = tile / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def display_image(img: np.ndarray, tile: int) -> Image.Image:
    """Scale an (H, W, 3) uint8 image to fit a tile x tile square (nearest for integer enlargements)."""
    h, w = img.shape[:2]
    nh, nw = _fit(h, w, tile)
    pil = Image.fromarray(img)
    if (nh, nw) == (h, w):
        return pil
    integer = nh % h == 0 and nw % w == 0 and nh // h == nw // w
    resample = Image.Resampling.NEAREST if integer else Image.Resampling.BICUBIC
    return pil.resize((nw, nh), resample)


def heat_tile(shown: Image.Image, amap: np.ndarray, cmap: str, alpha: float) -> Image.Image:
    """Bilinearly upsample a normalised map to the shown image, colour-map it and blend it over the image."""
    import matplotlib

    w, h = shown.size
    up = Image.fromarray(_min_max(amap).astype(np.float32), mode="F").resize(
        (w, h), Image.Resampling.BILINEAR
    )
    values = np.clip(np.asarray(up, dtype=np.float64), 0.0, 1.0)
    heat = matplotlib.colormaps[cmap](values)[..., :3]
    base = np.asarray(shown, dtype=np.float64) / 255.0
    out = (1.0 - alpha) * base + alpha * heat
    return Image.fromarray(np.round(out * 255).astype(np.uint8))


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except Exception:  # no FreeType or font: Pillow's built-in font still renders text
        return ImageFont.load_default(size)


def _text_width(text: str, font) -> int:
    left, _, right, _ = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font)
    return int(right - left)


def _fitting_font(texts: Sequence[str], width: int, size: int, min_size: int = 9):
    """Largest font <= size at which every text fits in ``width`` pixels (never below min_size)."""
    while size > min_size and any(_text_width(t, _font(size)) > width for t in texts):
        size -= 1
    return _font(size)


def _shorten(text: str, width: int, font) -> str:
    if _text_width(text, font) <= width:
        return text
    while len(text) > 1 and _text_width(text + "...", font) > width:
        text = text[:-1]
    return text + "..."


def compose(
    rows: Sequence[Sequence[Image.Image]],
    tile: int,
    *,
    col_labels: Sequence[str] | None = None,
    row_titles: Sequence[str | None] | None = None,
    title: str | None = None,
    cell_titles: Sequence[Sequence[str | None]] | None = None,
) -> Image.Image:
    """Paste tiles on a white canvas: optional overall title, column labels, a title band above each row
    and a caption under each tile."""
    pad = max(4, tile // 32)
    font_size = max(12, tile // 10)
    label_font = _fitting_font(col_labels or [], tile, font_size)
    line = font_size + pad
    ncols = max(len(r) for r in rows)
    width = pad + ncols * (tile + pad)
    title_font = _font(font_size + 2)
    row_font = _font(font_size)
    cell_font = _fitting_font([t for r in (cell_titles or []) for t in r if t], tile, font_size - 1)
    has_row_titles = row_titles is not None and any(row_titles)
    has_cell_titles = cell_titles is not None and any(t for r in cell_titles for t in r)
    top = pad + (line + pad if title else 0) + (line if col_labels else 0)
    band = line + pad if has_row_titles else 0  # row title band, with a gap from the row above
    row_h = band + tile + (line if has_cell_titles else 0) + pad
    canvas = Image.new("RGB", (width, top + len(rows) * row_h), _BG)
    draw = ImageDraw.Draw(canvas)
    y = pad
    if title:
        draw.text(
            (width / 2, y),
            _shorten(title, width - 2 * pad, title_font),
            fill=_FG,
            font=title_font,
            anchor="ma",
        )
        y += line + pad
    if col_labels:
        for c, label in enumerate(col_labels):
            x = pad + c * (tile + pad) + tile / 2
            draw.text((x, y), label, fill=_FG, font=label_font, anchor="ma")
        y += line
    for r, row in enumerate(rows):
        if has_row_titles and row_titles[r]:
            text = _shorten(row_titles[r], width - 2 * pad, row_font)
            draw.text((pad, y + pad), text, fill=_FG, font=row_font)
        y += band
        for c, im in enumerate(row):
            x0 = pad + c * (tile + pad)
            canvas.paste(im, (x0 + (tile - im.width) // 2, y + (tile - im.height) // 2))
            if has_cell_titles and cell_titles[r][c]:
                text = _shorten(cell_titles[r][c], tile, cell_font)
                draw.text((x0 + tile / 2, y + tile + pad // 2), text, fill=_FG, font=cell_font, anchor="ma")
        y += tile + (line if has_cell_titles else 0) + pad
    return canvas
