"""training/train.py: a tiny synthetic run writes every output with consistent numbers; recipes; schedules."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import timm
import torch
from conftest import tiny_args
from PIL import Image
from rescore import assert_scores_equal, fresh_logits, sklearn_scores
from sklearn.metrics import f1_score
from train_script import run_train, train

import timm_galaxy_attn
from timm_galaxy_attn.training import (
    MIN_LR_RATE,
    TrainConfig,
    build_parser,
    class_weights,
    create_model,
    epoch_order,
    heatmap_indices,
    make_lr_lambda,
    parse_args,
    resolve_config,
    resolve_data_config,
    validate_config,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = tiny_args(40, 20)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, dataset_cache) -> Path:
    """Two epochs of galaxy_attn_vgg_small with the default recipe (bf16, channels_last, augmentation)."""
    out = tmp_path_factory.mktemp("run") / "syn"
    assert run_train([*TINY, "--epochs", "2", "--output-dir", str(out)]) == 0
    return out


@pytest.mark.slow
def test_tiny_run_writes_every_output(tiny_run: Path) -> None:
    for rel in (
        "metrics.json",
        "confusion_matrix.png",
        "predictions.npz",
        "train_config.json",
        "attention/epoch_001.png",
        "attention/epoch_002.png",
        "model/config.json",
        "model/model.safetensors",
        "checkpoints/best.safetensors",
    ):
        assert (tiny_run / rel).is_file(), rel
    assert list((tiny_run / "tensorboard").rglob("events.out.tfevents.*")), "no TensorBoard events"
    ckpts = sorted((tiny_run / "checkpoints").glob("step_*"))
    assert len(ckpts) == 1 and (ckpts[0] / "model.safetensors").is_file()
    assert not list((tiny_run / "checkpoints").glob(".tmp-*"))
    for png in ("attention/epoch_001.png", "attention/epoch_002.png", "confusion_matrix.png"):
        with Image.open(tiny_run / png) as im:
            assert im.format == "PNG" and im.width > 64 and im.height > 64


@pytest.mark.slow
def test_metrics_are_consistent(tiny_run: Path) -> None:
    m = json.loads((tiny_run / "metrics.json").read_text())
    test = m["test"]
    cm = np.array(test["confusion_matrix"])
    names = m["label_names"]
    assert names == list(timm_galaxy_attn.class_names("galaxy10_decals"))
    assert cm.shape == (10, 10)
    assert test["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert cm.sum() == test["n"] == m["n"]["test"] == m["split"]["counts"]["test"]
    assert m["n"] == {"train": 40, "validation": 10, "test": 10}
    assert list(test["per_class"]) == names
    assert [v["support"] for v in test["per_class"].values()] == cm.sum(1).tolist()
    assert m["image_size"] == 32 and m["seed"] == 0 and m["epochs"] == 2 and m["dataset"] == "synthetic"
    assert m["images_per_s"] > 0 and m["wall_time_s"] >= m["train_time_s"] > 0
    assert "rule" in m["split"] and "--synthetic-per-class 10" in m["command"]
    # history: one record per epoch; the best epoch is the first maximum of validation macro-F1
    hist = m["history"]
    assert [h["epoch"] for h in hist] == [1, 2]
    f1 = [h["val_macro_f1"] for h in hist]
    assert m["best_epoch"] == 1 + int(np.argmax(f1))
    assert all(h["val_n"] == 10 for h in hist)


@pytest.mark.slow
def test_stored_logits_rescore_to_the_stored_metrics(tiny_run: Path) -> None:
    """predictions.npz, scored again by scikit-learn, gives metrics.json's test and validation numbers; the
    final validation score is the best epoch's (same weights, same images)."""
    m = json.loads((tiny_run / "metrics.json").read_text())
    p = np.load(tiny_run / "predictions.npz")
    assert list(p["label_names"]) == m["label_names"]
    assert_scores_equal(m["test"], sklearn_scores(p["test_logits"], p["test_labels"], 10))
    assert_scores_equal(m["validation"], sklearn_scores(p["val_logits"], p["val_labels"], 10))
    per_class_f1 = f1_score(p["test_labels"], p["test_logits"].argmax(1), average=None, labels=range(10))
    assert [v["f1"] for v in m["test"]["per_class"].values()] == pytest.approx(per_class_f1, abs=1e-9)
    z = p["test_logits"].astype(np.float64)
    np.testing.assert_allclose(p["test_probs"], np.exp(z) / np.exp(z).sum(1, keepdims=True), rtol=1e-12)
    best = m["history"][m["best_epoch"] - 1]
    for key in ("accuracy", "macro_f1", "balanced_accuracy", "ece", "n"):
        assert m["validation"][key] == pytest.approx(best[f"val_{key}"], abs=1e-9), key


@pytest.mark.slow
def test_model_folder_loads_with_timm_and_matches_best_weights(tiny_run: Path) -> None:
    model = timm.create_model(f"local-dir:{tiny_run / 'model'}", pretrained=True).eval()
    assert list(model.pretrained_cfg["label_names"]) == list(timm_galaxy_attn.class_names("galaxy10_decals"))
    assert model.pretrained_cfg["input_size"][-1] == 32
    best = safetensors.torch.load_file(str(tiny_run / "checkpoints" / "best.safetensors"))
    for k, v in model.state_dict().items():
        assert torch.equal(v, best[k]), k
    # the saved folder, re-run on the rebuilt test split, gives the stored logits and metrics.json's scores
    m = json.loads((tiny_run / "metrics.json").read_text())
    p = np.load(tiny_run / "predictions.npz")
    logits, labels = fresh_logits(tiny_run, "test")
    assert np.array_equal(labels, p["test_labels"])
    np.testing.assert_allclose(logits, p["test_logits"], rtol=0, atol=1e-3)  # bf16, as the run scored it
    assert_scores_equal(m["test"], sklearn_scores(logits, labels, model.num_classes))


@pytest.mark.slow
def test_resume_of_a_finished_run_does_nothing(tiny_run: Path) -> None:
    before = (tiny_run / "metrics.json").read_bytes()
    assert run_train([*TINY, "--epochs", "2", "--output-dir", str(tiny_run), "--resume"]) == 0
    assert (tiny_run / "metrics.json").read_bytes() == before


@pytest.mark.slow
def test_existing_run_dir_is_refused_and_left_alone(tiny_run: Path) -> None:
    files = {p: p.read_bytes() for p in tiny_run.rglob("*") if p.is_file() and p.suffix in (".json", ".png")}
    with pytest.raises(train.TrainingError, match="already holds files.*--resume"):
        run_train([*TINY, "--epochs", "1", "--output-dir", str(tiny_run)])
    assert all(p.read_bytes() == b for p, b in files.items())


@pytest.mark.slow
def test_resume_with_other_arguments_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(train.TrainingError, match="different arguments.*--lr"):
        run_train([*TINY, "--epochs", "2", "--lr", "0.5", "--output-dir", str(tiny_run), "--resume"])
    with pytest.raises(train.TrainingError, match="holds no run"):
        run_train([*TINY, "--epochs", "1", "--output-dir", str(tmp_path / "none"), "--resume"])


@pytest.mark.slow
def test_corrupt_checkpoint_gives_a_clear_error(tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(tiny_run, run)
    (run / "metrics.json").unlink()  # an unfinished run, resumed from its last checkpoint
    ckpt = sorted((run / "checkpoints").glob("step_*"))[-1]
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(train.TrainingError, match=r"step_\d+ cannot be loaded.*damaged or incomplete"):
        run_train([*TINY, "--epochs", "2", "--output-dir", str(run), "--resume"])
    assert weights.stat().st_size == 100  # nothing rewritten
    assert not (run / "metrics.json").exists()


def test_unknown_dataset_and_model_names(tmp_path: Path) -> None:
    with pytest.raises(train.TrainingError, match=r"Unknown dataset 'sythetic'.*Did you mean synthetic"):
        train.main(["--dataset", "sythetic", "--output-dir", str(tmp_path / "a")])
    with pytest.raises(train.TrainingError, match=r"Unknown model 'resnet181'.*Did you mean"):
        train.main([*TINY, "--model", "resnet181", "--output-dir", str(tmp_path / "b")])
    with pytest.raises(train.TrainingError, match="--stem-stride only apply to galaxy_attn_vgg"):
        validate_config(
            resolve_config(
                parse_args([*TINY, "--model", "resnet18", "--stem-stride", "2", "--output-dir", "x"])
            )
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_bad_input_exits_with_a_message_from_the_command_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "training" / "train.py"),
            "--dataset",
            "galaxy11",
            "--output-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "error: Unknown dataset 'galaxy11'" in proc.stderr and "Traceback" not in proc.stderr


def test_paper_recipe_halves_the_lr_every_25_epochs() -> None:
    cfg = resolve_config(parse_args(["--dataset", "synthetic", "--recipe", "paper", "--output-dir", "x"]))
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay) == ("sgd", 0.1, 0.9, 5e-4)
    assert (cfg.batch_size, cfg.image_size, cfg.sched) == (128, 32, "step")
    spe = 7
    factor = make_lr_lambda(cfg, steps_per_epoch=spe)
    assert factor(0) == 1.0
    assert factor(25 * spe - 1) == 1.0  # last step of epoch 25 (index 24)
    assert factor(25 * spe) == 0.5  # first step of epoch 26 (index 25)
    assert factor(50 * spe) == 0.25 and factor(75 * spe + 3) == 0.125


def test_default_recipe_warms_up_then_decays_by_cosine() -> None:
    assert MIN_LR_RATE == 0.01
    lr_factor = make_lr_lambda(TrainConfig(epochs=10, sched="cosine", warmup_epochs=1), steps_per_epoch=10)
    f = [lr_factor(s) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(f[:9], f[1:10], strict=True))  # warmup rises
    assert all(a >= b for a, b in zip(f[10:-1], f[11:], strict=True))  # cosine falls
    assert f[-1] == pytest.approx(0.01, abs=1e-3)
    assert lr_factor(55) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_explicit_arguments_override_the_recipe() -> None:
    explicit = parse_args(
        ["--dataset", "synthetic", "--recipe", "paper", "--lr", "0.05", "--flip", "--output-dir", "x"]
    )
    cfg = resolve_config(explicit)
    assert cfg.lr == 0.05 and cfg.flip is True and cfg.momentum == 0.9
    assert explicit == {
        "dataset": "synthetic",
        "recipe": "paper",
        "lr": 0.05,
        "flip": True,
        "output_dir": "x",
    }
    default = resolve_config(parse_args(["--dataset", "synthetic", "--output-dir", "x"]))
    assert (
        default.optimizer == "adamw"
        and default.mixed_precision == "auto"  # resolved to bf16 on CPUs with native bf16
        and default.rotate == "any"
    )


def test_a_variant_brings_its_input_size_and_takes_the_tags_it_has() -> None:
    def cfg_for(*extra: str) -> TrainConfig:
        return resolve_config(parse_args(["--dataset", "gz1_sdss", *extra, "--output-dir", "x"]))

    s4 = cfg_for("--model", "galaxy_attn_vgg_small_s4")
    assert resolve_data_config("gz1_sdss", s4)["input_size"] == (3, 128, 128)  # not the 32 px default
    assert resolve_data_config("gz1_sdss", cfg_for())["input_size"] == (3, 32, 32)
    assert resolve_data_config(
        "gz1_sdss", cfg_for("--model", "galaxy_attn_vgg_small_s4", "--image-size", "256")
    )["input_size"] == (3, 256, 256)
    tiny = create_model(cfg_for("--model", "galaxy_attn_vgg_tiny_s4"), "gz1_sdss", 6)
    assert tiny.stem_stride == 4 and tiny.pretrained_cfg["tag"] == "gz1_sdss"  # its tag: the class names
    model = create_model(s4, "gz1_sdss", 6)  # no tag of the variant (no weights): the bare variant
    assert model.stem_stride == 4 and model.num_classes == 6 and not model.pretrained_cfg.get("tag")


def test_class_weights_and_balanced_order() -> None:
    labels = torch.tensor([0] * 90 + [1] * 10)
    w = class_weights(labels, 2, power=1.0)
    assert w[labels].mean() == pytest.approx(1.0) and w[1] / w[0] == pytest.approx(9.0)
    cfg = TrainConfig(seed=3, balance="sampler", balance_power=1.0)
    order = epoch_order(cfg, 0, labels, 2)
    assert torch.equal(order, epoch_order(cfg, 0, labels, 2))  # same (seed, epoch), same order
    assert not torch.equal(order, epoch_order(cfg, 1, labels, 2))
    assert 0.35 < (labels[order] == 1).float().mean() < 0.65  # the rare class drawn about half the time
    perm = epoch_order(TrainConfig(seed=3, balance="none"), 0, labels, 2)
    assert sorted(perm.tolist()) == list(range(100))


def test_heatmap_galaxies_cover_the_classes() -> None:
    labels = torch.tensor([2, 2, 0, 1, 0, 2, 1])
    assert heatmap_indices(labels, 4) == [2, 3, 0, 4]
    assert sorted(heatmap_indices(labels, 99)) == list(range(7))


def test_parser_options_are_the_config_fields() -> None:
    import dataclasses

    dests = {a.dest for a in build_parser()._actions if a.dest != "help"}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert fields - dests == {"command", "timm_galaxy_attn_version"} and dests <= fields
    cfg = resolve_config(parse_args(["--dataset", "synthetic", "--output-dir", "x"]))
    assert isinstance(cfg, TrainConfig) and cfg.lr == 2e-3 and cfg.compile is False


def test_torch_schedulers_give_the_closed_form_rates_of_every_group() -> None:
    from timm_galaxy_attn.training import build_scheduler

    def closed_form(step: int, spe: int, cfg: dict) -> float:
        warmup = int(round(cfg["warmup_epochs"] * spe))
        if step < warmup:
            return (step + 1) / warmup
        if cfg["sched"] == "step":
            return cfg["decay_rate"] ** ((step // spe) // cfg["decay_epochs"])
        if cfg["sched"] == "constant":
            return 1.0
        progress = min((step - warmup) / max(cfg["epochs"] * spe - warmup, 1), 1.0)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))

    for sched, warmup, rate in (
        ("cosine", 1.5, 0.5),
        ("step", 2, 0.3),
        ("step", 0, 0.5),
        ("constant", 1, 0.5),
    ):
        cfg = dict(epochs=6, sched=sched, warmup_epochs=warmup, decay_epochs=2, decay_rate=rate)
        config = TrainConfig(**cfg)
        params = [torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)]
        optimizer = torch.optim.AdamW(
            [{"params": params[:1], "lr": 1e-3}, {"params": params[1:], "lr": 1e-4}]
        )
        scheduler = build_scheduler(optimizer, config, steps_per_epoch=4)
        for step in range(6 * 4 + 1):
            expected = closed_form(step, 4, cfg)
            head, backbone = (g["lr"] for g in optimizer.param_groups)
            assert head == pytest.approx(1e-3 * expected, rel=1e-12), (sched, step)
            assert backbone == pytest.approx(1e-4 * expected, rel=1e-12), (sched, step)
            optimizer.step()
            scheduler.step()


@pytest.mark.slow
def test_compile_flag_compiles_the_training_model(monkeypatch, tmp_path: Path, dataset_cache: Path) -> None:
    compiled = []

    def fake_compile(model, *args, **kwargs):
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    out = tmp_path / "compiled"
    argv = [*TINY, "--epochs", "1", "--compile", "--stop-after-steps", "1", "--output-dir", str(out)]
    assert run_train(argv) == 0
    assert len(compiled) == 1 and isinstance(compiled[0], timm_galaxy_attn.GalaxyAttnVGG)
    assert json.loads((out / "train_config.json").read_text())["compile"] is True


def test_the_parser_holds_no_defaults_and_help_shows_the_config_s() -> None:
    import argparse

    parser = build_parser()
    assert all(a.default is argparse.SUPPRESS for a in parser._actions if a.dest != "help")
    help_text = " ".join(parser.format_help().split())
    assert f"(default: {TrainConfig.eval_batch_size})" in help_text
    assert "(--recipe paper: 0.1, default: 0.002)" in help_text  # --lr: each recipe's value


def test_recipes_set_exactly_the_recipe_fields() -> None:
    import dataclasses

    from timm_galaxy_attn.training import RECIPES

    recipe_fields = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("recipe")}
    assert all(set(recipe) == recipe_fields for recipe in RECIPES.values())
    assert resolve_config({}) == TrainConfig()  # the field defaults are the default recipe


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
        (["--lr", "-1"], "--lr -1.0: must be > 0"),
        (["--checkpoint-every-steps", "-2"], "--checkpoint-every-steps -2: must be >= 0"),
        (["--dataset-name", "galaxy11"], "--dataset-name 'galaxy11' is not one of"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(extra, message, tmp_path: Path) -> None:
    with pytest.raises(train.TrainingError, match=message):
        train.main([*TINY, *extra, "--output-dir", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_timm_optimizer_keeps_norms_and_biases_out_of_weight_decay() -> None:
    from timm_galaxy_attn.training import make_optimizer

    model = create_model(TrainConfig(), None, 10)
    for name, lr, momentum, wd in (("sgd", 0.1, 0.8, 5e-4), ("adamw", 2e-3, 0.9, 0.05)):
        cfg = TrainConfig(optimizer=name, lr=lr, momentum=momentum, weight_decay=wd)
        optimizer = make_optimizer(model, cfg)
        kind = torch.optim.SGD if name == "sgd" else torch.optim.AdamW
        assert type(optimizer) is kind and all(g["lr"] == lr for g in optimizer.param_groups)
        if name == "sgd":  # classical momentum, as the paper's
            assert all(g["momentum"] == momentum and not g["nesterov"] for g in optimizer.param_groups)
        decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == wd for p in g["params"]}
        no_decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
        named = dict(model.named_parameters())
        assert no_decay == {id(p) for n, p in named.items() if p.ndim <= 1 or n.endswith(".bias")}
        assert decay | no_decay == {id(p) for p in model.parameters()} and not decay & no_decay
