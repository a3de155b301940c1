"""Pictures: attention heatmaps over galaxies (as figures 2-3 of Jetley et al. 2018 / Misquith 2023),
image grids and confusion matrices.

Tiles are composed with PIL at exact pixel sizes (small galaxy images are enlarged by an integer factor
with nearest-neighbour sampling, so pixels stay honest); text uses the DejaVu Sans font that matplotlib
ships; the confusion matrix is drawn with matplotlib's object API on an Agg canvas (no pyplot state,
nothing shown). Every file is written to a temporary file beside the target and moved into place.
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

from ._io import atomic_write

__all__ = [
    "ATTENTION_LABELS",
    "attention_figure",
    "plot_confusion_matrix",
    "save_attention_grid",
    "save_image_grid",
    "save_map_grid",
]

ATTENTION_LABELS: tuple[str, ...] = ("input", "attn 1 (conv7)", "attn 2 (conv10)", "attn 3 (conv13)")
_NUM_MAPS = 3
_MIN_TILE = 128  # smallest displayed tile side, in pixels
_MAX_TILE = 256  # larger images are shown downscaled to this
_BG = (255, 255, 255)
_FG = (20, 20, 20)


# --------------------------------------------------------------------------------------------- inputs
def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _as_rgb_uint8(image: Any, what: str = "image") -> np.ndarray:
    """PIL image, (H, W, 3) or (H, W) array, (3, H, W) array/tensor (uint8 or [0, 1]) -> (H, W, 3) uint8."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = _to_numpy(image)
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
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.bool_) or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{what} has unsupported dtype {arr.dtype}; use uint8 or floats in [0, 1]")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or inf")
    if np.issubdtype(_to_numpy(image).dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError(f"{what} has integer values outside 0..255")
        return arr.astype(np.uint8)
    if arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
        raise ValueError(
            f"{what} has float values in [{arr.min():.3g}, {arr.max():.3g}], outside [0, 1]: it looks "
            "normalised; pass the unnormalised image (uint8, or floats in [0, 1])"
        )
    return np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)


def _as_map(m: Any, what: str) -> np.ndarray:
    arr = _to_numpy(m)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{what} must be a 2-D (H_s, W_s) attention map, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or inf")
    return arr


def _check_maps(maps: Any, what: str = "maps") -> list[np.ndarray]:
    if isinstance(maps, (str, bytes)) or not hasattr(maps, "__len__"):
        raise ValueError(f"{what} must be a sequence of {_NUM_MAPS} attention maps")
    if len(maps) != _NUM_MAPS:
        raise ValueError(
            f"{what} holds {len(maps)} attention maps; expected {_NUM_MAPS} "
            "(one per estimator, shallow to deep)"
        )
    return [_as_map(m, f"{what}[{i}]") for i, m in enumerate(maps)]


def _normalise(m: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]; a constant map becomes all zeros (nothing stands out)."""
    lo, hi = float(m.min()), float(m.max())
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return np.zeros_like(m)
    return (m - lo) / (hi - lo)


# --------------------------------------------------------------------------------------------- tiles
def _tile_side(sides: Sequence[int]) -> int:
    """Displayed tile side: small images are enlarged by an integer factor to at least _MIN_TILE."""
    side = max(sides)
    if side >= _MIN_TILE:
        return min(side, _MAX_TILE)
    return side * math.ceil(_MIN_TILE / side)


def _fit(h: int, w: int, tile: int) -> tuple[int, int]:
    scale = tile / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _display_image(img: np.ndarray, tile: int) -> Image.Image:
    """Scale an (H, W, 3) uint8 image to fit a tile x tile square (nearest for integer enlargements)."""
    h, w = img.shape[:2]
    nh, nw = _fit(h, w, tile)
    pil = Image.fromarray(img)
    if (nh, nw) == (h, w):
        return pil
    integer = nh % h == 0 and nw % w == 0 and nh // h == nw // w
    resample = Image.Resampling.NEAREST if integer else Image.Resampling.BICUBIC
    return pil.resize((nw, nh), resample)


def _heat_tile(shown: Image.Image, amap: np.ndarray, cmap: str, alpha: float) -> Image.Image:
    """Bilinearly upsample a normalised map to the shown image, colour-map it and blend it over the image."""
    import matplotlib

    w, h = shown.size
    up = Image.fromarray(_normalise(amap).astype(np.float32), mode="F").resize(
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


def _compose(
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


def _attention_tiles(
    image: Any, maps: Any, tile: int, cmap: str, alpha: float, what: str, maps_what: str
) -> list[Image.Image]:
    img = _as_rgb_uint8(image, what)
    checked = _check_maps(maps, maps_what)
    shown = _display_image(img, tile)
    return [shown] + [_heat_tile(shown, m, cmap, alpha) for m in checked]


def _check_style(cmap: str, alpha: float) -> None:
    import matplotlib

    if cmap not in matplotlib.colormaps:
        raise ValueError(f"unknown colormap {cmap!r}; use a matplotlib colormap name such as 'inferno'")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


# --------------------------------------------------------------------------------------------- public
def attention_figure(
    image: Any, maps: Sequence[Any], *, title: str | None = None, cmap: str = "inferno", alpha: float = 0.5
) -> Image.Image:
    """The image and its three attention maps blended over it, side by side (figures 2-3 of the paper).

    Args:
        image: PIL image, (H, W, 3) uint8 array, or (3, H, W) tensor/array (uint8 or floats in [0, 1];
            unnormalised).
        maps: three (H_s, W_s) arrays/tensors, shallow to deep (as ``capture_attention`` gives for one
            image). Each is min-max normalised on its own, upsampled bilinearly to the displayed image,
            colour-mapped with ``cmap`` and blended with weight ``alpha``.
        title: optional line above the panels.

    Returns:
        An RGB PIL image: four tiles labelled "input", "attn 1 (conv7)", "attn 2 (conv10)",
        "attn 3 (conv13)". Images under 128 px are enlarged by an integer factor (nearest) for display.
    """
    _check_style(cmap, alpha)
    img = _as_rgb_uint8(image)
    tile = _tile_side(img.shape[:2])
    tiles = _attention_tiles(img, maps, tile, cmap, alpha, "image", "maps")
    return _compose([tiles], tile, col_labels=ATTENTION_LABELS, title=title)


def _split_batch(images: Any) -> list[Any]:
    if isinstance(images, Image.Image):
        return [images]
    if hasattr(images, "detach") or isinstance(images, np.ndarray):
        arr = images
        if arr.ndim == 4:
            return [arr[i] for i in range(arr.shape[0])]
        if arr.ndim == 3 and (arr.shape[-1] in (1, 3) or arr.shape[0] in (1, 3)):
            return [arr]
        raise ValueError(
            f"images must be a batch (B, 3, H, W) / (B, H, W, 3) or a list; got shape {arr.shape}"
        )
    return list(images)


def _per_image_maps(maps: Any, n: int) -> list[Any]:
    """Accept maps[i] = the three maps of image i, or the capture_attention list (3 tensors (B, H_s, W_s))."""
    if isinstance(maps, (str, bytes)) or not hasattr(maps, "__len__"):
        raise ValueError("maps must be a sequence")
    if len(maps) == _NUM_MAPS and all(getattr(m, "ndim", None) == 3 for m in maps):
        batches = [_to_numpy(m) for m in maps]
        if all(b.shape[0] == n for b in batches):
            return [[b[i] for b in batches] for i in range(n)]
    if len(maps) != n:
        raise ValueError(
            f"got {n} images but maps for {len(maps)}; pass maps[i] = the 3 maps of image i, or the "
            "capture_attention list of 3 tensors (B, H_s, W_s) with B = number of images"
        )
    return list(maps)


def _check_titles(titles: Sequence[str] | None, n: int) -> list[str | None]:
    if titles is None:
        return [None] * n
    if isinstance(titles, str):
        raise ValueError("titles must be a sequence of strings, one per image, not a single string")
    titles = list(titles)
    if len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} images; pass one title per image")
    return [None if t is None else str(t) for t in titles]


def _save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def save_attention_grid(
    images: Any,
    maps: Any,
    path: str | os.PathLike,
    *,
    titles: Sequence[str] | None = None,
    title: str | None = None,
    cmap: str = "inferno",
    alpha: float = 0.5,
) -> Path:
    """Save a PNG with one galaxy per row: the image and its three blended attention maps.

    Args:
        images: a list of images (as :func:`attention_figure`) or a batch (B, 3, H, W) / (B, H, W, 3).
        maps: ``maps[i]`` = the three maps of image i, or directly the ``capture_attention`` list
            (three tensors (B, H_s, W_s)); when both readings fit, the latter is used.
        path: output PNG; parent folders are created, the write is atomic.
        titles: one line per row, e.g. ``"true: Merger / pred: Merger"``.
        title: optional line over the whole grid (e.g. ``"epoch 7"``).

    Returns:
        The path written.
    """
    _check_style(cmap, alpha)
    imgs = [_as_rgb_uint8(im, f"images[{i}]") for i, im in enumerate(_split_batch(images))]
    if not imgs:
        raise ValueError("images is empty; pass at least one image")
    per_image = _per_image_maps(maps, len(imgs))
    row_titles = _check_titles(titles, len(imgs))
    tile = _tile_side([max(im.shape[:2]) for im in imgs])
    rows = [
        _attention_tiles(im, per_image[i], tile, cmap, alpha, f"images[{i}]", f"maps of images[{i}]")
        for i, im in enumerate(imgs)
    ]
    canvas = _compose(rows, tile, col_labels=ATTENTION_LABELS, row_titles=row_titles, title=title)
    return _save_png(canvas, path)


def save_map_grid(
    images: Any,
    maps: Sequence[Sequence[Any]],
    path: str | os.PathLike,
    *,
    labels: Sequence[str],
    titles: Sequence[str] | None = None,
    title: str | None = None,
    cmap: str = "inferno",
    alpha: float = 0.5,
) -> Path:
    """Like :func:`save_attention_grid` with any number of maps per image (e.g. attn 1-3 and Grad-CAM).

    ``maps[i]`` holds image i's (H_s, W_s) maps; ``labels`` names the columns, the input first (so one more
    label than maps per image).
    """
    _check_style(cmap, alpha)
    imgs = [_as_rgb_uint8(im, f"images[{i}]") for i, im in enumerate(_split_batch(images))]
    if not imgs or len(maps) != len(imgs):
        raise ValueError(f"got {len(imgs)} images and maps for {len(maps)}; pass one list of maps per image")
    tile = _tile_side([max(im.shape[:2]) for im in imgs])
    rows = []
    for i, im in enumerate(imgs):
        if len(maps[i]) + 1 != len(labels):
            raise ValueError(f"maps[{i}] holds {len(maps[i])} maps but labels name {len(labels) - 1}")
        shown = _display_image(im, tile)
        heat = [_heat_tile(shown, _as_map(m, f"maps[{i}][{j}]"), cmap, alpha) for j, m in enumerate(maps[i])]
        rows.append([shown, *heat])
    row_titles = _check_titles(titles, len(imgs))
    canvas = _compose(rows, tile, col_labels=list(labels), row_titles=row_titles, title=title)
    return _save_png(canvas, path)


def save_image_grid(
    images: Any, path: str | os.PathLike, *, titles: Sequence[str] | None = None, ncols: int = 8
) -> Path:
    """Save a PNG grid of images (``ncols`` per row), each with an optional caption below it.

    Images under 128 px are enlarged by an integer factor (nearest) so the grid is readable.
    """
    if int(ncols) != ncols or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    imgs = [_as_rgb_uint8(im, f"images[{i}]") for i, im in enumerate(_split_batch(images))]
    if not imgs:
        raise ValueError("images is empty; pass at least one image")
    caps = _check_titles(titles, len(imgs))
    tile = _tile_side([max(im.shape[:2]) for im in imgs])
    ncols = min(int(ncols), len(imgs))
    shown = [_display_image(im, tile) for im in imgs]
    rows = [shown[i : i + ncols] for i in range(0, len(shown), ncols)]
    cell_titles = [caps[i : i + ncols] for i in range(0, len(caps), ncols)]
    canvas = _compose(rows, tile, cell_titles=cell_titles if any(caps) else None)
    return _save_png(canvas, path)


def plot_confusion_matrix(
    cm: Any,
    label_names: Sequence[str],
    path: str | os.PathLike,
    *,
    normalize: bool = True,
    title: str | None = None,
) -> Path:
    """Save a confusion-matrix heatmap PNG (rows = true class, columns = predicted class).

    With ``normalize=True`` each row is divided by its total (so the diagonal is per-class recall) and each
    cell shows the fraction and, below it, the count; a class with no true examples gets an empty row.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = _to_numpy(cm)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] < 1:
        raise ValueError(f"cm must be a square (K, K) matrix, got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.number) or not np.all(np.isfinite(counts)) or counts.min() < 0:
        raise ValueError("cm must hold finite non-negative counts")
    k = counts.shape[0]
    names = [str(n) for n in label_names]
    if len(names) != k:
        raise ValueError(f"label_names has {len(names)} entries but cm is {k}x{k}")
    counts = counts.astype(np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0) if normalize else counts
    vmax = 1.0 if normalize else max(float(values.max()), 1.0)

    cell = 0.62 if k > 6 else 0.7
    side = max(3.0, k * cell)
    fig = Figure(figsize=(side + 1.2, side + 0.4), dpi=150)  # tick labels fit via bbox_inches="tight"
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(k), labels=names, rotation=40, ha="right", rotation_mode="anchor", fontsize=8)
    support = counts.sum(axis=1).astype(np.int64)
    ax.set_yticks(range(k), labels=[f"{n} (n={s})" for n, s in zip(names, support, strict=True)], fontsize=8)
    ax.set_xlabel("predicted class", fontsize=9)
    ax.set_ylabel("true class", fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_xticks(np.arange(k + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(k + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.0)
    ax.tick_params(which="minor", length=0)
    small = 8 if k <= 6 else 7 if k <= 10 else 6
    for i in range(k):
        for j in range(k):
            dark = values[i, j] > 0.55 * vmax
            color = "white" if dark else "black"
            if normalize:
                if totals[i, 0] == 0:
                    continue
                text = f"{values[i, j]:.2f}\n({int(counts[i, j])})"
            else:
                text = f"{int(counts[i, j])}"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=small, linespacing=1.1)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    bar.ax.tick_params(labelsize=7)
    bar.set_label("fraction of true class" if normalize else "count", fontsize=8)

    return atomic_write(
        path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight", pad_inches=0.08)
    )
