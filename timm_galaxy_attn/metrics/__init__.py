"""Metrics for galaxy classifiers, as local ``evaluate`` modules that work offline.

``load_metric("accuracy" | "macro_f1" | "balanced_accuracy" | "per_class" | "ece")`` returns an
``evaluate.EvaluationModule`` loaded from the script of that name in this folder (``evaluate.load`` on a
local path never touches the Hub). :func:`compute_classification_metrics` is the one entry point that
training, benchmarks and the model card use. The class-id modules score with ``sklearn.metrics``
(``zero_division=0``); the bootstrap (``_bootstrap.py``) runs the same formulas on stacks of confusion
matrices; the ECE and the input checks live in ``_core.py``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from ._bootstrap import bootstrap_intervals, paired_bootstrap_difference

__all__ = [
    "METRIC_NAMES",
    "bootstrap_intervals",
    "paired_bootstrap_difference",
    "compute_classification_metrics",
    "expected_calibration_error",
    "fit_temperature",
    "load_metric",
    "metric_script_path",
]

METRIC_NAMES: tuple[str, ...] = ("accuracy", "macro_f1", "balanced_accuracy", "per_class", "ece")
_HERE = Path(__file__).resolve().parent
_LOADED: dict[str, Any] = {}
_LOCK = threading.Lock()


def metric_script_path(name: str) -> Path:
    """Path of the local ``evaluate`` module script for ``name`` (usable with ``evaluate.load``)."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(METRIC_NAMES)}")
    return _HERE / f"{name}.py"


def load_metric(name: str):
    """Load the local ``evaluate`` module ``name`` (offline), cached once per process.

    The module keeps its data in memory (``keep_in_memory=True``): nothing is written to the evaluate cache
    except the copy of the script that ``evaluate`` imports.

    Args:
        name: ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``per_class`` or ``ece``.
    """
    path = metric_script_path(name)
    with _LOCK:
        module = _LOADED.get(name)
        if module is None:
            import evaluate  # deferred: a slow import that only metric users need

            module = evaluate.load(str(path), keep_in_memory=True)
            _LOADED[name] = module
    return module


def _label_names(label_names: Sequence[str] | None, num_classes: int) -> list[str]:
    if label_names is None:
        return [str(i) for i in range(num_classes)]
    names = [str(n) for n in label_names]
    if len(names) != num_classes:
        raise ValueError(f"label_names has {len(names)} entries but there are {num_classes} classes")
    if len(set(names)) != len(names):
        raise ValueError("label_names must be unique")
    return names


def compute_classification_metrics(
    references,
    predictions,
    probabilities=None,
    label_names: Sequence[str] | None = None,
    *,
    n_bins: int = 15,
) -> dict[str, Any]:
    """Accuracy, macro-F1, balanced accuracy, per-class scores and confusion matrix (and ECE) in one dict.

    Args:
        references: true class ids (N,).
        predictions: predicted class ids (N,).
        probabilities: optional (N, K) class probabilities (softmax of logits) for the ECE.
        label_names: optional K class names; they key ``per_class`` and fix the number of classes
            (otherwise K = probabilities.shape[1], else the highest id seen + 1).
        n_bins: confidence bins of the ECE.

    Returns:
        ``{"accuracy", "macro_f1", "balanced_accuracy", ["ece"], "per_class": {name: {precision, recall,
        f1, support}}, "confusion_matrix": [[...], ...] (rows = true class), "n"}``, plain Python numbers.
    """
    num_classes = None
    if label_names is not None:
        num_classes = len(label_names)
    elif probabilities is not None:
        num_classes = int(np.shape(probabilities)[-1]) if np.ndim(probabilities) == 2 else None
    refs, preds, num_classes = _core.check_labels(references, predictions, num_classes)
    names = _label_names(label_names, num_classes)
    if probabilities is not None:
        probs, _ = _core.check_probabilities(probabilities, refs, num_classes)

    kwargs = {"references": refs, "predictions": preds, "num_classes": num_classes}
    out: dict[str, Any] = {}
    out["accuracy"] = load_metric("accuracy").compute(**kwargs)["accuracy"]
    out["macro_f1"] = load_metric("macro_f1").compute(**kwargs)["macro_f1"]
    out["balanced_accuracy"] = load_metric("balanced_accuracy").compute(**kwargs)["balanced_accuracy"]
    if probabilities is not None:
        out["ece"] = load_metric("ece").compute(references=refs, predictions=probs, n_bins=n_bins)["ece"]
    pc = load_metric("per_class").compute(**kwargs)
    out["per_class"] = {
        name: {
            "precision": pc["precision"][i],
            "recall": pc["recall"][i],
            "f1": pc["f1"][i],
            "support": pc["support"][i],
        }
        for i, name in enumerate(names)
    }
    out["confusion_matrix"] = pc["confusion_matrix"]
    out["n"] = int(refs.shape[0])
    return out


def _as_logits(logits) -> np.ndarray:
    if hasattr(logits, "detach"):
        logits = logits.detach().float().cpu().numpy()
    arr = np.asarray(logits, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] < 2:
        raise ValueError(f"logits must be a non-empty (N, num_classes >= 2) array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("logits contain NaN or inf")
    return arr


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of ``labels`` under softmax(logits / temperature)."""
    from scipy.special import log_softmax

    log_probs = log_softmax(logits / temperature, axis=1)
    return float(-log_probs[np.arange(log_probs.shape[0]), labels].mean())


def fit_temperature(logits, labels, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Temperature T minimising the mean NLL of softmax(logits / T) (Guo et al. 2017); fit on validation.

    The NLL is convex in 1/T, so a bounded scalar search over log T finds the global minimum inside
    ``bounds``. Returns T as a float (T > 1 softens over-confident models). Apply as softmax(logits / T).

    Args:
        logits: (N, C) validation logits.
        labels: (N,) integer labels.
        bounds: The search interval of T.
    """
    from scipy.optimize import minimize_scalar

    z = _as_logits(logits)
    y = _core.as_label_array(labels, "labels")
    if y.shape[0] != z.shape[0]:
        raise ValueError(f"logits and labels differ in length ({z.shape[0]} vs {y.shape[0]})")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(
            f"labels must lie in 0..{z.shape[1] - 1} (the logit columns), found {y.min()}..{y.max()}"
        )
    lo, hi = bounds
    if not 0 < lo < hi:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}")
    res = minimize_scalar(
        lambda log_t: _nll(z, y, math.exp(log_t)),
        bounds=(math.log(lo), math.log(hi)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(res.x))


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """Top-label expected calibration error with ``n_bins`` equal-width bins (0 = perfectly calibrated).

    Args:
        probs: (N, C) class probabilities.
        labels: (N,) integer labels.
        n_bins: Confidence bins.
    """
    p, y = _core.check_probabilities(probs, labels)
    return _core.expected_calibration_error(p, y, n_bins=n_bins)
