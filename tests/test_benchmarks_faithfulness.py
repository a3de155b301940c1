"""benchmarks/faithfulness.py: its measures on toy models with known answers, the ROAD imputation on known
cases, the randomisation verdict over seeds, the generated doc block against the stored JSON, and a --quick
run end to end."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import REPO_ROOT, load_script

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


@pytest.fixture(scope="module")
def road():
    return load_script("benchmarks/faithfulness_road.py", "bench_faithfulness_road_test")


@pytest.fixture(scope="module")
def findings():
    return load_script("benchmarks/faithfulness_findings.py", "bench_faithfulness_findings_test")


def _removed_block(size: int = 20) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    m[5:12, 4:15] = True  # inside the image, away from the border
    m[6, 16] = True  # a lone pixel
    return m


def test_imputation_keeps_a_constant_image_and_a_linear_ramp(road):
    m = _removed_block()
    const = np.full((3, 20, 20), 0.3)
    assert np.allclose(road.noisy_linear_impute(const, m, noise=0.0), 0.3, atol=1e-12)
    yy, xx = np.mgrid[0:20, 0:20]
    ramp = np.stack([0.01 * xx + 0.02 * yy, 0.5 - 0.01 * yy, 0.03 * xx])
    assert np.allclose(road.noisy_linear_impute(ramp, m, noise=0.0), ramp, atol=1e-10)  # symmetric weights
    corner = np.zeros((20, 20), dtype=bool)
    corner[:4, :4] = True  # at the border the weights are renormalised: a constant still stays constant
    assert np.allclose(road.noisy_linear_impute(const, corner, noise=0.0), 0.3, atol=1e-12)


def test_imputation_leaves_known_pixels_and_adds_the_stated_noise(road):
    rng = np.random.default_rng(0)
    img = rng.random((3, 24, 24))
    m = rng.random((24, 24)) < 0.6
    clean = road.noisy_linear_impute(img, m, noise=0.0)
    noisy = road.noisy_linear_impute(img, m, noise=0.05, rng=np.random.default_rng(1))
    assert np.array_equal(noisy[:, ~m], img[:, ~m]) and np.array_equal(clean[:, ~m], img[:, ~m])
    assert 0.04 < float((noisy - clean)[:, m].std()) < 0.06
    a, b, idx = road.linear_impute_system(img, m)
    from scipy.sparse.linalg import spsolve

    assert np.allclose(clean.reshape(3, -1)[:, idx].T, spsolve(a, b), atol=1e-10)  # same as the direct solve
    with pytest.raises(ValueError):
        road.noisy_linear_impute(img, np.ones((24, 24), dtype=bool))


def test_road_ranks_an_informative_patch(road):
    """A toy classifier that reads a bright patch: removing the patch first (MoRF) kills the score, removing
    the rest first (LeRF) keeps it, so MoRF AUC < LeRF AUC; the inverse map does the opposite."""
    x = torch.full((2, 3, 16, 16), 0.1)
    x[:, :, 3:7, 3:7] = 0.9

    def predict(xb: torch.Tensor) -> torch.Tensor:
        s = (xb[:, :, 3:7, 3:7].mean(dim=(1, 2, 3)) - 0.5) * 20
        return torch.stack([s, torch.zeros_like(s)], 1).softmax(1)

    on = torch.zeros(2, 16, 16)
    on[:, 3:7, 3:7] = 1.0
    cls = torch.zeros(2, dtype=torch.int64)
    good = road.road_curves(predict, x, on, cls, (0.1, 0.5))
    bad = road.road_curves(predict, x, 1 - on, cls, (0.1, 0.5))
    assert (road.road_auc(good["morf"], (0.1, 0.5)) < road.road_auc(good["lerf"], (0.1, 0.5)) - 0.3).all()
    assert (road.road_auc(bad["morf"], (0.1, 0.5)) > road.road_auc(bad["lerf"], (0.1, 0.5)) + 0.3).all()
    assert road.road_auc(np.ones((1, 3)), (0.2, 0.8))[0] == pytest.approx(1.0)


def _rand_result(per_step_seed_hi: list[list[float]]) -> dict:
    """A randomisation result whose every map has the given per-seed upper bounds at each step."""
    steps = []
    for i, his in enumerate(per_step_seed_hi):
        cell = {"abs": [{"mean": h - 0.05, "lo": h - 0.1, "hi": h, "n": 8} for h in his], "signed": his}
        steps.append({"step": f"s{i}", "same_prediction": [1.0] * len(his), **{k: cell for k in _EXPL}})
    return {"images": 8, "seeds": list(range(len(per_step_seed_hi[0]))), "steps": steps}


_EXPL = ("attn1", "attn2", "attn3", "gradcam", "gradcam10")


def test_randomisation_verdict_uses_every_seed():
    report = load_script("benchmarks/faithfulness_report.py", "bench_faithfulness_report_test")
    assert (
        report.seeds_pass([0.2, 0.3, 0.49])
        and not report.seeds_pass([0.2, 0.93, 0.1])
        and not report.seeds_pass([])
    )
    one_bad_seed = [[0.93, 0.9, 0.9], [0.3, 0.6, 0.2], [0.1, 0.2, 0.3]]  # step 2: seed 1 above 0.5
    v = report.randomisation_verdicts(_rand_result(one_bad_seed))
    assert v["attn2"]["verdict"] == "late" and v["attn2"]["seeds_below"] == 2  # all seeds only at step 3
    assert v["gradcam"]["verdict"] == "late"  # its own step is step 1 (0.93, 0.9, 0.9)
    all_good = [[0.4, 0.3, 0.2], [0.3, 0.4, 0.2], [0.1, 0.2, 0.3]]
    assert {x["verdict"] for x in report.randomisation_verdicts(_rand_result(all_good)).values()} == {"pass"}
    never = [[0.9, 0.4, 0.2], [0.7, 0.4, 0.2], [0.6, 0.1, 0.3]]  # seed 0 never below
    assert {x["verdict"] for x in report.randomisation_verdicts(_rand_result(never)).values()} == {"fail"}


def test_doc_findings_are_rendered_from_the_stored_results(findings):
    """docs/faithfulness.md's generated block equals what render() makes of the stored JSON."""
    res = json.loads((REPO_ROOT / "benchmarks" / "results" / "attention" / "faithfulness.json").read_text())
    doc = (REPO_ROOT / "docs" / "faithfulness.md").read_text()
    assert findings.doc_block(doc) == findings.render(res).strip(), (
        "run benchmarks/faithfulness.py --report-only"
    )
    assert findings.update_doc(doc, findings.render(res)) == doc


@pytest.mark.slow
def test_quick_run_end_to_end(fb, tmp_path):
    t0 = time.time()
    assert fb.main(["--quick", "--out", str(tmp_path), "--docs", str(tmp_path / "docs")]) == 0
    res = json.loads((tmp_path / "faithfulness.json").read_text())
    assert {"deletion", "randomisation", "road", "pointing", "decision", "paper", "pictures"} <= set(res)
    explainers = {*fb.ESTIMATORS, "gradcam", "gradcam10"}
    assert set(res["deletion"]["maps"]) == explainers | {"random", "brightness", "centre"}
    assert explainers <= set(res["randomisation"]["steps"][0])
    assert res["deletion"]["gradcam_block6_max"] < 1e-4  # 'pc' + softmax: g gets no gradient
    assert len(res["randomisation"]["steps"]) == len(fb.CASCADE)
    assert len(res["randomisation"]["steps"][1]["attn2"]["abs"]) == len(fb.SEEDS)
    assert {"attn1-brightness", "gradcam-centre"} <= set(res["road"]["paired"])
    assert [r["epoch"] for r in res["paper"]["epochs"]] == [1, 2]
    md = (tmp_path / "faithfulness.md").read_text()
    assert "deletion AUC" in md and "pointing hit rate" in md and "did not overfit" in md
    for png in ("faithfulness_maps.png", "faithfulness_curves.png", "faithfulness_road.png"):
        assert (tmp_path / "docs" / png).stat().st_size > 1000
    print(f"quick run: {time.time() - t0:.1f} s")
