"""Pictures: attention heatmaps over galaxies (as figures 2-3 of Jetley et al. 2018 / Misquith 2023),
image grids (``attention.py``, composed with PIL) and confusion matrices (``confusion.py``, matplotlib on an
Agg canvas: no pyplot state, nothing shown). Every file is written atomically.
"""

from .attention import (
    ATTENTION_LABELS,
    attention_figure,
    prediction_titles,
    save_attention_grid,
    save_image_grid,
    save_map_grid,
)
from .confusion import plot_confusion_matrix

__all__ = [
    "ATTENTION_LABELS",
    "attention_figure",
    "plot_confusion_matrix",
    "prediction_titles",
    "save_attention_grid",
    "save_image_grid",
    "save_map_grid",
]
