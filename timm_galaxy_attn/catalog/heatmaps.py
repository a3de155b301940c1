"""Heatmap PNGs of the catalogue (``predict --heatmaps`` and ``galaxy-attn render``): names, titles, files.

Each PNG is :func:`..viz.attention_figure` of the part of the image the model saw (the eval crop at full
resolution) and the three attention maps, titled with the predicted class and its probability, named
``<index>_<source stem>[_row<r>|_hdu<h>].png``. :func:`write_heatmap` is the one writer of such a PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .table import slug

__all__ = ["PNG_LEVEL", "display_crop", "heatmap_name", "heatmap_title", "write_heatmap", "write_heatmaps"]

PNG_LEVEL = 1  # zlib level of heatmap PNGs: quicker to write than PIL's default 6, files a little larger


def display_crop(image: np.ndarray, crop_pct: float) -> np.ndarray:
    """The region of ``image`` the eval transform keeps (centre square of crop_pct of the short side)."""
    h, w = image.shape[:2]
    side = max(1, round(min(h, w) * crop_pct))
    top, left = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(image[top : top + side, left : left + side])


def heatmap_name(row: dict[str, Any]) -> str:
    """The PNG name of a catalogue row (``index``, ``source``, ``row``, ``hdu``)."""
    stem = Path(row["source"].split(";")[0]).name.split(".")[0]
    if row["row"] is not None:
        extra = f"_row{row['row']}"
    elif row["hdu"] is not None:
        extra = f"_hdu{row['hdu']}"
    else:
        extra = ""
    return f"{row['index']:08d}_{slug(stem)}{extra}.png"


def heatmap_title(label: str, prob: float) -> str:
    """The title of a heatmap PNG: the predicted class and its probability, e.g. ``"Merger (0.93)"``."""
    return f"{label} ({prob:.2f})"


def write_heatmap(display: np.ndarray, maps: Sequence[Any], title: str, path: Path) -> Path:
    """Write the heatmap PNG of one galaxy (its displayed crop and three maps) to ``path`` atomically."""
    from ..viz import attention_figure
    from ..viz._images import save_png

    return save_png(attention_figure(display, maps, title=title), path, compress_level=PNG_LEVEL)


def write_heatmaps(
    batch: dict[str, Any], result: dict[str, Any], label_names: Sequence[str], folder: Path
) -> None:
    """Write the PNG of every row of ``batch`` without an error; set each row's ``heatmap`` to its path."""
    ok_rows = [r for r in batch["rows"] if r["error"] is None]
    probs = result["probs"].numpy()
    for k, row in enumerate(ok_rows):
        pred = int(probs[k].argmax())
        maps = [m[k] for m in result["maps"]]
        title = heatmap_title(label_names[pred], probs[k, pred])
        row["heatmap"] = str(write_heatmap(batch["displays"][k], maps, title, folder / heatmap_name(row)))
