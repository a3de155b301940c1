"""Input checks and the calibration error, shared by the local ``evaluate`` module scripts next to this file.

Pure numpy, no package imports, so that those scripts can import it relatively (``evaluate`` copies it beside
them into its module cache). The classification scores themselves come from ``sklearn.metrics`` (with
``zero_division=0``) in the scripts; ``_bootstrap.py`` has the same formulas vectorised over confusion
matrices.
"""

from __future__ import annotations

import numpy as np


def as_label_array(values, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D int64 array, raising ValueError naming ``name`` on a bad shape or dtype."""
    if hasattr(values, "detach"):  # torch tensor, without importing torch
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of class ids, got an array of shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if (
            np.issubdtype(arr.dtype, np.floating)
            and np.all(np.isfinite(arr))
            and np.all(arr == np.round(arr))
        ):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(
                f"{name} must hold integer class ids, got dtype {arr.dtype}; pass argmax of the scores"
            )
    return arr.astype(np.int64, copy=False)


def check_labels(
    references, predictions, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate a pair of label sequences; return them as int64 arrays and the number of classes."""
    refs = as_label_array(references, "references")
    preds = as_label_array(predictions, "predictions")
    if refs.shape[0] != preds.shape[0]:
        raise ValueError(
            f"references and predictions differ in length ({refs.shape[0]} vs {preds.shape[0]}); "
            "pass one prediction per reference"
        )
    if refs.shape[0] == 0:
        raise ValueError("references and predictions are empty; metrics need at least one example")
    lowest = min(int(refs.min()), int(preds.min()))
    if lowest < 0:
        raise ValueError(f"class ids must be >= 0, found {lowest}")
    highest = max(int(refs.max()), int(preds.max()))
    if num_classes is None:
        num_classes = highest + 1
    elif highest >= num_classes:
        which = "references" if int(refs.max()) >= num_classes else "predictions"
        raise ValueError(
            f"{which} hold class id {highest}, outside the range 0..{num_classes - 1} of {num_classes} "
            "classes; "
            "check the label mapping and the number of classes (label_names / num_classes)"
        )
    return refs, preds, int(num_classes)


def check_probabilities(
    probabilities, labels, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate an (N, K) probability matrix and its N labels; return float64 probs and int64 labels."""
    if hasattr(probabilities, "detach"):
        probabilities = probabilities.detach().float().cpu().numpy()
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be a 2-D (N, num_classes) array, got shape {probs.shape}")
    if num_classes is not None and probs.shape[1] != num_classes:
        raise ValueError(f"probabilities have {probs.shape[1]} columns but there are {num_classes} classes")
    labels_arr = as_label_array(labels, "references")
    if labels_arr.shape[0] != probs.shape[0]:
        raise ValueError(
            f"probabilities and references differ in length ({probs.shape[0]} vs {labels_arr.shape[0]})"
        )
    if probs.shape[0] == 0:
        raise ValueError("probabilities are empty; calibration needs at least one example")
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1:
        raise ValueError("probabilities must be finite and in [0, 1]; pass softmax(logits), not logits")
    worst = float(np.abs(probs.sum(axis=1) - 1.0).max())
    if worst > 1e-3:
        raise ValueError(
            f"probability rows must sum to 1 (largest deviation {worst:.3g}); "
            "pass softmax(logits), not logits"
        )
    if labels_arr.min() < 0 or labels_arr.max() >= probs.shape[1]:
        raise ValueError(
            f"references hold class ids outside 0..{probs.shape[1] - 1} (the probability columns): "
            f"found {int(labels_arr.min())}..{int(labels_arr.max())}"
        )
    return probs, labels_arr


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE with ``n_bins`` equal-width confidence bins (Guo et al. 2017).

    ECE = sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)|, bin b holding confidences in
    ((b - 1) / n_bins, b / n_bins] (confidence 0 goes to the first bin). Inputs are assumed validated.
    """
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    n_bins = int(n_bins)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    return float(np.abs(acc_sum - conf_sum).sum() / confidence.shape[0])
