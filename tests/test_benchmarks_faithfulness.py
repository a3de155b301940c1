"""benchmarks/faithfulness.py: its measures on toy models with known answers, and a --quick run end to end."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import load_script

from timm_galaxy_attn.model import GalaxyAttnVGG


@pytest.fixture(scope="module")
def fb():
    return load_script("benchmarks/faithfulness.py", "bench_faithfulness_test")


@pytest.fixture(scope="module")
def lib(fb):
    return fb.lib


def _small_model() -> GalaxyAttnVGG:
    return GalaxyAttnVGG(num_classes=3, widths=(8, 8, 8, 16, 16, 16)).eval()


def test_deletion_of_the_informative_pixels_beats_their_inverse(lib):
    """A toy classifier that looks only at a 4x4 patch: deleting the patch first kills the score at once."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(10, 30, size=(3, 3, 16, 16), dtype=np.uint8))
    x[:, :, 2:6, 9:13] = 250  # the only informative pixels

    def predict(xb: torch.Tensor) -> torch.Tensor:
        s = xb[:, :, 2:6, 9:13].float().mean(dim=(1, 2, 3)) / 255 * 10 - 5
        return torch.stack([s, torch.zeros_like(s)], 1).softmax(1)

    on = np.zeros((3, 16, 16))
    on[:, 2:6, 9:13] = 1.0
    classes = torch.zeros(3, dtype=torch.int64)
    sky = lib.sky_baseline(x)
    assert int(sky[0, 0, 0, 0]) in range(10, 31)  # the median is the background, not the patch
    d_on, i_on = lib.perturbation_curves(predict, x, on, classes, sky, steps=8)
    d_off, i_off = lib.perturbation_curves(predict, x, 1 - on, classes, sky, steps=8)
    assert np.allclose(d_on[:, 0], d_off[:, 0]) and np.allclose(d_on[:, -1], d_off[:, -1])
    assert (lib.curve_auc(d_on) < lib.curve_auc(d_off) - 0.3).all()
    assert (lib.curve_auc(i_on) > lib.curve_auc(i_off) + 0.3).all()
    assert lib.curve_auc(np.ones((1, 5)))[0] == pytest.approx(1.0)
    assert lib.curve_auc(np.array([[1.0, 0.0, 0.0]]))[0] == pytest.approx(0.25)


def test_grad_cam_of_a_linear_head_is_the_analytic_class_activation_map(lib):
    """conv -> average pool -> linear: d y_k / d A_c = W_kc / HW, so Grad-CAM = ReLU(sum_c W_kc A_c) / HW."""
    feat = nn.Conv2d(3, 5, 3, padding=1)
    head = nn.Linear(5, 4)
    model = nn.Sequential(feat, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()
    x = torch.randn(6, 3, 7, 7)
    classes = torch.tensor([0, 1, 2, 3, 0, 1])
    cam = lib.grad_cam(model, feat, x, classes, batch=4)
    with torch.no_grad():
        a = feat(x)
        w = head.weight[classes]  # (N, C)
        expected = torch.relu((w[:, :, None, None] * a).sum(1)) / (7 * 7)
    assert cam.shape == (6, 7, 7)
    assert np.allclose(cam, expected.double().numpy(), atol=1e-6)
    assert cam.max() > 0


def test_randomisation_of_nothing_leaves_every_map_unchanged(fb, lib):
    model = _small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    cfg = {"mean": (0.1, 0.1, 0.1), "std": (0.2, 0.2, 0.2)}
    logits, trained = fb.explain(model, x, cfg)
    steps = [("nothing", ("no_such_module",)), ("classifier", ("fc",))]
    rows = {}
    for name, m in lib.cascade(model, steps, seed=123):  # not the seed the model was made with
        _, maps = fb.explain(m, x, cfg, torch.as_tensor(logits.argmax(1)))
        rows[name] = {k: fb.att.spearman(trained[k], maps[k]) for k in maps}
    assert all(np.allclose(v, 1.0) for v in rows["nothing"].values())
    for k in fb.ESTIMATORS:  # attention comes before the classifier: untouched by its re-initialisation
        assert np.allclose(rows["classifier"][k], 1.0)
    assert rows["classifier"]["gradcam"].mean() < 0.99  # Grad-CAM reads the classifier's weights
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is not touched


def test_uniform_attention_hands_the_classifier_plain_feature_means(lib):
    model = _small_model()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        l1, l2, l3, _ = model._local_and_final(x)
        means = [model.projector(l1).mean((2, 3)), l2.mean((2, 3)), l3.mean((2, 3))]
        expected = model.fc(torch.cat(means, 1))
        with lib.uniform_attention(model, ("attn1", "attn2", "attn3")):
            got = model(x)
        normal = model(x)
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(normal, expected, atol=1e-5)  # the hooks are gone afterwards


def test_pointing_hits_and_bootstrap(lib):
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[:, 0:2, 0:2] = True
    maps = np.zeros((2, 8, 8))
    maps[0, 1, 1] = 1.0  # inside
    maps[1, 3, 3] = 1.0  # one pixel outside the 1-px tolerance
    assert lib.pointing_hits(maps, masks, tolerance=1).tolist() == [True, False]
    assert lib.pointing_hits(maps, masks, tolerance=2).tolist() == [True, True]
    b = lib.bootstrap_mean(np.full(10, 0.3))
    assert b["mean"] == pytest.approx(0.3) and b["lo"] == pytest.approx(0.3) and b["hi"] == pytest.approx(0.3)
    b = lib.bootstrap_mean(np.r_[np.zeros(50), np.ones(50)])
    assert b["lo"] < 0.5 < b["hi"] and b["hi"] - b["lo"] < 0.3


def test_paper_sentence_reads_the_numbers():
    report = load_script("benchmarks/faithfulness_report.py", "bench_faithfulness_report_test")

    def row(epoch, train, blank):
        return {"epoch": epoch, "train_accuracy": train, "val_accuracy": 0.7, "attn1_blank_share": blank}

    blanking = {"epochs": [row(1, 0.6, 0.1), row(2, 0.96, 0.8), row(3, 0.99, 0.9)]}
    assert "does go blank" in report.paper_sentence(blanking)
    steady = {"epochs": [row(1, 0.6, 0.1), row(2, 0.97, 0.1)]}
    assert "does not go blank" in report.paper_sentence(steady)
    assert "did not overfit" in report.paper_sentence({"epochs": [row(1, 0.6, 0.9)]})


@pytest.mark.slow
def test_quick_run_end_to_end(fb, tmp_path):
    t0 = time.time()
    assert fb.main(["--quick", "--out", str(tmp_path), "--docs", str(tmp_path / "docs")]) == 0
    res = json.loads((tmp_path / "faithfulness.json").read_text())
    assert {"deletion", "randomisation", "pointing", "decision", "paper", "pictures"} <= set(res)
    explainers = {*fb.ESTIMATORS, "gradcam", "gradcam10"}
    assert set(res["deletion"]["maps"]) == explainers | {"random", "brightness", "centre"}
    assert explainers <= set(res["randomisation"]["steps"][0])
    assert res["deletion"]["gradcam_block6_max"] < 1e-4  # 'pc' + softmax: g gets no gradient
    assert len(res["randomisation"]["steps"]) == len(fb.CASCADE)
    assert [r["epoch"] for r in res["paper"]["epochs"]] == [1, 2]
    md = (tmp_path / "faithfulness.md").read_text()
    assert "deletion AUC" in md and "pointing hit rate" in md and "did not overfit" in md
    for png in ("faithfulness_maps.png", "faithfulness_curves.png"):
        assert (tmp_path / "docs" / png).stat().st_size > 1000
    print(f"quick run: {time.time() - t0:.1f} s")
