"""Accuracy on real SDSS galaxies (gz1_sdss), one CPU budget per run: ours, the paper's setup, timm peers.

    python benchmarks/accuracy.py                      # full mode: 15 min of training per run
    python benchmarks/accuracy.py --quick              # the pipeline end to end in a few minutes
    python benchmarks/accuracy.py --report-only        # rebuild the table from stored results
    python benchmarks/accuracy.py --rows ours_small_32s1 paper_vgg_32 --seeds 0 1 2

Every row trains with ``training/train.py`` in a subprocess (one at a time) on the same ``gz1_sdss`` split
(``--split-seed 0``: grouped, stratified, 80/10/10). The model is chosen on validation inside the run (best
epoch by validation macro-F1); test is scored once.

The budget. ``--budget-minutes`` is training time on a *quiet* copy of this 2-core machine. The machine is
shared, so wall time would give whoever runs on a busy minute fewer epochs. Instead each row's training
throughput is calibrated first (``--calibrate``: all rows together, before any training, into
``calibration.json``; CPU time still inflates when other work shares the cores, so calibrate on a quiet
machine): a few optimizer steps of the row's model, recipe batch size, precision and
input size, timed in process CPU seconds divided by the torch thread count (what a quiet machine gives).
``epochs = round(budget * images_per_s / n_train)`` (the nearest whole epoch); a budget smaller than one
epoch trains one epoch on ``budget * images_per_s`` images (``--max-train-samples``).
The calibration, epochs and measured wall time are stored beside each result, so cost is part of the table.

Model selection is on validation only. Several ``ours_*`` candidates (input size, stem stride, compatibility)
run under the same budget; ``best`` in ``--rows`` is the candidate with the highest validation macro-F1
among the stored results at that moment, ``best_peer`` the best timm peer likewise, and ``best_noattn`` the
ablation of ``best`` (attention removed, classifier on g) trained with the very schedule (epochs) of its
parent: a controlled pair. The extra seeds go to ``best`` and ``best_peer``. The table ends with the
verdict on test: does our best beat the paper's setup and each peer by more than the 95% intervals' overlap?
A diagnostic row (``resnet18_64_our_epochs``) trains the peer on our row's schedule, the same number of epochs
rather than the same time: it separates "a better network" from "a cheaper network that sees more epochs".

After a run, the benchmark loads the run's ``model/`` folder and scores the test set again with D4
test-time augmentation (the 8 rotations/mirrors; under a mirror, the clockwise and anticlockwise
probabilities are swapped back, ``labels.MIRROR_LABEL_SWAPS``). Stored per run under
``benchmarks/results/<mode>/<row>/seed<k>/``: the run's ``metrics.json``, ``predictions.npz`` (validation
and test logits, test D4 probabilities, labels; a few tens of kB) and ``bench.json`` (budget, calibration,
epochs, GFLOPs, command). The table is built from those files only (``--report-only``): accuracy,
balanced accuracy and macro-F1 with 95% bootstrap intervals (``metrics.bootstrap_intervals``), their D4 TTA
values, and ECE on test before / after temperature scaling fitted on validation (``metrics.fit_temperature``).
Rows run with several seeds give mean and standard deviation. Run folders (checkpoints, TensorBoard) stay
outside the repository (``--runs-dir``); rows whose stored result exists are skipped (resume), and an
interrupted run continues with ``train.py --resume``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = ROOT / "training" / "train.py"
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_RUNS_DIR = Path(os.environ.get("GALAXY_ATTN_RUNS", ROOT / "runs" / "benchmarks")).expanduser()
DATASET = "gz1_sdss"
SPLIT_SEED = 0
FULL_BUDGET_MIN = 15.0
QUICK_BUDGET_MIN = 0.75
METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
METRIC_TITLES = {"accuracy": "accuracy", "balanced_accuracy": "balanced acc.", "macro_f1": "macro-F1"}


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table: a model, a recipe and its arguments to ``training/train.py``."""

    name: str
    role: str  # "paper" | "ours" | "peer" | "ablation" | "diagnostic"
    model: str
    recipe: str
    image_size: int
    stem_stride: int | None = None
    extra: tuple[str, ...] = ()
    note: str = ""
    parent: str | None = None  # ablation and diagnostic rows: the row whose schedule (epochs) they copy
    budget_minutes: float | None = None  # a row's own training budget (None: the run's --budget-minutes)

    def train_args(self) -> list[str]:
        args = ["--model", self.model, "--recipe", self.recipe, "--image-size", str(self.image_size)]
        if self.stem_stride is not None:
            args += ["--stem-stride", str(self.stem_stride)]
        return args + list(self.extra)

    def model_kwargs(self) -> dict[str, Any]:
        """timm.create_model keyword arguments matching train_args (for calibration and FLOPs)."""
        kw: dict[str, Any] = {}
        if self.stem_stride is not None:
            kw["stem_stride"] = self.stem_stride
        flags = list(self.extra)
        if "--no-attention" in flags:
            kw["attention"] = False
        for flag, key in (("--compatibility", "compatibility"), ("--normalize", "normalize")):
            if flag in flags:
                kw[key] = flags[flags.index(flag) + 1]
        return kw


# The candidates ``ours_*`` run under the same budget; the best on validation (``best``) gets the ablation,
# the extra seeds and ships. Peers run at 64 px: their stems downsample 4x at once (32 px leaves resnet18 a
# 1x1 final map).
_ROWS: tuple[Row, ...] = (
    Row("ours_small_32s1", "ours", "galaxy_attn_vgg_small", "default", 32, 1),
    Row("ours_small_64s2", "ours", "galaxy_attn_vgg_small", "default", 64, 2, (), "strided stem"),
    Row("ours_small_128s4", "ours", "galaxy_attn_vgg_small", "default", 128, 4, (), "strided stem"),
    # A quarter of the compute of ours_small_128s4: about three times the epochs in the budget.
    Row("ours_tiny_128s4", "ours", "galaxy_attn_vgg_tiny_s4", "default", 128, 4, (), "quarter widths"),
    # The rare classes (Don't know, Merger: 1-2% of the images) drawn about as often as the others.
    Row(
        "ours_tiny_128s4_sampler",
        "ours",
        "galaxy_attn_vgg_tiny_s4",
        "default",
        128,
        4,
        ("--balance", "sampler"),
        "ours_tiny_128s4 with a class-balanced sampler, on its schedule",
        parent="ours_tiny_128s4",
    ),
    Row(
        "ours_small_32s1_dp",
        "ours",
        "galaxy_attn_vgg_small",
        "default",
        32,
        1,
        ("--compatibility", "dp"),
        "dot-product compatibility: g shapes the maps",
    ),
    # The paper's network itself (paper widths, stem stride 1, 32 px) on our recipe: 23.5 GFLOP per training
    # image buys 3 epochs in 15 min, so it has a budget of its own (the shipped galaxy_attn_vgg.gz1_sdss).
    Row(
        "ours_vgg_32s1",
        "ours",
        "galaxy_attn_vgg",
        "default",
        32,
        1,
        note="the paper's network on our recipe, 45-min budget",
        budget_minutes=45.0,
    ),
    Row("paper_vgg_32", "paper", "galaxy_attn_vgg", "paper", 32, 1, (), "Misquith (2023) setup"),
    Row("resnet18_64", "peer", "resnet18", "default", 64),
    Row("vgg16_bn_64", "peer", "vgg16_bn", "default", 64),
    Row("efficientnet_b0_64", "peer", "efficientnet_b0", "default", 64),
    # Equal images instead of equal time: is a peer ahead because it is a better network, or because it is
    # cheaper and sees more epochs in the budget? Not a candidate and not in the verdict.
    Row(
        "resnet18_64_our_epochs",
        "diagnostic",
        "resnet18",
        "default",
        64,
        note="resnet18 on ours_small_32s1's schedule: the same epochs, a fraction of the time",
        parent="ours_small_32s1",
    ),
)


def _ablation_of(row: Row) -> Row:
    """The ``ours_*`` row with attention removed (the classifier sees g), same model, input and recipe."""
    return dataclasses.replace(
        row,
        name=f"ablation_{row.name.removeprefix('ours_')}_noattn",
        role="ablation",
        extra=(*row.extra, "--no-attention"),
        note=f"{row.name} without attention (classifier on g)",
        parent=row.name,
    )


ROWS: dict[str, Row] = {r.name: r for r in _ROWS}
ROWS.update({a.name: a for a in (_ablation_of(r) for r in _ROWS if r.role == "ours")})
# Names resolved when their turn comes, from the stored results (validation macro-F1 of seed 0).
ALIASES = ("best", "best_peer", "best_noattn")
DEFAULT_OUR_BEST = "ours_small_32s1"  # ``best`` before any candidate has a stored result
DEFAULT_BEST_PEER = "resnet18_64"
# Priority order of the full benchmark (what runs first when time is short); then the extra seeds.
DEFAULT_ORDER = (
    "ours_small_32s1",
    "resnet18_64",
    "ours_small_128s4",
    "ours_tiny_128s4",
    "paper_vgg_32",
    "efficientnet_b0_64",
    "best_noattn",
    "vgg16_bn_64",
)
SEEDED_ROWS = ("best", "best_peer")
# Quick mode: the cheap rows only (the full-width VGG needs minutes for one epoch and its D4 evaluation).
QUICK_ORDER = ("ours_small_32s1", "resnet18_64", "best_noattn")


class BenchmarkError(RuntimeError):
    """A stored result or an argument that cannot be used (the message says what to do)."""


# ----------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON in ``path``, written atomically."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def write_text(path: Path, text: str) -> None:
    """``text`` in ``path``, written atomically (parent folders created)."""
    from timm_galaxy_attn._io import atomic_write

    atomic_write(path, lambda tmp: tmp.write_text(text))


def result_dir(results_dir: Path, row: str, seed: int) -> Path:
    return results_dir / row / f"seed{seed}"


def is_complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in ("metrics.json", "predictions.npz", "bench.json"))


def validation_macro_f1(results_dir: Path, row: str, seed: int = 0) -> float | None:
    """The stored validation macro-F1 of ``row`` (None without a complete stored result)."""
    folder = result_dir(results_dir, row, seed)
    if not is_complete(folder):
        return None
    return float(json.loads((folder / "metrics.json").read_text())["validation"]["macro_f1"])


def best_row(results_dir: Path, role: str) -> str | None:
    """The ``role`` row ("ours", "peer") with the highest validation macro-F1 of the stored seed-0 results."""
    scores = {n: validation_macro_f1(results_dir, n) for n, r in ROWS.items() if r.role == role}
    scores = {n: v for n, v in scores.items() if v is not None}
    return max(scores, key=lambda n: (scores[n], n)) if scores else None


def resolve_row(name: str, results_dir: Path) -> str:
    """A row name, or an alias (``best``, ``best_peer``, ``best_noattn``) resolved on validation now."""
    if name == "best":
        return best_row(results_dir, "ours") or DEFAULT_OUR_BEST
    if name == "best_peer":
        return best_row(results_dir, "peer") or DEFAULT_BEST_PEER
    if name == "best_noattn":
        return _ablation_of(ROWS[resolve_row("best", results_dir)]).name
    if name not in ROWS:
        raise BenchmarkError(
            f"Unknown row {name!r}; see --list for the rows (aliases: {', '.join(ALIASES)})."
        )
    return name


# ----------------------------------------------------------------------------------------------------------
# Scoring stored results (no model, no data: what --report-only and the tests use)
# ----------------------------------------------------------------------------------------------------------


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


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


# ----------------------------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _with_ci(part: dict[str, Any], k: str) -> str:
    lo, hi = part["ci95"][k]
    return f"{_pct(part[k])} [{_pct(lo)}, {_pct(hi)}]"


def _row_order(rows: dict[str, Any]) -> list[str]:
    rank = {"ours": 0, "paper": 1, "peer": 2, "ablation": 3, "diagnostic": 4, "other": 5}
    return sorted(
        rows, key=lambda n: (rank.get(rows[n]["role"], 9), -rows[n]["runs"][0]["validation"]["macro_f1"])
    )


def markdown_table(rows: dict[str, Any]) -> str:
    """The README table: seed-0 (first stored seed) run per row with 95% intervals; TTA; calibration."""
    head = (
        "| row | model | input | params (M) | GFLOPs | epochs | train min | img/s run / quiet | "
        "val macro-F1 | test accuracy [95% CI] | balanced acc. [95% CI] | macro-F1 [95% CI] | "
        "D4 TTA acc. / bal. / F1 | ECE -> after T |\n|" + "---|" * 14 + "\n"
    )
    lines = []
    for name in _row_order(rows):
        r = rows[name]["runs"][0]
        stride = rows[name]["stem_stride"]
        size = f"{r['image_size']} px" + (f", stride {stride}" if stride and stride > 1 else "")
        epochs = str(r["epochs"]) + (f" ({r['max_train_samples']} img)" if r["max_train_samples"] else "")
        tta = r["test_tta"]
        # rows on another row's schedule were not calibrated: their epochs are the parent's
        quiet = "-" if r.get("schedule_of") else f"{r['calibrated_images_per_s']:.0f}"
        lines.append(
            f"| {name} | {r['model']} ({r['recipe']}) | {size} | {r['num_params'] / 1e6:.2f} | "
            f"{r['gflops']:.3g} | {epochs} | {r['train_minutes']:.1f} | "
            f"{r['images_per_s']:.0f} / {quiet} | "
            f"{_pct(r['validation']['macro_f1'])} | {_with_ci(r['test'], 'accuracy')} | "
            f"{_with_ci(r['test'], 'balanced_accuracy')} | {_with_ci(r['test'], 'macro_f1')} | "
            f"{_pct(tta['accuracy'])} / {_pct(tta['balanced_accuracy'])} / {_pct(tta['macro_f1'])} | "
            f"{r['ece_before']:.3f} -> {r['ece_after']:.3f} (T={r['temperature']:.2f}) |"
        )
    table = head + "\n".join(lines) + "\n"
    seeded = [n for n in _row_order(rows) if rows[n]["aggregate"]["n_seeds"] > 1]
    if seeded:
        table += (
            "\nMean +- standard deviation over seeds (test, %):\n\n| row | seeds | accuracy | balanced acc. "
            "| "
            "macro-F1 | TTA macro-F1 |\n|---|---|---|---|---|---|\n"
        )
        for name in seeded:
            a = rows[name]["aggregate"]

            def ms(key: str, a: dict[str, Any] = a) -> str:
                return f"{_pct(a[key + '_mean'])} +- {_pct(a[key + '_std'])}"

            table += (
                f"| {name} | {', '.join(map(str, a['seeds']))} | {ms('test_accuracy')} | "
                f"{ms('test_balanced_accuracy')} | {ms('test_macro_f1')} | {ms('test_tta_macro_f1')} |\n"
            )
    return table


def _compare(ours: dict[str, Any], other: dict[str, Any], k: str) -> str:
    """'beats' when our 95% interval lies wholly above theirs, else 'higher (overlap)' or 'not higher'."""
    (lo, _), (_, hi) = ours["ci95"][k], other["ci95"][k]
    if lo > hi:
        return "beats"
    return "higher (intervals overlap)" if ours[k] > other[k] else "not higher"


def verdict(rows: dict[str, Any]) -> dict[str, Any] | None:
    """Issue 7's target on test, for the ``ours`` row best on validation: against the paper's setup and
    every peer, on balanced accuracy and macro-F1, does its 95% interval lie above theirs?"""
    ours = [n for n in rows if rows[n]["role"] == "ours"]
    others = [n for n in _row_order(rows) if rows[n]["role"] in ("paper", "peer")]
    if not ours or not others:
        return None
    best = max(ours, key=lambda n: (rows[n]["runs"][0]["validation"]["macro_f1"], n))
    mine = rows[best]["runs"][0]["test"]
    against = {
        n: {k: _compare(mine, rows[n]["runs"][0]["test"], k) for k in ("balanced_accuracy", "macro_f1")}
        for n in others
    }
    met = all(v == "beats" for cmp in against.values() for v in cmp.values())
    paired = {n: paired_difference(rows[best]["runs"][0], rows[n]["runs"][0]) for n in others}
    return {"best": best, "against": against, "target_met": met, "paired": paired}


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


def markdown_verdict(rows: dict[str, Any], v: dict[str, Any]) -> str:
    mine = rows[v["best"]]["runs"][0]["test"]
    out = (
        f"\nTarget (test, seed 0): our row best on validation, **{v['best']}**, against the paper's setup "
        "and each peer; 'beats' = its 95% interval lies wholly above the other's. Target "
        f"{'**met**' if v['target_met'] else '**not met**'}.\n\n"
        "Paired: ours minus theirs with the paired 95% bootstrap interval (both scored on the same "
        "resampled test images, so the galaxies both get right or wrong cancel); an interval above 0 "
        "separates them.\n\n"
        "| against | balanced acc. (ours vs theirs) | macro-F1 (ours vs theirs) | paired: balanced acc. | "
        "paired: macro-F1 |\n|---|---|---|---|---|\n"
    )
    for name, cmp in v["against"].items():
        theirs = rows[name]["runs"][0]["test"]
        cells = [
            f"{cmp[k]}: {_with_ci(mine, k)} vs {_with_ci(theirs, k)}"
            for k in ("balanced_accuracy", "macro_f1")
        ]
        for k in ("balanced_accuracy", "macro_f1"):
            d, lo, hi = v["paired"][name][k]
            cells.append(f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]")
        out += f"| {name} | " + " | ".join(cells) + " |\n"
    return out


def chirality(confusion: Sequence[Sequence[int]], swaps: dict[int, int]) -> float | None:
    """Of the true spirals (the classes a mirror swaps) called a spiral, the share with the right winding
    direction: 0.5 is a model blind to chirality. None without such predictions."""
    cm = np.asarray(confusion)
    spiral = sorted(swaps)
    called = cm[np.ix_(spiral, spiral)]
    return float(np.trace(called) / called.sum()) if called.sum() else None


def markdown_per_class(rows: dict[str, Any]) -> str:
    """Test F1 per class (seed 0) and the chirality share: where each row wins and loses."""
    from timm_galaxy_attn.labels import MIRROR_LABEL_SWAPS

    names = list(next(iter(rows.values()))["runs"][0]["test"]["per_class"])
    swaps = MIRROR_LABEL_SWAPS.get(DATASET, {})
    support = [next(iter(rows.values()))["runs"][0]["test"]["per_class"][c]["support"] for c in names]
    out = (
        "\nPer-class test F1 (seed 0; support in brackets) and chirality: of the true clockwise and "
        "anticlockwise spirals called a spiral, the share given the right winding (50 = blind to it).\n\n"
        "| row | "
        + " | ".join(f"{c} ({n})" for c, n in zip(names, support, strict=True))
        + " | chirality |\n"
        "|---|" + "---:|" * (len(names) + 1) + "\n"
    )
    for name in _row_order(rows):
        test = rows[name]["runs"][0]["test"]
        share = chirality(test["confusion_matrix"], swaps) if swaps else None
        cells = [_pct(test["per_class"][c]["f1"]) for c in names]
        out += f"| {name} | " + " | ".join(cells) + f" | {'-' if share is None else _pct(share)} |\n"
    return out


def report(results_dir: Path, n_boot: int = 1000, quiet: bool = False) -> dict[str, Any]:
    """Build ``results.json`` and ``results.md`` in ``results_dir`` from the stored runs; print the table."""
    rows = collect(results_dir, n_boot)
    first = next(iter(rows.values()))["runs"][0]
    budget = first["budget_minutes"]
    own = {
        n: r["runs"][0]["budget_minutes"] for n, r in rows.items() if r["runs"][0]["budget_minutes"] != budget
    }
    own_text = "".join(f" ({n}: {b:g} min)" for n, b in own.items())
    header = (
        f"gz1_sdss (real SDSS cutouts, Galaxy Zoo 1 labels), split seed {SPLIT_SEED} (grouped, stratified "
        f"80/10/10), test n={first['n_test']}. Budget: {budget:g} min of training per run{own_text} on a "
        "quiet 2-core CPU (calibrated throughput -> epochs). Best epoch chosen on validation macro-F1; test "
        "scored once. "
        "Intervals: 95% bootstrap (1000 resamples). D4 TTA: 8 rotations/mirrors, mirrored views with the "
        "clockwise/anticlockwise probabilities swapped back. ECE (15 bins) on test before -> after "
        "temperature scaling fitted on validation. train min and img/s run: wall time of the run (slower "
        "when other work shares the machine, or with one thread per run when two runs share the 2 cores); "
        "img/s quiet: the calibrated throughput that set the epochs ('-': the row trains on the schedule of "
        "another row: the ablation on its parent's, the diagnostic on ours_small_32s1's). GFLOPs: forward, "
        "one image.\n\n"
    )
    md = header + markdown_table(rows) + markdown_per_class(rows)
    target = verdict(rows)
    if target is not None:
        md += markdown_verdict(rows, target)
    out = {
        "dataset": DATASET,
        "split_seed": SPLIT_SEED,
        "budget_minutes": budget,
        "rows": rows,
        "verdict": target,
    }
    write_json(results_dir / "results.json", out)
    write_text(results_dir / "results.md", md)
    if not quiet:
        print(md)
        print(f"Written: {results_dir / 'results.md'}, {results_dir / 'results.json'}")
    return out


# ----------------------------------------------------------------------------------------------------------
# Calibration, FLOPs, TTA (need torch and the model)
# ----------------------------------------------------------------------------------------------------------


def _recipe(name: str) -> dict[str, Any]:
    from timm_galaxy_attn.training import RECIPES  # the one definition of the recipes (train.py's)

    return RECIPES[name]


def build_model(row: Row, num_classes: int):
    import timm

    import timm_galaxy_attn  # noqa: F401 - registers galaxy_attn_vgg*

    return timm.create_model(row.model, pretrained=False, num_classes=num_classes, **row.model_kwargs())


def forward_gflops(row: Row, num_classes: int) -> float:
    """Forward FLOPs of one image at the row's input size (torch's FlopCounterMode: 2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(row, num_classes).eval()
    x = torch.randn(1, 3, row.image_size, row.image_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 1e9


def calibrate(row: Row, num_classes: int, images: int = 512, warmup: int = 3) -> float:
    """Training images per second of ``row`` on a quiet machine: CPU seconds of a few optimizer steps
    (about ``images`` images) of the recipe's batch, precision and memory format, over the thread count."""
    import torch

    recipe = _recipe(row.recipe)
    torch.manual_seed(0)
    model = build_model(row, num_classes).train()
    channels_last = bool(recipe["channels_last"])
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if recipe["optimizer"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    bs = int(recipe["batch_size"])
    # about ``images`` timed images whatever the batch size. The first steps of a model pay for oneDNN kernel
    # creation: with one warmup step, efficientnet_b0 / resnet18 calibrated 2-5x below their training speed.
    steps = max(4, images // bs)
    x = torch.randn(bs, 3, row.image_size, row.image_size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (bs,))
    from timm_galaxy_attn.device import accelerate_mixed_precision

    bf16 = accelerate_mixed_precision(recipe["mixed_precision"], cpu=True) == "bf16"  # as train.py does

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    t0 = time.process_time()
    for _ in range(steps):
        step()
    cpu = time.process_time() - t0
    return steps * bs / (cpu / torch.get_num_threads())


def calibration(
    results_dir: Path, rows: Sequence[Row], num_classes: int, redo: bool = False
) -> dict[str, float]:
    """Calibrated images/s per row, kept in ``results_dir/calibration.json``. Rows missing there (all of
    ``rows`` with ``redo``; other rows' entries are kept) are measured now, one after the other: rows
    calibrated together share the machine's state.
    """
    path = results_dir / "calibration.json"
    known = json.loads(path.read_text()) if path.is_file() else {}
    if redo:
        known = {k: v for k, v in known.items() if k not in {row.name for row in rows}}
    for row in rows:
        if row.name not in known:
            print(f"[{row.name}] calibrating training throughput ...", flush=True)
            known[row.name] = calibrate(row, num_classes)
            print(f"[{row.name}] {known[row.name]:.1f} img/s", flush=True)
            write_json(path, known)
    return known


@dataclasses.dataclass
class SplitData:
    """The decoded gz1_sdss split, kept per data config (decoding is the slow part)."""

    dsdict: Any
    cache: dict[str, Any] = dataclasses.field(default_factory=dict)

    def tensors(self, split: str, data_config: dict[str, Any]):
        from timm_galaxy_attn.data import prepare_tensors

        key = json.dumps([split, data_config], sort_keys=True, default=str)
        if key not in self.cache:
            self.cache[key] = prepare_tensors(self.dsdict[split], data_config)
        return self.cache[key]


def load_split() -> SplitData:
    from timm_galaxy_attn.data import load_galaxy_dataset

    return SplitData(load_galaxy_dataset(DATASET, seed=SPLIT_SEED))


def d4_probs(
    model,
    x_uint8,
    data_config: dict[str, Any],
    mirror_swaps: dict[int, int],
    bf16: bool,
    batch: int = 128,
    channels_last: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(plain logits, D4-averaged probabilities) of uint8 images; mirrored views get the label swap undone."""
    import torch

    from timm_galaxy_attn.data import normalize_batch
    from timm_galaxy_attn.tta import d4_probs as d4_stack
    from timm_galaxy_attn.tta import mirror_permutation

    perm = mirror_permutation(model.num_classes, mirror_swaps)
    fmt = torch.channels_last if channels_last else torch.contiguous_format  # as in training: same numbers
    model = model.eval().to(memory_format=fmt)
    view_logits: list[torch.Tensor] = []  # the current batch's, in d4_views order (identity first)

    def probs_of(view: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            view_logits.append(model(view.contiguous(memory_format=fmt)).float())
        return view_logits[-1].double().softmax(1)

    plain, mean = [], []
    with torch.inference_mode():
        for i in range(0, len(x_uint8), batch):
            view_logits.clear()
            x = normalize_batch(x_uint8[i : i + batch], data_config)
            mean.append(d4_stack(probs_of, x, perm).mean(0))
            plain.append(view_logits[0])
    return torch.cat(plain).numpy(), torch.cat(mean).numpy()


# ----------------------------------------------------------------------------------------------------------
# Running rows
# ----------------------------------------------------------------------------------------------------------


def plan_epochs(budget_minutes: float, images_per_s: float, n_train: int) -> tuple[int, int | None]:
    """(epochs, max_train_samples or None) that spend ``budget_minutes`` at ``images_per_s``."""
    images = budget_minutes * 60 * images_per_s
    if images >= n_train:
        return max(1, int(math.floor(images / n_train + 0.5))), None  # nearest whole epoch
    return 1, max(int(images), 64)


def run_row(
    row: Row,
    seed: int,
    budget_minutes: float,
    results_dir: Path,
    runs_dir: Path,
    data: SplitData,
) -> Path:
    """Calibrate, train (or resume) ``row`` with ``seed``, add D4 TTA, store the small result files."""
    from timm_galaxy_attn.labels import MIRROR_LABEL_SWAPS
    from timm_galaxy_attn.catalog import load_model

    budget_minutes = row.budget_minutes or budget_minutes
    dest = result_dir(results_dir, row.name, seed)
    run_dir = runs_dir / results_dir.name / row.name / f"seed{seed}"
    names = data.dsdict["train"].features["label"].names
    n_train = len(data.dsdict["train"])
    plan_file = run_dir.parent / f"seed{seed}.plan.json"
    if plan_file.is_file():  # a resumed run keeps its plan
        plan = json.loads(plan_file.read_text())
    else:
        schedule_of = row.parent  # a controlled comparison: the parent row's very schedule, one change
        if schedule_of:
            parent = result_dir(results_dir, schedule_of, seed) / "bench.json"
            if not parent.is_file():
                raise BenchmarkError(
                    f"{row.name} trains on the schedule of {schedule_of} (seed {seed}): run that row first."
                )
            schedule = json.loads(parent.read_text())
            ips, epochs, max_samples = None, schedule["epochs"], schedule["max_train_samples"]  # uncalibrated
        else:
            ips = calibration(results_dir, [row], len(names))[row.name]
            epochs, max_samples = plan_epochs(budget_minutes, ips, n_train)
        plan = {
            "budget_minutes": budget_minutes,
            "calibrated_images_per_s": ips,
            "epochs": epochs,
            "max_train_samples": max_samples,
            "gflops": forward_gflops(row, len(names)),
            "n_train": n_train,
            **({"schedule_of": schedule_of} if schedule_of else {}),
        }
        write_json(plan_file, plan)
    cmd = [
        sys.executable,
        str(TRAIN_SCRIPT),
        "--dataset",
        DATASET,
        "--split-seed",
        str(SPLIT_SEED),
        "--seed",
        str(seed),
        "--epochs",
        str(plan["epochs"]),
        *row.train_args(),
        "--output-dir",
        str(run_dir),
    ]
    if plan["max_train_samples"]:
        cmd += ["--max-train-samples", str(plan["max_train_samples"])]
    if row.recipe == "default":  # the recipe's 1-epoch warmup would take a short budget's whole run
        cmd += ["--warmup-epochs", f"{min(1.0, plan['epochs'] / 10):g}"]
    if row.role in ("ours", "paper"):  # keep every epoch's checkpoint: attention across epochs
        cmd += ["--keep-checkpoints", "1000"]
    if (run_dir / "train_config.json").is_file():
        cmd.append("--resume")
    speed = (
        f"the schedule of {plan['schedule_of']}"
        if plan.get("schedule_of")
        else f"{plan['calibrated_images_per_s']:.0f} img/s calibrated"
    )
    print(
        f"[{row.name} seed {seed}] {speed} -> {plan['epochs']} epoch(s)"
        f"{' of ' + str(plan['max_train_samples']) + ' images' if plan['max_train_samples'] else ''}; "
        f"log: {run_dir}.log",
        flush=True,
    )
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1")
    t0 = time.time()
    returncode = 0
    if not (run_dir / "metrics.json").is_file():  # else trained already: only the scoring below is left
        with open(f"{run_dir}.log", "a") as log:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
        returncode = proc.returncode
    if returncode != 0 or not (run_dir / "metrics.json").is_file():
        tail = Path(f"{run_dir}.log").read_text()[-2000:]
        raise BenchmarkError(f"{row.name} seed {seed}: train.py failed (exit {returncode}):\n{tail}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print(
        f"[{row.name} seed {seed}] trained in {(time.time() - t0) / 60:.1f} min; test macro-F1 "
        f"{metrics['test']['macro_f1']:.4f}; D4 TTA ...",
        flush=True,
    )

    loaded = load_model(run_dir / "model")
    data_config = metrics["data_config"]
    bf16 = metrics["mixed_precision"] == "bf16"
    swaps = MIRROR_LABEL_SWAPS.get(DATASET, {})
    with np.load(run_dir / "predictions.npz") as f:
        pred = {k: f[k] for k in ("val_logits", "val_labels", "test_logits", "test_labels")}
    tta: dict[str, np.ndarray] = {}
    for split, short in (("test", "test"),):  # D4 on test only: 8 forward passes per image are not free
        x, y = data.tensors(split, data_config)
        if not np.array_equal(y.numpy(), pred[f"{short}_labels"]):
            raise BenchmarkError(
                f"{run_dir}: {split} labels differ from the benchmark's split; rerun the row."
            )
        channels_last = bool(metrics.get("config", {}).get("channels_last"))
        plain, probs = d4_probs(loaded.model, x, data_config, swaps, bf16, channels_last=channels_last)
        ref = pred[f"{short}_logits"]
        drift = float(np.abs(plain - ref).max())
        if drift > 0.05 * float(np.abs(ref).max()) + 0.1:  # bf16 rounding only
            raise BenchmarkError(
                f"{run_dir}: reloaded model's {split} logits differ by {drift:.3f} from the run's."
            )
        tta[f"{short}_tta_probs"] = probs.astype(np.float32)
    from timm_galaxy_attn._io import replace_dir

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        shutil.copy2(run_dir / "metrics.json", tmp / "metrics.json")
        np.savez_compressed(tmp / "predictions.npz", **pred, **tta)
        write_json(
            tmp / "bench.json",
            {
                **plan,
                "row": dataclasses.asdict(row),
                "seed": seed,
                "command": " ".join(cmd[1:]).replace(str(ROOT) + "/", ""),
                "run_dir": str(run_dir),
                "benchmark_wall_minutes": (time.time() - t0) / 60,
            },
        )
        replace_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        help=f"training minutes per run (default {FULL_BUDGET_MIN:g})",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_BUDGET_MIN:g} min per run, one seed: proves the pipeline",
    )
    p.add_argument(
        "--rows",
        nargs="+",
        default=None,
        help=f"rows or aliases ({', '.join(ALIASES)}) to run, in order, each with every --seeds "
        f"(default: {' '.join(DEFAULT_ORDER)} with seed 0, then {' and '.join(SEEDED_ROWS)} with --seeds)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help="seeds (default: 0 with --rows or --quick; 0 1 2 for the seeded rows of the default order)",
    )
    p.add_argument(
        "--results-dir", type=Path, default=None, help="default benchmarks/results/accuracy[_quick|_<B>min]"
    )
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=DEFAULT_RUNS_DIR,
        help="run folders (not kept in git: runs/ is ignored)",
    )
    p.add_argument(
        "--report-only", action="store_true", help="rebuild the table from stored results, train nothing"
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="only measure the throughput of the rows (all, or --rows), together, into calibration.json "
        "(their entries rewritten, others kept); later runs of those rows take their epochs from it",
    )
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--list", action="store_true", help="print the rows and their train.py arguments")
    return p.parse_args(argv)


def default_results_dir(budget: float, quick: bool) -> Path:
    if quick:
        return RESULTS / "accuracy_quick"
    return RESULTS / ("accuracy" if budget == FULL_BUDGET_MIN else f"accuracy_{budget:g}min")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for row in ROWS.values():
            print(f"{row.name:30s} {row.role:9s} {' '.join(row.train_args())}")
        return 0
    budget = args.budget_minutes or (QUICK_BUDGET_MIN if args.quick else FULL_BUDGET_MIN)
    results_dir = args.results_dir or default_results_dir(budget, args.quick)
    if args.report_only:
        report(results_dir, args.n_boot)
        return 0
    order = args.rows or list(QUICK_ORDER if args.quick else DEFAULT_ORDER)
    unknown = [r for r in order if r not in ROWS and r not in ALIASES]
    if unknown:
        raise BenchmarkError(
            f"Unknown row(s) {unknown}; see --list for the rows (aliases: {', '.join(ALIASES)})."
        )
    if args.rows or args.quick:
        jobs = [(r, s) for r in order for s in args.seeds or [0]]
    else:
        seeds = [s for s in args.seeds or [0, 1, 2] if s != 0]
        jobs = [(r, 0) for r in order] + [(r, s) for r in SEEDED_ROWS for s in seeds]
    data = None
    if args.calibrate:
        from timm_galaxy_attn.labels import DATASET_CLASSES

        # rows on another row's schedule (ablations, the diagnostic) take no calibration
        rows = [ROWS[r] for r in (ROWS if not args.rows else order) if r in ROWS and not ROWS[r].parent]
        calibration(results_dir, rows, len(DATASET_CLASSES[DATASET]), redo=True)
        return 0
    for alias, seed in jobs:
        name = resolve_row(alias, results_dir)  # aliases: chosen on validation when their turn comes
        if name != alias:
            print(f"[{alias}] = {name} (validation macro-F1 of the stored results)", flush=True)
        dest = result_dir(results_dir, name, seed)
        if is_complete(dest):
            print(f"[{name} seed {seed}] stored result exists: skipped ({dest})")
            continue
        data = data or load_split()
        run_row(ROWS[name], seed, budget, results_dir, args.runs_dir, data)
        report(results_dir, args.n_boot, quiet=True)
    report(results_dir, args.n_boot)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
