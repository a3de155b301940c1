"""Joint training (``--joint``): gz1_sdss classes + the GZ2 vote head on the committed Kaggle slice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import safetensors.torch
import timm
import torch
from conftest import REPO_ROOT, SHARED_DATA
from train_script import run_train

from timm_galaxy_attn.data.gz2_kaggle import build_gz2_kaggle
from timm_galaxy_attn.training import TrainConfig, TrainingError, validate_config
from timm_galaxy_attn.training.joint import joint_epoch_order
from timm_galaxy_attn.training.models import create_model, load_initial_checkpoint
from timm_galaxy_attn.vote_head import VOTE_HEAD_FILE

SLICE = REPO_ROOT / "tests" / "data" / "gz2_kaggle_slice"


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """A 40-row gz1_sdss file and the slice's two GZ2 sets built against it."""
    tmp = tmp_path_factory.mktemp("joint")
    table = pq.read_table(SHARED_DATA / "gz1_sdss" / "data.parquet")
    gz1 = tmp / "gz1" / "data.parquet"
    gz1.parent.mkdir()
    pq.write_table(table.take(np.arange(40)), gz1)
    build_gz2_kaggle(SLICE / "Galaxy-zoo", SLICE / "Cosmic-Compendium", tmp / "gz2", gz1, cache_dir=tmp / "c")
    return {"gz1": gz1, "gz2": tmp / "gz2"}


def joint_args(sources: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "--dataset", "gz1_sdss", "--data-path", str(sources["gz1"]), "--joint", "gz2_kaggle",
        "gz2_kaggle_spiral", "--joint-data-path", str(sources["gz2"]), "--joint-per-epoch", "16",
        "--model", "galaxy_attn_vgg_small", "--image-size", "32", "--batch-size", "8", "--epochs", "2",
        "--mixed-precision", "no", "--no-channels-last", "--num-heatmaps", "2", "--output-dir", str(out),
        *extra,
    ]  # fmt: skip


def test_bad_joint_options_are_named() -> None:
    base = dict(dataset="gz1_sdss", output_dir="x", model="galaxy_attn_vgg_small")
    with pytest.raises(TrainingError, match="unknown; choose from gz2_kaggle"):
        validate_config(TrainConfig(**base, joint=["gz3"]))
    with pytest.raises(TrainingError, match="use --dataset gz1_sdss"):
        validate_config(TrainConfig(**{**base, "dataset": "synthetic"}, joint=["gz2_kaggle"]))
    with pytest.raises(TrainingError, match="--split-seed 0"):
        validate_config(TrainConfig(**base, joint=["gz2_kaggle"], split_seed=1))
    with pytest.raises(TrainingError, match="galaxy_attn_vgg architecture"):
        validate_config(TrainConfig(**{**base, "model": "resnet18"}, joint=["gz2_kaggle"]))


def test_joint_epoch_keeps_the_gz1_draw() -> None:
    from timm_galaxy_attn.training import epoch_order

    cfg = TrainConfig(dataset="gz1_sdss", output_dir="x", balance="sampler", joint_per_epoch=3)
    labels = torch.tensor([0, 0, 1, 2, -1, -1, -1, -1, -1])
    sources = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2])
    order = joint_epoch_order(cfg, 5, labels, sources, 3)
    gz1 = order[order < 4]
    assert len(order) == 7 and (order >= 4).sum() == 3 and len(set(order[order >= 4].tolist())) == 3
    assert sorted(gz1.tolist()) == sorted(epoch_order(cfg, 5, labels[:4], 3).tolist())
    assert torch.equal(order, joint_epoch_order(cfg, 5, labels, sources, 3))


@pytest.mark.slow
def test_tiny_joint_run(sources: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run_train(joint_args(sources, out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["joint"] == ["gz2_kaggle", "gz2_kaggle_spiral"] and metrics["label_names"][5] == "Merger"
    assert all(np.isfinite(h["train_loss"]) for h in metrics["history"])
    best = safetensors.torch.load_file(str(out / "checkpoints" / "best.safetensors"))
    assert any(k.startswith("vote_head.heads.gz2_t08") for k in best)
    # model/: the GZ1 classifier every loader reads; the vote head next to it
    model = timm.create_model(f"local-dir:{out / 'model'}", pretrained=True)
    assert model.vote_head is None and model.num_classes == 6
    head = safetensors.torch.load_file(str(out / "model" / VOTE_HEAD_FILE))
    assert head["heads.gz2_t08.weight"].shape[0] == 7 and head["heads.cc_spiral.bias"].shape == (2,)


@pytest.mark.slow
def test_joint_resume_equals_uninterrupted(sources: dict[str, Path], tmp_path: Path) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert run_train(joint_args(sources, full, "--checkpoint-every-steps", "2")) == 0
    assert (
        run_train(joint_args(sources, cut, "--checkpoint-every-steps", "2", "--stop-after-steps", "3")) == 0
    )
    assert not (cut / "metrics.json").exists()
    assert run_train(joint_args(sources, cut, "--checkpoint-every-steps", "2", "--resume")) == 0
    a = safetensors.torch.load_file(str(full / "checkpoints" / "best.safetensors"))
    b = safetensors.torch.load_file(str(cut / "checkpoints" / "best.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha = json.loads((full / "metrics.json").read_text())["history"]
    hb = json.loads((cut / "metrics.json").read_text())["history"]
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]


@pytest.mark.slow
def test_initial_checkpoint_continues_both_heads(sources: dict[str, Path], tmp_path: Path, capsys) -> None:
    first, again = tmp_path / "first", tmp_path / "again"
    assert run_train(joint_args(sources, first, "--epochs", "1")) == 0
    best = safetensors.torch.load_file(str(first / "checkpoints" / "best.safetensors"))
    cfg = TrainConfig(dataset="gz1_sdss", output_dir="x", model="galaxy_attn_vgg_small", joint=["gz2_kaggle"])
    model = create_model(cfg, "gz1_sdss", 6)
    assert load_initial_checkpoint(model, str(first / "model")) == []  # classifier and vote head continued
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())
    # without a vote head beside the weights the head starts fresh, the rest still continues
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(first / "model" / "model.safetensors", bare)
    fresh = load_initial_checkpoint(create_model(cfg, "gz1_sdss", 6), str(bare))
    assert fresh and all(k.startswith("vote_head.") for k in fresh)
    assert (
        run_train(joint_args(sources, again, "--epochs", "1", "--initial-checkpoint", str(first / "model")))
        == 0
    )
    assert f"Continuing the weights of {first / 'model'}" in capsys.readouterr().out
    saved = json.loads((again / "train_config.json").read_text())
    assert saved["initial_checkpoint"] == str(first / "model") and (again / "metrics.json").is_file()


def test_bad_initial_checkpoints_are_named(tmp_path: Path) -> None:
    base = dict(dataset="gz1_sdss", output_dir="x", model="galaxy_attn_vgg_small")
    with pytest.raises(TrainingError, match="no safetensors weights there"):
        validate_config(TrainConfig(**base, initial_checkpoint=str(tmp_path)))
    with pytest.raises(TrainingError, match="Use one of them"):
        validate_config(TrainConfig(**{**base, "model": "galaxy_attn_vgg_tiny_s4.gz_sdss"}, pretrained=True,
                                    initial_checkpoint=str(tmp_path)))  # fmt: skip
    other = timm.create_model("galaxy_attn_vgg_tiny_s4", num_classes=6)
    safetensors.torch.save_file(other.state_dict(), str(tmp_path / "model.safetensors"))
    model = create_model(TrainConfig(**base), "gz1_sdss", 6)
    with pytest.raises(
        TrainingError, match="another network than --model galaxy_attn_vgg_small .*other shape: "
    ):
        load_initial_checkpoint(model, str(tmp_path))
