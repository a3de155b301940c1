"""benchmarks/finetune_report.py's intervals on inputs whose answer is known: a paired difference that is the
same constant in every resample (the interval is that constant), one that is 0 on average (the interval
holds 0), the t interval over seeds in closed form, and the bootstrap interval of the ROC-AUC."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import load_script

K, N = 4, 40
LABELS = np.arange(N) % K
NAMES = [f"class {i}" for i in range(K)]
T975_1, T975_2 = 12.706204736174698, 4.302652729749464  # Student t 97.5% quantiles, 1 and 2 d.o.f.


@pytest.fixture(scope="module")
def fr():
    return load_script("benchmarks/finetune_report.py", "finetune_report")


def one_hot(preds: np.ndarray, p: float = 0.9) -> np.ndarray:
    """Probabilities with ``p`` on ``preds`` and the rest spread evenly."""
    probs = np.full((len(preds), K), (1 - p) / (K - 1))
    probs[np.arange(len(preds)), preds] = p
    return probs


def stored_run(condition: str, seed: int, preds: np.ndarray) -> dict[str, Any]:
    """One runs.json record as benchmarks/finetune.py stores it (no train.py numbers to check against)."""
    return {
        "condition": condition, "seed": seed, "test_labels": LABELS.tolist(),
        "test_probs": one_hot(preds).tolist(), "label_names": NAMES, "test_stored": {},
        "validation": {"macro_f1": 0.5}, "train_time_s": 60.0, "trainable_params": 10, "best_epoch": 1,
        "command": "train.py", "weights_sha256": None,
    }  # fmt: skip


def test_t_interval_closed_form(fr) -> None:
    assert fr.t_interval([0.03, 0.03, 0.03]) == pytest.approx([0.03, 0.03], abs=1e-15)  # no spread
    # mean 0, sd sqrt(2), n 2: half-width t(0.975, 1) * sqrt(2) / sqrt(2)
    assert fr.t_interval([-1.0, 1.0]) == pytest.approx([-T975_1, T975_1], rel=1e-12)
    half = T975_2 * 0.1 / 3**0.5  # mean 0.2, sd 0.1, n 3
    assert fr.t_interval([0.1, 0.2, 0.3]) == pytest.approx([0.2 - half, 0.2 + half], rel=1e-12)
    assert fr.t_interval([0.5]) is None
    assert fr.mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0) and fr.mean_sd([5.0]) == (5.0, None)


@pytest.mark.slow
def test_auc_interval_of_perfect_and_uninformative_scores(fr) -> None:
    y = np.arange(30) % 2
    perfect = np.stack([1 - 0.4 * y - 0.1, 0.4 * y + 0.1], 1)  # class 1 always scored higher
    assert fr.roc_auc(y, perfect) == 1.0 and fr.auc_interval(y, perfect, n_boot=200) == [1.0, 1.0]
    flat = np.full((30, 2), 0.5)
    assert fr.roc_auc(y, flat) == 0.5 and fr.auc_interval(y, flat, n_boot=200) == [0.5, 0.5]
    assert np.isnan(fr.roc_auc(np.zeros(5, int), flat[:5]))  # one class: undefined, not a number


@pytest.mark.slow
def test_paired_difference_is_exactly_a_constant_when_every_resample_gives_it(fr) -> None:
    """Fine-tuned all right, scratch all wrong: every resample differs by 1 in accuracy, macro-F1 and
    balanced accuracy, so the per-seed interval is [1, 1], and over seeds mean 1, sd 0, t interval [1, 1].
    ROC-AUC: 1 against 1/3 (scratch puts each class's true images level with 2/3 of the others: ties)."""
    right, wrong = LABELS, (LABELS + 1) % K
    runs = [stored_run("scratch", s, wrong) for s in (0, 1, 2)]
    runs += [stored_run("finetune", s, right) for s in (0, 1, 2)]
    summary = fr.summarize({"runs": runs, "setup": {}}, n_boot=100)
    pair = summary["paired_vs_scratch"]["finetune"]
    assert pair["seeds"] == [0, 1, 2]
    for seed in (0, 1, 2):
        for metric in ("accuracy", "macro_f1", "balanced_accuracy"):
            assert pair["per_seed"][seed][metric] == [1.0, 1.0, 1.0], (seed, metric)
        auc_diff, *no_interval = pair["per_seed"][seed]["roc_auc"]
        assert auc_diff == pytest.approx(2 / 3, abs=1e-12) and no_interval == [None, None]
    expected = {"accuracy": 1.0, "macro_f1": 1.0, "balanced_accuracy": 1.0, "roc_auc": 2 / 3}
    for metric, diff in expected.items():
        over = pair["over_seeds"][metric]
        assert (over["mean"], over["sd"], over["wins"]) == pytest.approx((diff, 0.0, 3), abs=1e-12), metric
        assert over["t95"] == pytest.approx([diff, diff], abs=1e-12), metric
    assert summary["conditions"]["finetune"]["mean_sd"]["accuracy"] == [1.0, 0.0]
    assert summary["conditions"]["scratch"]["mean_sd"]["accuracy"] == [0.0, 0.0]


@pytest.mark.slow
def test_paired_interval_holds_zero_when_the_two_are_equally_good(fr) -> None:
    """Identical predictions: difference 0 in every resample. Mirror-image mistakes (each right on the half
    the other gets wrong): difference 0 on the full set, and the interval straddles it."""
    from timm_galaxy_attn.metrics import paired_bootstrap_difference

    first = np.where(np.arange(N) < N // 2, LABELS, (LABELS + 1) % K)
    second = np.where(np.arange(N) >= N // 2, LABELS, (LABELS + 1) % K)
    runs = [stored_run(c, 0, p) for c, p in (("scratch", first), ("finetune", first), ("frozen", second))]
    pairs = fr.summarize({"runs": runs, "setup": {}}, n_boot=200)["paired_vs_scratch"]
    for metric in ("accuracy", "macro_f1", "balanced_accuracy"):
        assert pairs["finetune"]["per_seed"][0][metric] == [0.0, 0.0, 0.0], metric
        diff, lo, hi = pairs["frozen"]["per_seed"][0][metric]
        assert diff == pytest.approx(0.0, abs=1e-12) and lo < 0.0 < hi, (metric, lo, hi)
    assert pairs["frozen"]["over_seeds"]["accuracy"]["t95"] is None  # one seed: no interval over seeds
    # the report's per-seed numbers are the package's paired bootstrap on the same predictions
    ref = paired_bootstrap_difference(LABELS, second, first, n_boot=200, num_classes=K)
    assert pairs["frozen"]["per_seed"][0]["accuracy"] == list(ref["accuracy"])
