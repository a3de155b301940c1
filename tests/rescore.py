"""Rescoring a finished synthetic training run from its outputs alone: the saved model folder, re-run on the
split the run scored, and metrics recomputed with scikit-learn (not the package's metric code)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from timm_galaxy_attn.data import load_galaxy_dataset, normalize_batch, prepare_tensors


def fresh_logits(run: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of ``split`` from ``run/model`` (loaded as a user loads it, with its own data
    config), at the run's precision and memory format; the split rebuilt from the run's recorded seed."""
    m = json.loads((run / "metrics.json").read_text())
    cfg = m["config"]
    assert m["dataset"] == "synthetic", "the rescoring rebuilds synthetic splits only"
    model = timm.create_model(f"local-dir:{run / 'model'}", pretrained=True).eval()
    data_config = timm.data.resolve_model_data_config(model)
    fractions = {k: cfg[k] for k in ("val_fraction", "test_fraction")}
    ds = load_galaxy_dataset(
        "synthetic", seed=m["split_seed"], n_per_class=cfg["synthetic_per_class"], image_size=m["image_size"],
        **fractions,
    )  # fmt: skip
    x, y = prepare_tensors(ds[split], data_config)
    x = normalize_batch(x, data_config)
    if cfg["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=m["mixed_precision"] == "bf16"):
        logits = model(x).float()
    return logits.numpy(), y.numpy()


def top_label_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Guo et al.'s ECE, written out bin by bin: confidences in ((b - 1) / n_bins, b / n_bins]."""
    conf, correct = probs.max(1), probs.argmax(1) == labels
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (conf > lo) & (conf <= hi) if b else conf <= hi
        if inside.any():
            total += inside.sum() / len(conf) * abs(correct[inside].mean() - conf[inside].mean())
    return float(total)


def sklearn_scores(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    """accuracy, macro-F1, balanced accuracy, ECE and the confusion matrix of ``logits``, independently."""
    z = logits.astype(np.float64)
    probs = np.exp(z - z.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    preds = probs.argmax(1)
    return {
        "accuracy": accuracy_score(labels, preds),
        "macro_f1": f1_score(labels, preds, average="macro", zero_division=0),
        "balanced_accuracy": balanced_accuracy_score(labels, preds),
        "ece": top_label_ece(probs, labels),
        "confusion_matrix": confusion_matrix(labels, preds, labels=range(num_classes)).tolist(),
        "n": len(labels),
    }


def assert_scores_equal(stored: dict[str, Any], rescored: dict[str, Any]) -> None:
    """Every rescored value equals the stored one (floats to 1e-9)."""
    for key, value in rescored.items():
        if isinstance(value, float):
            assert abs(stored[key] - value) <= 1e-9, (key, stored[key], value)
        else:
            assert stored[key] == value, key
