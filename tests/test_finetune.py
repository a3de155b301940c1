"""Fine-tuning: train.py --pretrained (fresh head, frozen backbone, backbone lr group, clear errors), parquet
sets with their own class names and a group column, the transformers route, and benchmarks/finetune.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import safetensors.torch
import timm
import torch
from conftest import REPO_ROOT, load_script
from train_script import run_train, train

import timm_galaxy_attn  # registers the models and the transformers classes
from timm_galaxy_attn.data import GalaxyDataError, load_galaxy_dataset
from timm_galaxy_attn.data.splits import iau_name_to_radec
from timm_galaxy_attn.hf import save_pretrained_folder
from timm_galaxy_attn.training import (
    TrainConfig,
    finetune_data_config,
    finetune_model,
    head_parameter_names,
    load_pretrained,
    make_lr_lambda,
    make_optimizer,
)

SHIPPED_TAG = "galaxy_attn_vgg_tiny_s4.gz1_sdss"
# A data config no dataset default has: the runs must take it from the weights.
PRETRAINED_DATA = {"input_size": (3, 128, 128), "crop_pct": 0.75, "mean": (0.1, 0.2, 0.3), "std": (0.25,) * 3}
NAMES = ["not ring", "ring"]

pytestmark = pytest.mark.usefixtures("dataset_cache")


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """galaxy_attn_vgg_tiny_s4 with 3 classes, random weights and random BatchNorm statistics, as a folder."""
    torch.manual_seed(1)
    model = timm.create_model("galaxy_attn_vgg_tiny_s4", num_classes=3).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    folder = tmp_path_factory.mktemp("pretrained") / "model"
    return save_pretrained_folder(model, folder, label_names=["a", "b", "c"], data_config=PRETRAINED_DATA)


def iau_name(ra_deg: float, dec_deg: float) -> str:
    h, rem = divmod(ra_deg / 15 * 3600, 3600)
    m, s = divmod(rem, 60)
    d, rem = divmod(abs(dec_deg) * 3600, 3600)
    am, asec = divmod(rem, 60)
    sign = "+" if dec_deg >= 0 else "-"
    return f"J{int(h):02d}{int(m):02d}{s:05.2f}{sign}{int(d):02d}{int(am):02d}{asec:04.1f}"


@pytest.fixture(scope="module")
def rings_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 made-up 48 px galaxies of two classes with an iauname column.

    Rows 0 and 2 share a name; rows 4 and 6 lie 2 arcsec apart."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (48, 48, 3), dtype=np.uint8) for _ in range(40)]
    labels = [i % 2 for i in range(40)]
    names = [iau_name(10 + i, -5 + 0.1 * i) for i in range(40)]
    names[2] = names[0]
    names[6] = iau_name(14 + 2 / 3600, -4.6)  # 2 arcsec from row 4 (ra 14, dec -4.6)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=NAMES),
            "iauname": datasets.Value("string"),
        }
    )
    ds = datasets.Dataset.from_dict({"image": images, "label": labels, "iauname": names}, features=features)
    path = tmp_path_factory.mktemp("rings") / "data.parquet"
    ds.to_parquet(str(path))
    return path


def finetune_args(parquet: Path, folder: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset", str(parquet), "--group-column", "iauname", "--val-fraction", "0.2", "--test-fraction",
        "0.2", "--model", f"local-dir:{folder}", "--pretrained", "--epochs", "1", "--batch-size", "8",
        "--num-heatmaps", "0", "--output-dir", str(out), *extra,
    ]  # fmt: skip


def cfg_for(folder: Path, **kw) -> TrainConfig:
    base = {"model": f"local-dir:{folder}", "pretrained": True, "drop_rate": None, "freeze_backbone": False}
    base.update(backbone_lr_scale=1.0, image_size=None, crop_pct=None, optimizer="adamw", lr=1e-3)
    return TrainConfig(**{**base, "weight_decay": 0.05, "momentum": 0.9, **kw})


def test_iau_names_give_positions() -> None:
    ra, dec = iau_name_to_radec(["J000411.19+020924.0", "SDSS J123000.00-013000.0"])
    assert ra == pytest.approx([15 * (4 / 60 + 11.19 / 3600), 187.5])
    assert dec == pytest.approx([2 + 9 / 60 + 24 / 3600, -1.5])
    assert iau_name_to_radec(["J000411.19+020924.0", "NGC 1300"]) is None


def test_parquet_with_own_classes_splits_grouped_and_deterministic(
    rings_parquet: Path, tmp_path: Path
) -> None:
    kw = dict(seed=3, val_fraction=0.2, test_fraction=0.2, group_column="iauname")
    ds = load_galaxy_dataset(rings_parquet, **kw)
    again = load_galaxy_dataset(rings_parquet, cache_dir=tmp_path, **kw)  # a fresh build, same split
    assert ds["train"].features["label"].names == NAMES
    side: dict[str, set[str]] = {}
    for split in ds:
        assert ds[split]["iauname"] == again[split]["iauname"]
        assert abs(np.diff(np.bincount(ds[split]["label"], minlength=2))[0]) <= 2  # stratified
        for name in ds[split]["iauname"]:
            side.setdefault(name, set()).add(split)
    assert sum(len(ds[s]) for s in ds) == 40 and all(len(v) == 1 for v in side.values())
    near = [iau_name(14, -4.6), iau_name(14 + 2 / 3600, -4.6)]  # rows 4 and 6
    assert side[near[0]] == side[near[1]]
    info = json.loads(ds["train"].info.description)["grouping"]
    assert info["same_key_pairs"] == 1 and info["sky_pairs_within_arcsec"] == 2  # 0/2 also share a position
    assert info["positions_from_iau_names"] is True and info["multi_image_groups"] == 2
    with pytest.raises(GalaxyDataError, match="group column 'objid' does not exist"):
        load_galaxy_dataset(rings_parquet, seed=0, group_column="objid")


def test_fresh_head_and_backbone_equal_to_the_pretrained_weights(pretrained_dir: Path) -> None:
    reference = safetensors.torch.load_file(str(pretrained_dir / "model.safetensors"))
    model, _ = finetune_model(load_pretrained(cfg_for(pretrained_dir)), 2, cfg_for(pretrained_dir))
    assert model.num_classes == 2 and model.get_classifier().out_features == 2
    state = model.state_dict()
    assert set(state) == set(reference)
    for key, value in state.items():
        if not key.startswith("fc."):
            assert torch.equal(value, reference[key]), key
    assert reference["fc.weight"].shape[0] == 3 and state["fc.weight"].shape[0] == 2
    data_config = finetune_data_config(model, cfg_for(pretrained_dir))
    assert data_config["crop_pct"] == 0.75 and data_config["mean"] == (0.1, 0.2, 0.3)
    assert data_config["input_size"] == (3, 128, 128)


def test_backbone_lr_group_is_scaled(pretrained_dir: Path) -> None:
    cfg = cfg_for(pretrained_dir, backbone_lr_scale=0.1)
    model, _ = finetune_model(load_pretrained(cfg), 2, cfg)
    optimizer = make_optimizer(model, cfg)
    # each part in a decay and a no-decay group (norms, biases and other 1-D parameters)
    parts = {part: [g for g in optimizer.param_groups if g["part"] == part] for part in ("head", "backbone")}
    groups = {
        part: {"lr": gs[0]["lr"], "params": [p for g in gs for p in g["params"]]}
        for part, gs in parts.items()
    }
    assert all(g["lr"] == groups[g["part"]]["lr"] for g in optimizer.param_groups)
    assert groups["head"]["lr"] == pytest.approx(1e-3) and groups["backbone"]["lr"] == pytest.approx(1e-4)
    named = dict(model.named_parameters())
    head = {id(named[n]) for n in head_parameter_names(model)}
    assert {id(p) for p in groups["head"]["params"]} == head
    one_d = {id(p) for n, p in named.items() if p.ndim <= 1 or n.endswith(".bias")}
    assert one_d == {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.0, 0.05}
    assert {n.split(".")[0] for n in head_parameter_names(model)} == {"fc", "attn1", "attn2", "attn3"}
    all_ids = {id(p) for g in groups.values() for p in g["params"]}
    assert all_ids == {id(p) for p in model.parameters()}
    lr_lambda = make_lr_lambda(
        TrainConfig(epochs=2, sched="cosine", warmup_epochs=1, decay_epochs=25, decay_rate=0.5), 3
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
        lrs = dict(zip((g["part"] for g in optimizer.param_groups), scheduler.get_last_lr(), strict=True))
        assert lrs["backbone"] == pytest.approx(0.1 * lrs["head"])


@pytest.mark.slow
def test_frozen_backbone_run_changes_only_the_head(
    rings_parquet: Path, pretrained_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "frozen"
    assert run_train(finetune_args(rings_parquet, pretrained_dir, out, "--freeze-backbone")) == 0
    reference = safetensors.torch.load_file(str(pretrained_dir / "model.safetensors"))
    tuned = safetensors.torch.load_file(str(out / "model" / "model.safetensors"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["label_names"] == NAMES and tuned["fc.weight"].shape == (2, 384)
    for key, value in tuned.items():  # weights and BatchNorm statistics of the backbone: untouched
        if key.split(".")[0] not in ("fc", "attn1", "attn2", "attn3"):
            assert torch.equal(value, reference[key]), key
    assert not torch.equal(tuned["attn3.op.weight"], reference["attn3.op.weight"])  # the estimators train
    assert metrics["finetune"]["trainable_params"] == 384 * 2 + 2 + 3 * 128
    assert metrics["data_config"]["crop_pct"] == 0.75 and metrics["data_config"]["mean"] == [0.1, 0.2, 0.3]
    loaded = timm.create_model(f"local-dir:{out / 'model'}", pretrained=True)
    assert loaded.num_classes == 2 and loaded.pretrained_cfg["label_names"] == NAMES


@pytest.mark.parametrize(
    ("extra", "model", "message"),
    [
        (["--freeze-backbone"], "galaxy_attn_vgg_tiny_s4", "--freeze-backbone needs --pretrained"),
        (["--backbone-lr-scale", "0.1"], "galaxy_attn_vgg_tiny_s4", "--backbone-lr-scale needs --pretrained"),
        (["--pretrained"], "galaxy_attn_vgg_tiny_s4.nope", "has no tag 'nope'"),
        (["--pretrained"], "galaxy_attn_vgg_small", "Cannot load the pretrained weights"),
        (["--pretrained"], "local-dir:/no/such/folder", "is not a model folder"),
        ([], "local-dir:/no/such/folder", "names trained weights: add --pretrained"),
        (["--pretrained", "--stem-stride", "2"], SHIPPED_TAG, "the architecture comes with the weights"),
        (["--pretrained", "--freeze-backbone", "--backbone-lr-scale", "0.1"], SHIPPED_TAG, "no effect"),
        (["--pretrained", "--backbone-lr-scale", "0"], SHIPPED_TAG, "must be > 0"),
    ],
)
def test_bad_fine_tuning_input_is_a_clear_error(
    extra: list[str], model: str, message: str, rings_parquet: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    argv = ["--dataset", str(rings_parquet), "--model", model, *extra, "--output-dir", str(out)]
    with pytest.raises(train.TrainingError, match=message):
        run_train(argv)
    assert not out.exists()  # refused before anything was written


@pytest.mark.slow
def test_command_line_error_has_no_traceback(tmp_path: Path) -> None:
    argv = ["--dataset", "synthetic", "--freeze-backbone", "--output-dir", str(tmp_path / "x")]
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "training" / "train.py"), *argv], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: --freeze-backbone needs --pretrained")


def test_shipped_tag_loads_with_its_data_config() -> None:
    assert SHIPPED_TAG in timm.list_pretrained("galaxy_attn*")  # registered with weights, always
    model = load_pretrained(TrainConfig(model=SHIPPED_TAG, pretrained=True))
    # the weights come from the package data (timm_galaxy_attn/pretrained/<tag>/), the same files
    weights = timm_galaxy_attn.pretrained_path(SHIPPED_TAG) / "model.safetensors"
    assert model.pretrained_cfg["file"] == str(weights)
    reference = safetensors.torch.load_file(str(weights))
    assert all(torch.equal(v.float(), reference[k].float()) for k, v in model.state_dict().items())
    config = finetune_data_config(model, TrainConfig())
    assert config["input_size"] == (3, 128, 128) and config["crop_pct"] == 0.5
    assert finetune_model(model, 2, TrainConfig())[0].get_classifier().out_features == 2


class _Pixels(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 3, 128, 128, generator=g), torch.arange(n) % 2

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.x[i], "labels": self.y[i]}


def test_transformers_fresh_head_and_one_trainer_step(tmp_path: Path) -> None:
    from transformers import AutoModelForImageClassification, Trainer, TrainingArguments

    folder = timm_galaxy_attn.pretrained_path(SHIPPED_TAG)  # package data: the folder the tag loads
    model = AutoModelForImageClassification.from_pretrained(
        folder, num_labels=2, ignore_mismatched_sizes=True
    )
    reference = safetensors.torch.load_file(str(folder / "model.safetensors"))
    start = {k: v.detach().clone() for k, v in model.timm_model.state_dict().items()}
    assert model.config.num_labels == 2 and start["fc.weight"].shape == (2, 384)
    for key, value in start.items():
        if not key.startswith("fc."):
            assert torch.equal(value.float(), reference[key].float()), key
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"), max_steps=1, per_device_train_batch_size=4, learning_rate=1e-3,
        report_to=[], save_strategy="no", use_cpu=True, dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    result = Trainer(model=model, args=args, train_dataset=_Pixels(8)).train()
    assert result.global_step == 1 and np.isfinite(result.training_loss)
    assert not torch.equal(model.timm_model.fc.weight.detach(), start["fc.weight"])


@pytest.mark.slow
def test_benchmark_quick_mode(rings_parquet: Path, pretrained_dir: Path, tmp_path: Path) -> None:
    bench = load_script("benchmarks/finetune.py", "finetune_benchmark")
    argv = [
        "--quick", "--dataset", str(rings_parquet), "--model", f"local-dir:{pretrained_dir}",
        "--scratch-model", "galaxy_attn_vgg_tiny_s4", "--results-dir", str(tmp_path / "results"),
        "--runs-dir", str(tmp_path / "runs"), "--n-boot", "50",
    ]  # fmt: skip
    assert bench.main(argv) == 0
    summary = json.loads((tmp_path / "results" / "results.json").read_text())
    assert set(summary["conditions"]) == set(bench.CONDITIONS)
    assert summary["conditions"]["frozen"]["trainable_params"] == 384 * 2 + 2 + 3 * 128
    assert summary["paired_vs_scratch"]["finetune"]["seeds"] == [0]
    assert summary["setup"]["data_config"]["crop_pct"] == 0.75  # scratch runs saw the pretrained input too
    text = (tmp_path / "results" / "results.md").read_text()
    assert "| frozen | 1 |" in text and "ROC-AUC" in text
    with pytest.raises(bench.BenchmarkError, match="not the architecture"):
        bench.main([*argv, "--scratch-model", "galaxy_attn_vgg_small"])
