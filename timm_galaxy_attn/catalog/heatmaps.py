"""Heatmap PNGs of the catalogue (``predict --heatmaps`` and ``galaxy-attn render``): names and files.

Each PNG is :func:`..viz.attention_figure` of the part of the image the model saw (the eval crop at full
resolution) and the three attention maps, titled with the predicted class and its probability, named
``<index>_<source stem>[_row<r>|_hdu<h>].png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write
from .table import slug

__all__ = ["PNG_LEVEL", "display_crop", "heatmap_name", "write_heatmaps", "write_png"]

PNG_LEVEL = 1  # zlib level of heatmap PNGs: 4x faster to write than PIL's 6, files ~20% larger


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


def write_png(figure, path: Path) -> Path:
    """Save the PIL ``figure`` to ``path`` atomically, at :data:`PNG_LEVEL`."""
    return atomic_write(path, lambda tmp: figure.save(tmp, format="PNG", compress_level=PNG_LEVEL))


def write_heatmaps(
    batch: dict[str, Any], result: dict[str, Any], label_names: Sequence[str], folder: Path
) -> None:
    """Write the PNG of every row of ``batch`` without an error; set each row's ``heatmap`` to its path."""
    from ..viz import attention_figure

    ok_rows = [r for r in batch["rows"] if r["error"] is None]
    probs = result["probs"].numpy()
    for k, row in enumerate(ok_rows):
        pred = int(probs[k].argmax())
        maps = [m[k] for m in result["maps"]]
        title = f"{label_names[pred]} ({probs[k, pred]:.2f})"
        figure = attention_figure(batch["displays"][k], maps, title=title)
        row["heatmap"] = str(write_png(figure, folder / heatmap_name(row)))
