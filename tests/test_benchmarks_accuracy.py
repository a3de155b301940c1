"""benchmarks/accuracy.py on stored fake runs: the table shows what metrics.json holds; bootstrap, TTA,
temperature scaling and the budget plan (no training)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_script
from scipy.special import softmax

from timm_galaxy_attn.labels import GZ1_SDSS_CLASSES
from timm_galaxy_attn.metrics import (
    bootstrap_intervals,
    compute_classification_metrics,
    expected_calibration_error,
    fit_temperature,
)


@pytest.fixture(scope="module")
def acc():
    return load_script("benchmarks/accuracy.py", "bench_accuracy")


def _softmax(z: np.ndarray) -> np.ndarray:
    return softmax(z, axis=1)


def fake_run(folder: Path, seed: int, skill: float, model: str = "galaxy_attn_vgg_small") -> dict:
    """A stored run as benchmarks/accuracy.py writes it; logits right about `skill` of the time. Every run
    has the same validation and test labels (one split); the logits depend on ``seed``."""
    rng = np.random.default_rng(seed)
    names = list(GZ1_SDSS_CLASSES)
    k = len(names)
    split = np.random.default_rng(12345)
    labels = {150: split.integers(0, k, 150), 160: split.integers(0, k, 160)}

    def logits_for(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = labels[n]
        z = rng.normal(0, 1, (n, k))
        right = rng.random(n) < skill
        z[np.arange(n), y] += np.where(right, 4.0, 0.0)
        return (3 * z).astype(np.float32), y  # overconfident: temperature > 1 helps

    val_z, val_y = logits_for(150)
    test_z, test_y = logits_for(160)
    tta_probs = _softmax(test_z.astype(np.float64) * 0.8)
    tta_probs[:10] = np.roll(tta_probs[:10], 1, axis=1)  # TTA changes some predictions
    probs = _softmax(test_z.astype(np.float64))
    test = compute_classification_metrics(test_y, test_z.argmax(1), probs, label_names=names)
    val = compute_classification_metrics(val_y, val_z.argmax(1), _softmax(val_z.astype(np.float64)), names)
    folder.mkdir(parents=True)
    metrics = {
        "test": test,
        "validation": val,
        "label_names": names,
        "seed": seed,
        "model": model,
        "recipe": "default",
        "image_size": 64,
        "num_params": 1_234_567,
        "epochs": 7,
        "best_epoch": 5,
        "train_time_s": 600.0,
        "wall_time_s": 660.0,
        "images_per_s": 52.5,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    np.savez(
        folder / "predictions.npz",
        val_logits=val_z,
        val_labels=val_y,
        test_logits=test_z,
        test_labels=test_y,
        test_tta_probs=tta_probs.astype(np.float32),
    )
    bench = {
        "budget_minutes": 10.0,
        "calibrated_images_per_s": 60.0,
        "gflops": 0.37,
        "max_train_samples": None,
    }
    (folder / "bench.json").write_text(json.dumps(bench))
    return {
        "metrics": metrics,
        "test_z": test_z,
        "test_y": test_y,
        "val_z": val_z,
        "val_y": val_y,
        "tta": tta_probs,
    }


@pytest.mark.slow
def test_table_numbers_equal_metrics_json(acc, tmp_path):
    res = tmp_path / "accuracy"
    ours = [fake_run(res / "ours_small_32s1" / f"seed{s}", s, 0.8) for s in (0, 1, 2)]
    peer = fake_run(res / "resnet18_64" / "seed0", 7, 0.6, model="resnet18")
    out = acc.report(res, n_boot=200, quiet=True)

    md = (res / "results.md").read_text()
    assert json.loads((res / "results.json").read_text())["rows"].keys() == {"ours_small_32s1", "resnet18_64"}
    for name, run in (("ours_small_32s1", ours[0]), ("resnet18_64", peer)):
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {name} |"))
        test = run["metrics"]["test"]
        for key in ("accuracy", "balanced_accuracy", "macro_f1"):
            assert f"{100 * test[key]:.1f} [" in line, (name, key, line)
            summary = out["rows"][name]["runs"][0]
            assert summary["test"][key] == pytest.approx(test[key], abs=1e-12)
        # bootstrap interval as the metrics package computes it, around the point estimate
        ci = bootstrap_intervals(run["test_y"], run["test_z"].argmax(1), n_boot=200, seed=0, num_classes=6)
        assert out["rows"][name]["runs"][0]["test"]["ci95"]["macro_f1"] == pytest.approx(list(ci["macro_f1"]))
        lo, hi = ci["macro_f1"]
        assert f"{100 * test['macro_f1']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]" in line
        # TTA column from the stored D4 probabilities
        tta = compute_classification_metrics(run["test_y"], run["tta"].argmax(1))
        assert f"{100 * tta['accuracy']:.1f} / {100 * tta['balanced_accuracy']:.1f} / " in line
        # temperature fitted on validation, ECE on test before -> after
        t = fit_temperature(run["val_z"], run["val_y"])
        after = expected_calibration_error(_softmax(run["test_z"].astype(np.float64) / t), run["test_y"])
        assert f"{test['ece']:.3f} -> {after:.3f} (T={t:.2f})" in line
        assert t > 1.0  # the fake logits are overconfident

    # seeds: mean and sample std over the three stored runs
    agg = out["rows"]["ours_small_32s1"]["aggregate"]
    f1 = np.array([r["metrics"]["test"]["macro_f1"] for r in ours])
    assert agg["n_seeds"] == 3 and agg["seeds"] == [0, 1, 2]
    assert agg["test_macro_f1_mean"] == pytest.approx(f1.mean())
    assert agg["test_macro_f1_std"] == pytest.approx(f1.std(ddof=1))
    seed_line = next(ln for ln in md.splitlines() if ln.startswith("| ours_small_32s1 | 0, 1, 2 |"))
    assert f"{100 * f1.mean():.1f} +- {100 * f1.std(ddof=1):.1f}" in seed_line
    assert out["rows"]["resnet18_64"]["aggregate"]["test_macro_f1_std"] is None


def test_mismatched_logits_and_metrics_are_refused(acc, tmp_path):
    res = tmp_path / "accuracy"
    fake_run(res / "ours_small_32s1" / "seed0", 0, 0.8)
    metrics_path = res / "ours_small_32s1" / "seed0" / "metrics.json"
    m = json.loads(metrics_path.read_text())
    m["test"]["macro_f1"] += 0.01
    metrics_path.write_text(json.dumps(m))
    with pytest.raises(acc.BenchmarkError, match="macro_f1 from predictions.npz"):
        acc.report(res, n_boot=50, quiet=True)


def test_incomplete_runs_are_not_reported(acc, tmp_path):
    res = tmp_path / "accuracy"
    fake_run(res / "ours_small_32s1" / "seed0", 0, 0.8)
    (res / "ours_small_32s1" / "seed0" / "bench.json").unlink()
    assert not acc.is_complete(res / "ours_small_32s1" / "seed0")
    with pytest.raises(acc.BenchmarkError, match="No complete run"):
        acc.report(res, n_boot=50, quiet=True)


def test_budget_plan(acc):
    # 15 min at 60 img/s over 4532 training images: 54,000 images = 11.9 epochs -> 12
    assert acc.plan_epochs(15, 60.0, 4532) == (12, None)
    assert acc.plan_epochs(4, 31.0, 4532) == (2, None)  # 1.64 epochs
    assert acc.plan_epochs(3, 31.0, 4532) == (1, None)  # 1.23 epochs
    # less than one epoch: one epoch on the images the budget pays for
    assert acc.plan_epochs(1, 20.0, 4532) == (1, 1200)


class _ConstantModel(torch.nn.Module):
    """Always 'clockwise spiral' (class 1), whatever the view: it cannot see chirality."""

    num_classes = 6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.zeros(x.shape[0], 6)
        z[:, 1] = 20.0
        return z


def test_d4_tta_undoes_the_mirror_label_swap(acc):
    cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    x = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    plain, probs = acc.plain_and_d4_probs(_ConstantModel(), x, cfg, {1: 2, 2: 1}, bf16=False, batch=2)
    assert plain.shape == (5, 6) and np.allclose(plain[:, 1], 20.0)
    # 4 of the 8 views are mirror images: their 'clockwise' is the original's 'anticlockwise'
    assert np.allclose(probs[:, 1], 0.5, atol=1e-6) and np.allclose(probs[:, 2], 0.5, atol=1e-6)
    _, no_swap = acc.plain_and_d4_probs(_ConstantModel(), x, cfg, {}, bf16=False)
    assert np.allclose(no_swap[:, 1], 1.0, atol=1e-6)


def test_rows_are_consistent(acc):
    known = set(acc.ROWS) | set(acc.ALIASES)
    assert set(acc.DEFAULT_ORDER) <= known and set(acc.QUICK_ORDER) <= known and set(acc.SEEDED_ROWS) <= known
    assert acc.ROWS[acc.DEFAULT_OUR_BEST].role == "ours" and acc.ROWS[acc.DEFAULT_BEST_PEER].role == "peer"
    paper = acc.ROWS["paper_vgg_32"]
    assert paper.train_args()[:4] == ["--model", "galaxy_attn_vgg", "--recipe", "paper"]
    for row in acc.ROWS.values():
        assert re.fullmatch(r"[a-z0-9_]+", row.name)
        if row.role == "ours":  # every candidate has its ablation: same arguments plus --no-attention
            ablation = acc.ROWS[f"ablation_{row.name.removeprefix('ours_')}_noattn"]
            assert ablation.parent == row.name and ablation.role == "ablation"
            assert ablation.train_args() == [*row.train_args(), "--no-attention"]
            assert ablation.model_kwargs() == {**row.model_kwargs(), "attention": False}
        if row.parent is not None:  # copies a schedule (epochs) of a row that runs before it, one change
            parent = acc.ROWS[row.parent]
            assert row.role in ("ablation", "diagnostic", "ours") and parent.role in ("ours", "peer")
            assert row.image_size == parent.image_size or row.role == "diagnostic"


@pytest.mark.slow
def test_every_galaxy_row_runs_at_its_input_size(acc):
    """Each of our rows builds and runs a forward pass at its image size and stem stride (a 64 px input with
    stem stride 4 would be below the 128 px the network needs, and fail only after calibration)."""
    import timm
    import torch

    for row in acc.ROWS.values():
        if not row.model.startswith("galaxy_attn_vgg"):
            continue
        model = timm.create_model(row.model, num_classes=6, **row.model_kwargs()).eval()
        with torch.inference_mode():
            assert model(torch.zeros(1, 3, row.image_size, row.image_size)).shape == (1, 6), row.name


def test_best_rows_are_chosen_on_validation(acc, tmp_path):
    res = tmp_path / "accuracy"
    assert acc.resolve_row("best", res) == acc.DEFAULT_OUR_BEST  # nothing stored yet
    assert acc.resolve_row("best_noattn", res) == "ablation_small_32s1_noattn"
    runs = {"ours_small_32s1": 0.5, "ours_small_64s2": 0.9, "resnet18_64": 0.7, "efficientnet_b0_64": 0.95}
    val = {
        n: fake_run(res / n / "seed0", i, skill)["metrics"]["validation"]["macro_f1"]
        for i, (n, skill) in enumerate(runs.items())
    }
    assert val["ours_small_64s2"] > val["ours_small_32s1"] and val["efficientnet_b0_64"] > val["resnet18_64"]
    assert acc.resolve_row("best", res) == "ours_small_64s2"
    assert acc.resolve_row("best_noattn", res) == "ablation_small_64s2_noattn"
    assert acc.resolve_row("best_peer", res) == "efficientnet_b0_64"
    assert acc.resolve_row("vgg16_bn_64", res) == "vgg16_bn_64"
    with pytest.raises(acc.BenchmarkError, match="Unknown row 'resnet50'"):
        acc.resolve_row("resnet50", res)


def test_chirality_share(acc):
    cm = np.zeros((6, 6), dtype=int)
    cm[1, 1], cm[1, 2], cm[2, 2], cm[2, 1], cm[1, 0] = (
        30,
        10,
        25,
        15,
        99,
    )  # 55 right of 80 spirals called spiral
    assert acc.chirality(cm, {1: 2, 2: 1}) == pytest.approx(55 / 80)
    assert acc.chirality(np.eye(6, dtype=int) * 0, {1: 2, 2: 1}) is None


@pytest.mark.slow
def test_verdict_needs_disjoint_intervals(acc, tmp_path):
    res = tmp_path / "accuracy"
    fake_run(res / "ours_small_32s1" / "seed0", 0, 0.95)
    fake_run(res / "ours_small_64s2" / "seed0", 1, 0.3)  # worse on validation: not the one compared
    fake_run(res / "paper_vgg_32" / "seed0", 2, 0.1)
    # a diagnostic: shown, never compared; on ours_small_32s1's schedule, uncalibrated
    diag = res / "resnet18_64_our_epochs" / "seed0"
    fake_run(diag, 4, 0.99)
    bench = json.loads((diag / "bench.json").read_text())
    bench.update(calibrated_images_per_s=None, schedule_of="ours_small_32s1")
    (diag / "bench.json").write_text(json.dumps(bench))
    out = acc.report(res, n_boot=200, quiet=True)
    v = out["verdict"]
    assert v["best"] == "ours_small_32s1" and v["target_met"] is True
    assert v["against"] == {"paper_vgg_32": {"balanced_accuracy": "beats", "macro_f1": "beats"}}
    d, lo, hi = v["paired"]["paper_vgg_32"]["macro_f1"]  # paired: ours minus theirs, same test images
    mine, theirs = (
        out["rows"][n]["runs"][0]["test"]["macro_f1"] for n in ("ours_small_32s1", "paper_vgg_32")
    )
    assert d == pytest.approx(mine - theirs) and 0 < lo <= d <= hi
    assert out["rows"]["resnet18_64_our_epochs"]["role"] == "diagnostic"
    md = (res / "results.md").read_text()
    diag_line = next(
        ln for ln in md.splitlines() if ln.startswith("| resnet18_64_our_epochs |") and "[" in ln
    )
    assert " / - | " in diag_line  # no calibrated speed: its epochs are the parent's
    assert "**ours_small_32s1**" in md and "Target **met**" in md
    f1 = out["rows"]["paper_vgg_32"]["runs"][0]["test"]["per_class"]["Merger"]["f1"]
    line = next(ln for ln in md.splitlines() if ln.startswith("| paper_vgg_32 |") and "[" not in ln)
    assert line.split(" | ")[6] == f"{100 * f1:.1f}"  # per-class table: Merger is the 6th class
    fake_run(res / "resnet18_64" / "seed0", 3, 0.95)  # as good as ours: intervals overlap
    out = acc.report(res, n_boot=200, quiet=True)
    assert out["verdict"]["target_met"] is False
    assert set(out["verdict"]["against"]["resnet18_64"].values()) <= {
        "higher (intervals overlap)",
        "not higher",
    }
    assert "Target **not met**" in (res / "results.md").read_text()
    d, lo, hi = out["verdict"]["paired"]["resnet18_64"]["balanced_accuracy"]
    assert lo < 0 < hi  # equally good: the paired interval straddles 0


def test_recalibrating_some_rows_keeps_the_others(acc, tmp_path: Path, monkeypatch):
    """``--calibrate --rows A`` re-measures A only: the stored speeds of the other rows (which set the epochs
    of their stored runs) stay; without ``redo`` only missing rows are measured."""
    (tmp_path / "calibration.json").write_text(json.dumps({"resnet18_64": 300.0, "ours_tiny_128s4": 1.0}))
    measured = []

    def fake_calibrate(row, num_classes):
        measured.append(row.name)
        return 180.0

    monkeypatch.setattr(acc, "calibrate", fake_calibrate)
    tiny, small = acc.ROWS["ours_tiny_128s4"], acc.ROWS["ours_small_128s4"]
    assert acc.calibration(tmp_path, [tiny], 6, redo=True) == {"resnet18_64": 300.0, "ours_tiny_128s4": 180.0}
    assert acc.calibration(tmp_path, [tiny, small], 6)["ours_small_128s4"] == 180.0
    assert measured == ["ours_tiny_128s4", "ours_small_128s4"]
    stored = json.loads((tmp_path / "calibration.json").read_text())
    assert stored == {"resnet18_64": 300.0, "ours_tiny_128s4": 180.0, "ours_small_128s4": 180.0}
