"""Attention heatmaps of fixed validation galaxies, drawn after every epoch (``attention/epoch_NNN.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

import timm_galaxy_attn

__all__ = ["heatmap_indices", "save_heatmaps"]


def heatmap_indices(labels: torch.Tensor, n: int) -> list[int]:
    """Fixed validation galaxies for the heatmaps: round-robin over classes, first occurrences first.

    Args:
        labels: Validation labels.
        n: How many galaxies (fewer when the split has fewer).
    """
    per_class = [torch.nonzero(labels == c).flatten().tolist() for c in range(int(labels.max()) + 1)]
    out: list[int] = []
    depth = 0
    while len(out) < n and any(depth < len(ix) for ix in per_class):
        out.extend(ix[depth] for ix in per_class if depth < len(ix))
        depth += 1
    return out[:n]


@torch.no_grad()
def save_heatmaps(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    data_config: dict[str, Any],
    label_names: list[str],
    path: Path,
    device: torch.device,
    epoch: int,
) -> None:
    """Attention maps of the fixed galaxies, one row each (image + 3 maps), titled true/pred.

    Args:
        model: The unwrapped galaxy_attn_vgg model (its train/eval mode is restored).
        images: uint8 images ``(N, 3, S, S)``.
        labels: Their labels.
        data_config: The run's data config (normalisation).
        label_names: The class names.
        path: The PNG to write.
        device: Where the model is.
        epoch: The epoch (1-based), in the title.
    """
    from timm_galaxy_attn.data import normalize_batch
    from timm_galaxy_attn.viz import prediction_titles, save_attention_grid

    was_training = model.training
    model.eval()
    with timm_galaxy_attn.capture_attention(model) as maps:
        logits = model(normalize_batch(images.to(device), data_config))
    model.train(was_training)
    pred = logits.argmax(1).cpu()
    rows = [[m[i].cpu() for m in maps] for i in range(len(images))]
    titles = prediction_titles(labels.tolist(), pred.tolist(), label_names)
    save_attention_grid(list(images), rows, path, titles=titles, title=f"epoch {epoch}")
