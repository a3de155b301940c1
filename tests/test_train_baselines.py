"""training/train.py with other models: a timm peer (resnet18) and the ablation without attention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from conftest import tiny_args
from rescore import assert_scores_equal, fresh_logits, sklearn_scores
from train_script import run_train

TINY = tiny_args(32, 16, 10, "--epochs", "1", "--mixed-precision", "no")
pytestmark = pytest.mark.usefixtures("dataset_cache")


def check_run(out: Path, arch: str) -> dict:
    m = json.loads((out / "metrics.json").read_text())
    cm = np.array(m["test"]["confusion_matrix"])
    assert m["test"]["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    model = timm.create_model(f"local-dir:{out / 'model'}", pretrained=True).eval()
    assert model.pretrained_cfg["architecture"] == arch
    assert len(model.pretrained_cfg["label_names"]) == model.num_classes == 10
    # the folder holds the weights that scored the test set: re-run on the rebuilt split, the same logits
    p = np.load(out / "predictions.npz")
    logits, labels = fresh_logits(out, "test")
    assert len(labels) == m["n"]["test"] and np.array_equal(labels, p["test_labels"])
    np.testing.assert_allclose(logits, p["test_logits"], rtol=0, atol=1e-5)  # fp32 (--mixed-precision no)
    assert_scores_equal(m["test"], sklearn_scores(logits, labels, model.num_classes))
    return m


@pytest.mark.slow
def test_timm_peer_trains_with_the_same_script(tmp_path: Path, capsys) -> None:
    out = tmp_path / "resnet"
    assert run_train([*TINY, "--model", "resnet18", "--output-dir", str(out)]) == 0
    m = check_run(out, "resnet18")
    assert m["model"] == "resnet18" and m["image_size"] == 32
    # the same preprocessing as the galaxy model would get (the dataset's data config, not ImageNet's)
    assert m["data_config"]["mean"] == list(timm.models.get_pretrained_cfg("galaxy_attn_vgg").mean)
    assert not (out / "attention").exists()
    assert "no attention estimators, so no heatmaps" in capsys.readouterr().out


@pytest.mark.slow
def test_attention_ablation_and_model_options(tmp_path: Path) -> None:
    out = tmp_path / "ablation"
    assert run_train([*TINY, "--no-attention", "--compatibility", "dp", "--output-dir", str(out)]) == 0
    check_run(out, "galaxy_attn_vgg_small")
    cfg = json.loads((out / "model" / "config.json").read_text())
    assert cfg["model_args"]["attention"] is False and cfg["model_args"]["compatibility"] == "dp"
    model = timm.create_model(f"local-dir:{out / 'model'}", pretrained=True)
    assert model.attn1 is None and model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    assert not (out / "attention").exists()
