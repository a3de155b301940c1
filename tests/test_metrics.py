"""Tests of timm_galaxy_attn.metrics: values by hand and against scikit-learn, offline evaluate modules,
calibration (ECE, temperature scaling) and bootstrap intervals."""

import json
import warnings

import numpy as np
import pytest
from scipy.special import softmax
from sklearn import metrics as skm

from timm_galaxy_attn.metrics import (
    METRIC_NAMES,
    bootstrap_intervals,
    compute_classification_metrics,
    expected_calibration_error,
    fit_temperature,
    load_metric,
    metric_script_path,
    paired_bootstrap_difference,
)


def _softmax(z):
    return softmax(z, axis=1)


def test_hand_computed_example():
    refs = [0, 0, 1, 1, 2]
    preds = [0, 1, 1, 1, 0]
    out = compute_classification_metrics(refs, preds, label_names=["E", "S", "M"])
    assert out["n"] == 5
    assert out["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert out["accuracy"] == pytest.approx(0.6)
    # F1: E 2*1/(2+1+1)=0.5, S 2*2/(4+1+0)=0.8, M never right -> 0
    assert out["per_class"]["E"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert out["per_class"]["S"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert out["per_class"]["M"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})
    assert out["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert out["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert "ece" not in out
    json.dumps(out)  # plain Python numbers only
    assert out["accuracy"] == pytest.approx(
        np.trace(out["confusion_matrix"]) / np.sum(out["confusion_matrix"])
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_with_absent_classes(seed):
    rng = np.random.default_rng(seed)
    k = 6
    refs = rng.integers(0, 4, 300)  # classes 4 and 5 never true
    preds = np.where(rng.random(300) < 0.6, refs, rng.integers(0, 5, 300))  # class 4 predicted, 5 never
    names = [f"c{i}" for i in range(k)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning spam from our side
        out = compute_classification_metrics(refs, preds, label_names=names)
    labels = list(range(k))
    p, r, f, s = skm.precision_recall_fscore_support(refs, preds, labels=labels, zero_division=0)
    for i, name in enumerate(names):
        assert out["per_class"][name] == pytest.approx(
            {"precision": p[i], "recall": r[i], "f1": f[i], "support": int(s[i])}
        )
    assert out["per_class"]["c5"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(refs, preds))
    assert out["macro_f1"] == pytest.approx(skm.f1_score(refs, preds, average="macro", zero_division=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns that y_pred holds a class absent from y_true
        assert out["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(refs, preds))
    assert out["confusion_matrix"] == skm.confusion_matrix(refs, preds, labels=labels).tolist()
    assert all(np.isfinite(v) for v in (out["accuracy"], out["macro_f1"], out["balanced_accuracy"]))


def test_evaluate_modules_load_offline_and_are_cached():
    import evaluate

    for name in METRIC_NAMES:
        path = metric_script_path(name)
        assert path.is_file()
        module = load_metric(name)
        assert isinstance(module, evaluate.EvaluationModule)
        assert load_metric(name) is module  # one load per process
    # plain evaluate.load on the script works too (what a user of the wheel would do)
    acc = evaluate.load(str(metric_script_path("accuracy")), keep_in_memory=True)
    assert acc.compute(references=[0, 1, 1, 2], predictions=[0, 1, 2, 2]) == {"accuracy": 0.75}
    pc = load_metric("per_class").compute(references=[0, 1], predictions=[0, 0], num_classes=3)
    assert pc["support"] == [1, 1, 0] and pc["confusion_matrix"] == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="unknown metric"):
        load_metric("top5")


def test_ece_hand_example_and_module_agree():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 1])
    # bins of 0.1: {0.9, 0.9} acc 0.5 conf 0.9 -> 2/4*0.4; {0.6} acc 1 -> 1/4*0.4; {0.7} acc 1 -> 1/4*0.3
    expected = 0.5 * 0.4 + 0.25 * 0.4 + 0.25 * 0.3
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(expected)
    out = load_metric("ece").compute(references=labels, predictions=probs, n_bins=10)
    assert out["ece"] == pytest.approx(expected)
    full = compute_classification_metrics(labels, probs.argmax(1), probs, n_bins=10)
    assert full["ece"] == pytest.approx(expected)


def test_ece_near_zero_when_calibrated_and_large_when_overconfident():
    rng = np.random.default_rng(0)
    n, k = 20000, 4
    conf = rng.uniform(1 / k, 1.0, n)
    pred = rng.integers(0, k, n)
    probs = np.tile(((1 - conf) / (k - 1))[:, None], (1, k))
    probs[np.arange(n), pred] = conf
    correct = rng.random(n) < conf  # right with probability = confidence
    other = (pred + rng.integers(1, k, n)) % k
    labels = np.where(correct, pred, other)
    assert expected_calibration_error(probs, labels) < 0.02
    sharp = _softmax(np.log(probs) * 4)  # same ranking, far too confident
    assert expected_calibration_error(sharp, labels) > 0.15


def test_fit_temperature_recovers_known_temperature():
    rng = np.random.default_rng(1)
    n, k, t_true = 20000, 5, 2.5
    true_logits = rng.normal(0, 2.0, (n, k))
    cum = _softmax(true_logits).cumsum(axis=1)
    labels = np.minimum((rng.random((n, 1)) > cum).sum(axis=1), k - 1)
    model_logits = true_logits * t_true  # over-confident by a factor t_true
    t = fit_temperature(model_logits, labels)
    assert t == pytest.approx(t_true, rel=0.05)
    before = expected_calibration_error(_softmax(model_logits), labels)
    after = expected_calibration_error(_softmax(model_logits / t), labels)
    assert after < before / 3
    import torch

    assert fit_temperature(torch.tensor(model_logits), torch.tensor(labels)) == pytest.approx(t, rel=1e-4)


def test_bootstrap_contains_point_and_shrinks_with_n():
    rng = np.random.default_rng(2)

    def sample(n):
        refs = rng.integers(0, 5, n)
        preds = np.where(rng.random(n) < 0.7, refs, rng.integers(0, 5, n))
        return refs, preds

    widths = {}
    for n in (250, 4000):
        refs, preds = sample(n)
        point = compute_classification_metrics(refs, preds)
        ci = bootstrap_intervals(refs, preds, n_boot=1000, seed=0)
        assert set(ci) == {"accuracy", "macro_f1", "balanced_accuracy"}
        for name, (lo, hi) in ci.items():
            assert lo <= point[name] <= hi, (name, lo, point[name], hi)
        widths[n] = ci["accuracy"][1] - ci["accuracy"][0]
        assert bootstrap_intervals(refs, preds, n_boot=1000, seed=0) == ci  # seeded: reproducible
    # width ~ 1/sqrt(n): 16x the data, about 1/4 the width
    assert 0.15 < widths[4000] / widths[250] < 0.4


def test_bootstrap_matches_index_resampling():
    rng = np.random.default_rng(3)
    refs = rng.integers(0, 3, 400)
    preds = np.where(rng.random(400) < 0.8, refs, rng.integers(0, 3, 400))
    ci = bootstrap_intervals(refs, preds, n_boot=2000, seed=0)
    idx = np.random.default_rng(9).integers(0, 400, (2000, 400))
    accs = (refs[idx] == preds[idx]).mean(axis=1)
    lo, hi = np.quantile(accs, [0.025, 0.975])
    assert ci["accuracy"][0] == pytest.approx(lo, abs=0.01)
    assert ci["accuracy"][1] == pytest.approx(hi, abs=0.01)
    narrow = bootstrap_intervals(refs, preds, n_boot=2000, seed=0, alpha=0.5)
    assert narrow["accuracy"][1] - narrow["accuracy"][0] < hi - lo


def test_paired_difference_matches_index_resampling_and_is_narrower_than_unpaired():
    """Two classifiers that share most of their mistakes: the paired interval of a - b equals what index
    resampling gives, excludes 0 when a is better by a margin the separate intervals cannot show."""
    rng = np.random.default_rng(4)
    n = 500
    refs = rng.integers(0, 4, n)
    base = np.where(rng.random(n) < 0.75, refs, rng.integers(0, 4, n))
    better = np.where(rng.random(n) < 0.2, refs, base)  # b, with a fifth of the examples set right
    res = paired_bootstrap_difference(refs, better, base, n_boot=2000, seed=0)
    assert set(res) == {"accuracy", "macro_f1", "balanced_accuracy"}
    diff, lo, hi = res["accuracy"]
    assert diff == pytest.approx((better == refs).mean() - (base == refs).mean())
    idx = np.random.default_rng(9).integers(0, n, (2000, n))
    d = (refs[idx] == better[idx]).mean(1) - (refs[idx] == base[idx]).mean(1)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(d, [0.025, 0.975])), abs=0.006)
    assert 0 < lo <= diff <= hi
    ci_a, ci_b = bootstrap_intervals(refs, better, seed=0), bootstrap_intervals(refs, base, seed=0)
    assert ci_a["accuracy"][0] < ci_b["accuracy"][1]  # the separate intervals overlap
    same = paired_bootstrap_difference(refs, base, base, n_boot=200)
    assert all(v == (0.0, 0.0, 0.0) for v in same.values())  # a classifier against itself
    swapped = paired_bootstrap_difference(refs, base, better, n_boot=2000, seed=0)["macro_f1"]
    assert swapped[0] == pytest.approx(-res["macro_f1"][0]) and swapped[2] < 0
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap_difference(refs, better, base[:-1])


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="differ in length"):
        compute_classification_metrics([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="outside the range 0..2"):
        compute_classification_metrics([0, 1, 3], [0, 1, 2], label_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="predictions hold class id 5"):
        compute_classification_metrics([0, 1, 2], [0, 1, 5], label_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=">= 0"):
        compute_classification_metrics([0, -1], [0, 1])
    with pytest.raises(ValueError, match="integer class ids"):
        compute_classification_metrics([0, 1], [0.2, 0.9])
    with pytest.raises(ValueError, match="empty"):
        compute_classification_metrics([], [])
    with pytest.raises(ValueError, match="outside the range 0..1 of 2 classes"):
        compute_classification_metrics([0, 1, 2], [0, 1, 2], label_names=["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        compute_classification_metrics([0, 1], [0, 1], label_names=["a", "a"])
    with pytest.raises(ValueError, match=r"in \[0, 1\]; pass softmax\(logits\)"):
        compute_classification_metrics([0, 1], [0, 1], probabilities=[[2.0, -1.0], [0.1, 0.2]])
    with pytest.raises(ValueError, match="sum to 1"):
        expected_calibration_error([[0.5, 0.2], [0.1, 0.2]], [0, 1])
    with pytest.raises(ValueError, match="columns"):
        compute_classification_metrics([0, 1], [0, 1], [[0.5, 0.5], [0.5, 0.5]], label_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="logits"):
        fit_temperature(np.zeros(5), [0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="labels must lie"):
        fit_temperature(np.zeros((2, 3)), [0, 3])
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_intervals([0, 1], [0, 1], n_boot=1)
