"""The confusion-matrix picture: sklearn's ``ConfusionMatrixDisplay`` on a matplotlib Agg canvas."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write
from ._images import to_numpy


def _check_confusion(cm: Any, label_names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Validate a square count matrix and its class names; return float64 counts and the names."""
    counts = to_numpy(cm)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] < 1:
        raise ValueError(f"cm must be a square (K, K) matrix, got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.number) or not np.all(np.isfinite(counts)) or counts.min() < 0:
        raise ValueError("cm must hold finite non-negative counts")
    names = [str(n) for n in label_names]
    if len(names) != counts.shape[0]:
        raise ValueError(
            f"label_names has {len(names)} entries but cm is {counts.shape[0]}x{counts.shape[0]}"
        )
    return counts.astype(np.float64), names


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
    from sklearn.metrics import ConfusionMatrixDisplay

    counts, names = _check_confusion(cm, label_names)
    k = counts.shape[0]
    totals = counts.sum(axis=1)
    values = np.divide(counts, totals[:, None], out=np.zeros_like(counts), where=totals[:, None] > 0)
    values = values if normalize else counts
    vmax = 1.0 if normalize else max(float(values.max()), 1.0)
    side = max(3.0, k * (0.62 if k > 6 else 0.7))
    fig = Figure(figsize=(side + 1.2, side + 0.4), dpi=150)  # tick labels fit via bbox_inches="tight"
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    small = 8 if k <= 6 else 7 if k <= 10 else 6
    display = ConfusionMatrixDisplay(values, display_labels=names).plot(
        ax=ax,
        cmap="Blues",
        colorbar=False,
        im_kw={"vmin": 0.0, "vmax": vmax, "interpolation": "nearest"},
        text_kw={"fontsize": small, "linespacing": 1.1},
    )
    for (i, j), text in np.ndenumerate(display.text_):
        if not normalize:
            text.set_text(f"{int(counts[i, j])}")
        else:  # fraction and count; nothing in the row of a class with no true examples
            text.set_text(f"{values[i, j]:.2f}\n({int(counts[i, j])})" if totals[i] > 0 else "")
    ax.set_xticks(range(k), labels=names, rotation=40, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(
        range(k), labels=[f"{n} (n={int(s)})" for n, s in zip(names, totals, strict=True)], fontsize=8
    )
    ax.set_xlabel("predicted class", fontsize=9)
    ax.set_ylabel("true class", fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    bar = fig.colorbar(display.im_, ax=ax, fraction=0.046, pad=0.03)
    bar.ax.tick_params(labelsize=7)
    bar.set_label("fraction of true class" if normalize else "count", fontsize=8)
    return atomic_write(
        path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight", pad_inches=0.08)
    )
