"""Attention pictures: each galaxy beside its attention maps blended over it (figures 2-3 of Jetley et al.
2018 / Misquith 2023), and plain image grids. Composed with PIL at exact pixel sizes; every file is written
to a temporary file beside the target and moved into place.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ._images import (
    NUM_MAPS,
    as_map,
    as_rgb_uint8,
    check_maps,
    compose,
    display_image,
    heat_tile,
    save_png,
    tile_side,
    to_numpy,
)

ATTENTION_LABELS: tuple[str, ...] = ("input", "attn 1 (conv7)", "attn 2 (conv10)", "attn 3 (conv13)")


def _attention_tiles(
    image: Any, maps: Any, tile: int, cmap: str, alpha: float, what: str, maps_what: str
) -> list[Image.Image]:
    img = as_rgb_uint8(image, what)
    checked = check_maps(maps, maps_what)
    shown = display_image(img, tile)
    return [shown] + [heat_tile(shown, m, cmap, alpha) for m in checked]


def _check_style(cmap: str, alpha: float) -> None:
    import matplotlib

    if cmap not in matplotlib.colormaps:
        raise ValueError(f"unknown colormap {cmap!r}; use a matplotlib colormap name such as 'inferno'")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


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
    img = as_rgb_uint8(image)
    tile = tile_side(img.shape[:2])
    tiles = _attention_tiles(img, maps, tile, cmap, alpha, "image", "maps")
    return compose([tiles], tile, col_labels=ATTENTION_LABELS, title=title)


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
    if len(maps) == NUM_MAPS and all(getattr(m, "ndim", None) == 3 for m in maps):
        batches = [to_numpy(m) for m in maps]
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


def prediction_titles(true: Sequence[int], pred: Sequence[int], label_names: Sequence[str]) -> list[str]:
    """Row titles of an attention grid: ``"true: <name> | pred: <name>"`` per image.

    Args:
        true: true class ids, one per image.
        pred: predicted class ids, one per image.
        label_names: class names, indexed by class id.
    """
    if len(true) != len(pred):
        raise ValueError(
            f"got {len(true)} true and {len(pred)} predicted classes; pass one of each per image"
        )
    return [
        f"true: {label_names[int(t)]} | pred: {label_names[int(p)]}" for t, p in zip(true, pred, strict=True)
    ]


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
        titles: one line per row, e.g. ``"true: Merger | pred: Merger"`` (:func:`prediction_titles`).
        title: optional line over the whole grid (e.g. ``"epoch 7"``).

    Returns:
        The path written.
    """
    _check_style(cmap, alpha)
    imgs = [as_rgb_uint8(im, f"images[{i}]") for i, im in enumerate(_split_batch(images))]
    if not imgs:
        raise ValueError("images is empty; pass at least one image")
    per_image = _per_image_maps(maps, len(imgs))
    row_titles = _check_titles(titles, len(imgs))
    tile = tile_side([max(im.shape[:2]) for im in imgs])
    rows = [
        _attention_tiles(im, per_image[i], tile, cmap, alpha, f"images[{i}]", f"maps of images[{i}]")
        for i, im in enumerate(imgs)
    ]
    canvas = compose(rows, tile, col_labels=ATTENTION_LABELS, row_titles=row_titles, title=title)
    return save_png(canvas, path)


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
    imgs = [as_rgb_uint8(im, f"images[{i}]") for i, im in enumerate(_split_batch(images))]
    if not imgs or len(maps) != len(imgs):
        raise ValueError(f"got {len(imgs)} images and maps for {len(maps)}; pass one list of maps per image")
    tile = tile_side([max(im.shape[:2]) for im in imgs])
    rows = []
    for i, im in enumerate(imgs):
        if len(maps[i]) + 1 != len(labels):
            raise ValueError(f"maps[{i}] holds {len(maps[i])} maps but labels name {len(labels) - 1}")
        shown = display_image(im, tile)
        heat = [heat_tile(shown, as_map(m, f"maps[{i}][{j}]"), cmap, alpha) for j, m in enumerate(maps[i])]
        rows.append([shown, *heat])
    row_titles = _check_titles(titles, len(imgs))
    canvas = compose(rows, tile, col_labels=list(labels), row_titles=row_titles, title=title)
    return save_png(canvas, path)


def save_image_grid(
    images: Any, path: str | os.PathLike, *, titles: Sequence[str] | None = None, ncols: int = 8
) -> Path:
    """Save a PNG grid of images (``ncols`` per row), each with an optional caption below it.

    Images under 128 px are enlarged by an integer factor (nearest) so the grid is readable.
    """
    if int(ncols) != ncols or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    imgs = [as_rgb_uint8(im, f"images[{i}]") for i, im in enumerate(_split_batch(images))]
    if not imgs:
        raise ValueError("images is empty; pass at least one image")
    caps = _check_titles(titles, len(imgs))
    tile = tile_side([max(im.shape[:2]) for im in imgs])
    ncols = min(int(ncols), len(imgs))
    shown = [display_image(im, tile) for im in imgs]
    rows = [shown[i : i + ncols] for i in range(0, len(shown), ncols)]
    cell_titles = [caps[i : i + ncols] for i in range(0, len(caps), ncols)]
    canvas = compose(rows, tile, cell_titles=cell_titles if any(caps) else None)
    return save_png(canvas, path)
