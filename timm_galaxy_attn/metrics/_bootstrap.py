"""Percentile bootstrap intervals of accuracy, macro-F1 and balanced accuracy, drawn as confusion matrices.

Resampling N examples with replacement only changes how many fall in each confusion-matrix cell, and those
counts are multinomial(N, cell frequencies); so the B replicate matrices are drawn directly and the metrics
run on the whole (B, K, K) stack at once, in time independent of N. Kept instead of ``scipy.stats.bootstrap``:
scipy resamples the N examples themselves (B x N indices and a statistic over them), the same distribution at
N / K^2 times the work. The stack formulas below are scikit-learn's with ``zero_division=0``:

- F1 = 2 TP / (2 TP + FP + FN), 0 when that denominator is 0; recall of a class with support 0 is 0.
- macro-F1 averages F1 over the classes in the references *or* the predictions
  (``f1_score(average="macro")``).
- balanced accuracy averages recall over the classes in the references (``balanced_accuracy_score``).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix

from ._core import check_labels


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0, dtype=np.float64)
    return out


def accuracy_from_cm(cm: np.ndarray) -> np.ndarray:
    """Fraction correct of each matrix in a stack (..., K, K): trace over total."""
    return _safe_div(np.trace(cm, axis1=-2, axis2=-1), cm.sum(axis=(-2, -1)))


def macro_f1_from_cm(cm: np.ndarray) -> np.ndarray:
    """Mean F1 over the classes present in references or predictions, per matrix of a stack (..., K, K)."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    counts = cm.sum(axis=-1) + cm.sum(axis=-2)  # support + predicted = 2 TP + FP + FN
    present = counts > 0
    return _safe_div((_safe_div(2 * tp, counts) * present).sum(axis=-1), present.sum(axis=-1))


def balanced_accuracy_from_cm(cm: np.ndarray) -> np.ndarray:
    """Mean recall over the classes present in the references, per matrix of a stack (..., K, K)."""
    support = cm.sum(axis=-1)
    present = support > 0
    recall = _safe_div(np.diagonal(cm, axis1=-2, axis2=-1), support)
    return _safe_div((recall * present).sum(axis=-1), present.sum(axis=-1))


# The bootstrapped metrics and their formulas on a stack of confusion matrices.
FROM_CONFUSION = (
    ("accuracy", accuracy_from_cm),
    ("macro_f1", macro_f1_from_cm),
    ("balanced_accuracy", balanced_accuracy_from_cm),
)


def bootstrap_intervals(
    references,
    predictions,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    num_classes: int | None = None,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals (1 - alpha) for accuracy, macro_f1 and balanced_accuracy.

    Same result in distribution as index resampling (see the module docstring).
    """
    _check_bootstrap_args(n_boot, alpha)
    refs, preds, k = check_labels(references, predictions, num_classes)
    cells = _multinomial_replicates(confusion_matrix(refs, preds, labels=np.arange(k)), n_boot, seed)
    out = {}
    for name, from_cm in FROM_CONFUSION:
        lo, hi = np.quantile(from_cm(cells), [alpha / 2, 1 - alpha / 2])
        out[name] = (float(lo), float(hi))
    return out


def paired_bootstrap_difference(
    references,
    predictions_a,
    predictions_b,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    num_classes: int | None = None,
) -> dict[str, tuple[float, float, float]]:
    """Difference a - b of accuracy, macro_f1 and balanced_accuracy of two classifiers scored on the same
    examples, with its paired percentile bootstrap interval (1 - alpha): ``{name: (diff, lo, hi)}``.

    Each replicate resamples the examples once and scores both classifiers on that resample, so what the two
    get right or wrong together cancels; an interval that excludes 0 separates them. As in
    :func:`bootstrap_intervals`, the (true, a, b) triple counts are drawn directly as a multinomial.
    """
    _check_bootstrap_args(n_boot, alpha)
    refs, preds_a, k_a = check_labels(references, predictions_a, num_classes)
    refs, preds_b, k_b = check_labels(refs, predictions_b, num_classes)
    k = max(k_a, k_b)
    triples = np.bincount((refs * k + preds_a) * k + preds_b, minlength=k**3).reshape(k, k, k)
    cells = _multinomial_replicates(triples, n_boot, seed)
    # (true, a) and (true, b) confusion matrices: the full sample's, then every replicate's
    full_a, full_b = triples.sum(axis=2)[None], triples.sum(axis=1)[None]
    cm_a, cm_b = cells.sum(axis=3), cells.sum(axis=2)
    out = {}
    for name, from_cm in FROM_CONFUSION:
        lo, hi = np.quantile(from_cm(cm_a) - from_cm(cm_b), [alpha / 2, 1 - alpha / 2])
        out[name] = (float(from_cm(full_a)[0] - from_cm(full_b)[0]), float(lo), float(hi))
    return out


def _check_bootstrap_args(n_boot: int, alpha: float) -> None:
    if int(n_boot) != n_boot or n_boot < 2:
        raise ValueError(f"n_boot must be an integer >= 2, got {n_boot!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def _multinomial_replicates(counts: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` bootstrap replicates of a count table (B, *counts.shape): resampling the N examples with
    replacement draws the table's counts as multinomial(N, counts / N)."""
    n = int(counts.sum())
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, counts.ravel() / n, size=int(n_boot)).reshape(int(n_boot), *counts.shape)
