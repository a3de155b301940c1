"""Scoring the stored runs of benchmarks/accuracy.py (no model, no data: what --report-only and the tests
use): metrics with bootstrap intervals, TTA, calibration, seeds aggregated, paired differences."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from accuracy_rows import METRICS, ROWS, BenchmarkError, is_complete


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities (N, K) of logits (N, K), in float64 (``scipy.special.softmax`` over classes)."""
    from scipy.special import softmax as scipy_softmax

    return scipy_softmax(np.asarray(logits, dtype=np.float64), axis=1)


def score_predictions(
    labels: np.ndarray, probs: np.ndarray, label_names: Sequence[str], n_boot: int = 1000
) -> dict[str, Any]:
    """accuracy / balanced accuracy / macro-F1 (+ 95% bootstrap intervals) and ECE of class probabilities."""
    from timm_galaxy_attn.metrics import bootstrap_intervals, compute_classification_metrics

    preds = probs.argmax(1)
    m = compute_classification_metrics(labels, preds, probs, label_names=list(label_names))
    ci = bootstrap_intervals(labels, preds, n_boot=n_boot, seed=0, num_classes=len(label_names))
    out = {k: float(m[k]) for k in METRICS}
    out["ece"] = float(m["ece"])
    out["ci95"] = {k: [float(ci[k][0]), float(ci[k][1])] for k in METRICS}
    out["per_class"] = m["per_class"]
    out["confusion_matrix"] = m["confusion_matrix"]
    return out


def summarize_run(folder: Path, n_boot: int = 1000) -> dict[str, Any]:
    """Everything the table shows for one stored run, recomputed from its logits and checked against its
    ``metrics.json`` (the test numbers train.py printed must be the ones the table shows)."""
    from timm_galaxy_attn.metrics import expected_calibration_error, fit_temperature

    metrics = json.loads((folder / "metrics.json").read_text())
    bench = json.loads((folder / "bench.json").read_text())
    with np.load(folder / "predictions.npz") as f:
        pred = {k: f[k] for k in f.files}
    names = list(metrics["label_names"])
    test_y, val_y = pred["test_labels"].astype(np.int64), pred["val_labels"].astype(np.int64)
    test = score_predictions(test_y, softmax(pred["test_logits"]), names, n_boot)
    for k in (*METRICS, "ece"):
        stored = float(metrics["test"][k])
        if not math.isclose(test[k], stored, rel_tol=1e-6, abs_tol=1e-9):
            raise BenchmarkError(
                f"{folder}: test {k} from predictions.npz is {test[k]:.6f}, metrics.json {stored:.6f}; "
                "the two files come from different runs. Delete the folder and run the row again."
            )
    tta = score_predictions(test_y, pred["test_tta_probs"], names, n_boot)
    temperature = float(fit_temperature(pred["val_logits"], val_y))
    ece_after = float(expected_calibration_error(softmax(pred["test_logits"] / temperature), test_y))
    val = metrics["validation"]
    return {
        "folder": str(folder),
        "seed": int(metrics["seed"]),
        "model": metrics["model"],
        "recipe": metrics["recipe"],
        "image_size": int(metrics["image_size"]),
        "num_params": int(metrics["num_params"]),
        "gflops": bench.get("gflops"),
        "budget_minutes": bench["budget_minutes"],
        "calibrated_images_per_s": bench["calibrated_images_per_s"],
        "schedule_of": bench.get("schedule_of"),
        "epochs": int(metrics["epochs"]),
        "max_train_samples": bench.get("max_train_samples"),
        "best_epoch": int(metrics["best_epoch"]),
        "train_minutes": float(metrics["train_time_s"]) / 60,
        "wall_minutes": float(metrics["wall_time_s"]) / 60,
        "images_per_s": float(metrics["images_per_s"]),
        "n_test": int(len(test_y)),
        "validation": {k: float(val[k]) for k in METRICS},
        "test": test,
        "test_tta": tta,
        "temperature": temperature,
        "ece_before": test["ece"],
        "ece_after": ece_after,
    }


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and (sample) standard deviation over seeds of the test metrics, plain and with TTA."""
    out: dict[str, Any] = {"n_seeds": len(runs), "seeds": [r["seed"] for r in runs]}
    for part in ("test", "test_tta"):
        for k in METRICS:
            v = np.array([r[part][k] for r in runs], dtype=np.float64)
            out[f"{part}_{k}_mean"] = float(v.mean())
            out[f"{part}_{k}_std"] = float(v.std(ddof=1)) if len(v) > 1 else None
    return out


def collect(results_dir: Path, n_boot: int = 1000) -> dict[str, Any]:
    """Summaries of every complete stored run under ``results_dir``, grouped by row."""
    rows: dict[str, Any] = {}
    if not results_dir.is_dir():
        raise BenchmarkError(
            f"No results in {results_dir}: run benchmarks/accuracy.py (without --report-only)."
        )
    for row_dir in sorted(p for p in results_dir.iterdir() if p.is_dir()):
        runs = [
            summarize_run(d, n_boot)
            for d in sorted(row_dir.glob("seed*"), key=lambda p: int(p.name[4:]))
            if is_complete(d)
        ]
        if not runs:
            continue
        budgets = {r["budget_minutes"] for r in runs}
        if len(budgets) > 1:
            raise BenchmarkError(
                f"{row_dir}: runs with different budgets {sorted(budgets)}; keep one budget."
            )
        spec = ROWS.get(row_dir.name)
        rows[row_dir.name] = {
            "role": spec.role if spec else "other",
            "note": spec.note if spec else "",
            "stem_stride": spec.stem_stride if spec else None,
            "runs": runs,
            "aggregate": aggregate(runs),
        }
    if not rows:
        raise BenchmarkError(f"No complete run under {results_dir}.")
    return rows


def paired_difference(a: dict[str, Any], b: dict[str, Any], n_boot: int = 1000) -> dict[str, list[float]]:
    """Test metrics of run ``a`` minus run ``b`` with the paired 95% bootstrap interval (both scored on the
    same resampled test images): ``{metric: [diff, lo, hi]}``. From the runs' stored test logits."""
    from timm_galaxy_attn.metrics import paired_bootstrap_difference

    preds, labels = [], []
    for run in (a, b):
        with np.load(Path(run["folder"]) / "predictions.npz") as f:
            preds.append(f["test_logits"].argmax(1))
            labels.append(f["test_labels"].astype(np.int64))
    if not np.array_equal(labels[0], labels[1]):
        raise BenchmarkError(
            f"{a['folder']} and {b['folder']} hold different test labels: not the same split; rerun one."
        )
    k = len(a["test"]["per_class"])
    res = paired_bootstrap_difference(labels[0], preds[0], preds[1], n_boot=n_boot, seed=0, num_classes=k)
    return {m: list(res[m]) for m in METRICS}
