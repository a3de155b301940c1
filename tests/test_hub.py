"""hub/publish.py: the repository folder and card of a training run; pretrained=True from an offline cache."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import timm
import yaml
from conftest import load_script, tiny_args

from timm_galaxy_attn.device import machine_description, native_bf16
from timm_galaxy_attn.pretrained import SHIPPED_TAGS, pretrained_path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT.parent / "shared" / "data" / "galaxy10_decals_examples"
REPO_ID = "test-org/galaxy-attn-tiny"

publish = load_script("hub/publish.py", "publish")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real run of training/train.py (synthetic set: Galaxy10 DECaLS class names, 10 classes)."""
    out = tmp_path_factory.mktemp("hub_run") / "run"
    cmd = [
        sys.executable, str(ROOT / "training" / "train.py"), *tiny_args(20, 20, 6),
        "--model", "galaxy_attn_vgg_small", "--epochs", "1", "--num-heatmaps", "2", "--output-dir", str(out),
    ]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TQDM_DISABLE="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def repo(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hub_repo") / "repo"
    card_copy = out.parent / "model_card.md"
    code = publish.main(
        [str(run_dir), "--repo-id", REPO_ID, "--dry-run", "--out", str(out), "--model-card", str(card_copy)]
    )
    assert code == 0
    return out


def split_card(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n")
    _, meta, body = text.split("---\n", 2)
    return yaml.safe_load(meta), body


@pytest.mark.slow
def test_dry_run_folder_and_card(repo: Path, run_dir: Path) -> None:
    names = sorted(p.name for p in repo.iterdir())
    assert names == [
        "README.md",
        "config.json",
        "figures",
        "metrics.json",
        "model.safetensors",
        "preprocessor_config.json",
    ]
    figures = sorted(p.name for p in (repo / "figures").iterdir())
    assert figures == ["attention_epoch_001.png", "confusion_matrix.png"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    meta, body = split_card((repo / "README.md").read_text())
    assert meta["library_name"] == "timm" and meta["license"] == "apache-2.0"
    assert meta["pipeline_tag"] == "image-classification" and meta["datasets"] == ["synthetic"]
    assert {"timm", "transformers", "image-classification"} <= set(meta["tags"])
    results = meta["model-index"][0]["results"][0]
    values = {m["type"]: m["value"] for m in results["metrics"]}
    assert values == {k: metrics["test"][k] for k in ("accuracy", "balanced_accuracy", "ece")} | {
        "f1": metrics["test"]["macro_f1"]
    }
    # every figure is referenced, every reference exists
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", body)
    assert sorted(refs) == sorted(f"figures/{f}" for f in figures)
    # the per-class table and confusion matrix are metrics.json's numbers
    for cls, pc in metrics["test"]["per_class"].items():
        assert (
            f"| {cls} | {pc['precision']:.4f} | {pc['recall']:.4f} | {pc['f1']:.4f} | {pc['support']} |"
            in body
        )
    for i, row in enumerate(metrics["test"]["confusion_matrix"]):
        assert f"| {i} {metrics['label_names'][i]} | " + " | ".join(str(v) for v in row) + " |" in body
    assert f"| test | {metrics['test']['n']} | {metrics['test']['accuracy']:.4f} |" in body
    # what a reader needs: how to load, the command, limits, citations; no template left
    for needle in (
        f'timm.create_model("hf-hub:{REPO_ID}", pretrained=True)',
        f'pipeline("image-classification", model="{REPO_ID}")',
        "pip install timm-galaxy-attn",
        "accelerate launch training/train.py --dataset synthetic",
        "## Intended use",
        "## Limitations",
        "do not classify real galaxies",
        "Misquith",
        "Learn To Pay Attention",
        "Leung, Henry W. and Bovy, Jo",
        "The Sloan Digital Sky Survey",
        "Galaxy Zoo",
    ):
        assert needle in body, needle
    assert not re.search(r"\{[a-z_]+\}|TODO|TBD|None\b|nan\b|n/a", body)
    # the published folder loads in timm with the run's weights and the repo id recorded
    config = json.loads((repo / "config.json").read_text())
    assert config["pretrained_cfg"]["hf_hub_id"] == REPO_ID
    model = timm.create_model(f"local-dir:{repo}", pretrained=True)
    assert model.pretrained_cfg["label_names"] == metrics["label_names"]


@pytest.mark.slow
def test_card_regenerates_from_the_folder(repo: Path) -> None:
    card = (repo / "README.md").read_text()
    assert publish.render_model_card(repo) == card
    assert (repo.parent / "model_card.md").read_text() == card  # --model-card copies it


@pytest.mark.slow
def test_extra_figure_and_results_table(run_dir: Path, tmp_path: Path) -> None:
    table = tmp_path / "table.md"
    table.write_text("| model | macro-F1 |\n|---|---:|\n| galaxy_attn_vgg_small | 0.5000 |\n")
    grid = next((run_dir / "attention").glob("epoch_*.png"))
    figure = tmp_path / "per_class_attention.png"
    shutil.copyfile(grid, figure)
    out = publish.build_repo_folder(
        run_dir, REPO_ID, tmp_path / "repo", figures_extra=[figure], results_table=table
    )
    card = (out / "README.md").read_text()
    assert "## Comparison" in card and "| galaxy_attn_vgg_small | 0.5000 |" in card
    assert "![per class attention](figures/per_class_attention.png)" in card
    assert (out / "figures" / "per_class_attention.png").is_file()
    assert publish.render_model_card(out) == card
    with pytest.raises(publish.PublishError, match="not a PNG"):
        publish.build_repo_folder(run_dir, REPO_ID, tmp_path / "r2", figures_extra=[table])
    assert not (tmp_path / "r2").exists()


@pytest.mark.slow
def test_figure_caption_from_the_command_line(run_dir: Path, tmp_path: Path) -> None:
    grid = next((run_dir / "attention").glob("epoch_*.png"))
    figure = tmp_path / "per_class_attention.png"
    shutil.copyfile(grid, figure)
    caption = "Validation galaxies per class with their three attention maps."
    out = tmp_path / "repo"
    argv = [str(run_dir), "--repo-id", REPO_ID, "--dry-run", "--out", str(out)]
    assert publish.main([*argv, "--figure", str(figure), caption]) == 0
    card = (out / "README.md").read_text()
    alt = caption.rstrip(".")  # the caption is the alt text too (screen readers), not the file name
    assert f"![{alt}](figures/per_class_attention.png)\n\n*{caption}*" in card
    assert json.loads((out / "figures" / "captions.json").read_text()) == {figure.name: caption}
    assert publish.render_model_card(out) == card  # the caption lives in the folder
    bad = [str(run_dir), "--repo-id", REPO_ID, "--dry-run", "--out", str(tmp_path / "r2")]
    assert publish.main([*bad, "--figure", str(figure), "a", "b"]) == 2
    assert not (tmp_path / "r2").exists()


@pytest.mark.slow
def test_a_continued_run_keeps_how_its_start_was_trained(repo: Path, run_dir: Path, tmp_path: Path) -> None:
    start = tmp_path / "start"
    shutil.copytree(repo, start)  # a published folder: the weights a later run continued
    later = tmp_path / "later"
    shutil.copytree(run_dir, later, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    metrics = json.loads((later / "metrics.json").read_text())
    metrics["config"]["initial_checkpoint"] = str(start)
    metrics["command"] += f" --initial-checkpoint {start}"
    (later / "metrics.json").write_text(json.dumps(metrics))
    first = json.loads((start / "metrics.json").read_text())
    out = publish.build_repo_folder(later, REPO_ID, start, overwrite=True)  # replaces the folder it read
    lineage = json.loads((out / "metrics.json").read_text())["continued_from"]
    assert lineage["command"] == first["command"] and lineage["epochs"] == first["epochs"]
    card = (out / "README.md").read_text()
    assert "# then continued from the weights above (--initial-checkpoint):" in card
    assert card.count("accelerate launch training/train.py") == 2
    row = next(line for line in card.splitlines() if line.startswith("| training time |"))
    assert row.count(" min (") == 2 and row.count(machine_description()) == 2, row
    assert "| recipe | default, 1 + 1 epochs" in card and publish.render_model_card(out) == card
    shutil.rmtree(start)  # the folder it continued is gone: no card can say how the weights began
    with pytest.raises(publish.PublishError, match="has no metrics.json"):
        publish.build_repo_folder(later, REPO_ID, tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("tag", SHIPPED_TAGS)
def test_shipped_model_card_is_in_sync(tag: str) -> None:
    """Each shipped folder's README.md is its card, regenerated from the folder."""
    folder = pretrained_path(tag)
    regenerated = publish.render_model_card(folder)
    assert (folder / "README.md").read_text() == regenerated, f"rerun hub/publish.py for {tag}"
    assert f'timm.create_model("{tag}", pretrained=True)' in regenerated  # the tag is named
    assert str(ROOT) not in regenerated  # no path of the machine that built it


@pytest.mark.slow
def test_publish_refuses_bad_input(run_dir: Path, tmp_path: Path) -> None:
    assert (
        publish.main(
            [str(tmp_path / "nowhere"), "--repo-id", REPO_ID, "--dry-run", "--out", str(tmp_path / "o")]
        )
        == 2
    )
    with pytest.raises(publish.PublishError, match="ORG/NAME"):
        publish.build_repo_folder(run_dir, "no-slash", tmp_path / "o")
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    metrics = json.loads((broken / "metrics.json").read_text())
    metrics["label_names"] = list(reversed(metrics["label_names"]))
    (broken / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(publish.PublishError, match="different runs"):
        publish.build_repo_folder(broken, REPO_ID, tmp_path / "o")
    assert not (tmp_path / "o").exists()
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("x")
    with pytest.raises(publish.PublishError, match="--force"):
        publish.build_repo_folder(run_dir, REPO_ID, tmp_path / "o")


@pytest.mark.slow
def test_upload_refuses_a_repo_of_another_dataset(
    repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The existing card's datasets are compared before anything is created or uploaded."""
    import huggingface_hub

    other = tmp_path / "README.md"
    other.write_text("---\nlibrary_name: timm\ndatasets:\n- gz1_sdss\n---\n# other\n")
    calls: list[str] = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: str(other))
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, *a, **k: calls.append("create"))
    monkeypatch.setattr(
        huggingface_hub.HfApi, "upload_folder", lambda self, **k: calls.append("upload") or "url"
    )
    with pytest.raises(publish.PublishError, match="gz1_sdss"):
        publish.upload_folder(repo, REPO_ID)
    assert calls == []
    assert publish.upload_folder(repo, REPO_ID, force=True) == "url" and calls == ["create", "upload"]


def _place_in_cache(folder: Path, cache: Path, repo_id: str, sha: str = "0" * 40) -> None:
    """Lay ``folder`` out as huggingface_hub's cache does: models--org--name/{refs/main, snapshots/<sha>/}."""
    base = cache / ("models--" + repo_id.replace("/", "--"))
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(sha)
    shutil.copytree(folder, base / "snapshots" / sha)


LOAD_SCRIPT = r"""
import json, sys
import torch, timm
import timm_galaxy_attn
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

repo_id, image_path = sys.argv[1:3]
x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
out = {}
with torch.no_grad():
    out["hf_hub"] = timm.create_model(f"hf-hub:{repo_id}", pretrained=True).eval()(x).tolist()
    out["overlay"] = timm.create_model("galaxy_attn_vgg_small", pretrained=True,
        pretrained_cfg_overlay=dict(hf_hub_id=repo_id)).eval()(x).tolist()
    model = AutoModelForImageClassification.from_pretrained(repo_id).eval()
    out["transformers"] = model(pixel_values=x).logits.tolist()
    image = Image.open(image_path).convert("RGB")
    probs = model(**AutoImageProcessor.from_pretrained(repo_id)(image)).logits.softmax(-1)[0]
out["probs"] = {model.config.id2label[i]: p for i, p in enumerate(probs.tolist())}
result = pipeline("image-classification", model=repo_id)(image, top_k=model.config.num_labels)
out["pipeline"] = {r["label"]: r["score"] for r in result}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_pretrained_from_offline_hf_cache(repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "hf" / "hub"
    _place_in_cache(repo, cache, REPO_ID)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(cache))
    image = sorted(EXAMPLES.glob("*.png"))[0]
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, REPO_ID, str(image)],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    reference = timm.create_model(f"local-dir:{repo}", pretrained=True).eval()
    import torch

    with torch.no_grad():
        expected = reference(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    for key in ("hf_hub", "overlay", "transformers"):
        torch.testing.assert_close(torch.tensor(out[key]), expected, rtol=0, atol=1e-5, msg=key)
    assert out["pipeline"].keys() == out["probs"].keys()
    for label, p in out["probs"].items():
        assert abs(out["pipeline"][label] - p) < 1e-5


def test_missing_cache_entry_fails_fast_naming_the_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from timm_galaxy_attn.hf import GalaxyAttnForImageClassification

    missing = "test-org/not-in-the-cache"
    connects: list = []  # fast: offline, no host lookup or connection is even tried (no timeouts, no retries)

    def refuse(*args, **kwargs):
        connects.append(args)
        raise OSError("no connection may be opened here (test)")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    with pytest.raises(Exception) as info:
        timm.create_model(f"hf-hub:{missing}", pretrained=True, cache_dir=tmp_path)
    chain = "".join(traceback.format_exception(info.value))
    assert missing in chain  # huggingface_hub names the URL of the repo in the chained cause
    with pytest.raises(OSError, match=missing):
        GalaxyAttnForImageClassification.from_pretrained(missing, cache_dir=tmp_path)
    assert connects == []


@pytest.mark.slow
@pytest.mark.parametrize("tag", SHIPPED_TAGS)
def test_shipped_weights_reproduce_the_benchmark(tag: str) -> None:
    """The shipped folder's test metrics are a stored benchmarks/accuracy.py run's, its preprocessing is the
    timm tag's, and its weights, loaded the way a user loads them, score the real test split the same."""
    import numpy as np
    import torch

    from timm_galaxy_attn.data import load_galaxy_dataset, normalize_batch, prepare_tensors

    folder = pretrained_path(tag)
    shipped = json.loads((folder / "metrics.json").read_text())
    stored = [
        p.parent
        for pattern in ("accuracy*/*/seed*/metrics.json", "pretrain_gz/*/seed*/metrics.json")
        for p in sorted((ROOT / "benchmarks" / "results").glob(pattern))
        if json.loads(p.read_text())["test"] == shipped["test"]
    ]
    assert stored, (
        "no stored run (benchmarks/results/accuracy*/, pretrain_gz/) has the shipped test metrics: "
        "re-ship from the benchmark"
    )
    card = (folder / "README.md").read_text()
    assert f"{shipped['test']['macro_f1']:.4f}" in card and f"{shipped['test']['accuracy']:.4f}" in card

    model = timm.create_model(tag, pretrained=True).eval()  # the packaged weights
    local = timm.create_model(f"local-dir:{folder}", pretrained=False)
    for key in ("input_size", "mean", "std", "crop_pct", "crop_mode", "interpolation", "label_names"):
        assert json.dumps(model.pretrained_cfg[key]) == json.dumps(local.pretrained_cfg[key]), key
    config = timm.data.resolve_model_data_config(model)
    x, y = prepare_tensors(
        load_galaxy_dataset(shipped["dataset"], seed=shipped["split_seed"])["test"], config
    )
    # as the run, where this CPU runs bf16 natively; elsewhere emulated bf16 would take hours for the paper's
    # widths, so fp32, which may flip a few borderline galaxies of a bf16 run
    bf16 = shipped["mixed_precision"] == "bf16" and native_bf16(torch.device("cpu"))[0]
    same_precision = bf16 or shipped["mixed_precision"] != "bf16"
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model = model.to(memory_format=torch.channels_last)
        logits = torch.cat(
            [
                model(normalize_batch(x[i : i + 256], config).contiguous(memory_format=torch.channels_last))
                for i in range(0, len(x), 256)
            ]
        ).float()
    with np.load(stored[0] / "predictions.npz") as f:
        ref_logits, ref_labels = f["test_logits"], f["test_labels"]
    assert np.array_equal(y.numpy(), ref_labels)
    agree = (logits.argmax(1).numpy() == ref_logits.argmax(1)).mean()
    min_agree, max_flips = (0.995, 2) if same_precision else (0.98, 8)
    assert agree >= min_agree, f"shipped weights agree with the benchmark run on {agree:.1%} of test images"
    accuracy = float((logits.argmax(1) == y).float().mean())
    assert abs(accuracy - shipped["test"]["accuracy"]) <= max_flips / len(y)


SHIPPED_LOAD_SCRIPT = r"""
import json, sys
import torch, timm
import timm_galaxy_attn
from PIL import Image
from transformers import pipeline

tag, image_path = sys.argv[1:3]
image = Image.open(image_path).convert("RGB")
out = {}
for source, overlay in (("package", None), ("hub_cache", dict(file=None))):  # file=None: the Hub id
    model = timm.create_model(tag, pretrained=True, pretrained_cfg_overlay=overlay).eval()
    config = timm.data.resolve_model_data_config(model)
    x = timm.data.create_transform(**config, is_training=False)(image).unsqueeze(0)
    with torch.no_grad():
        out[source] = model(x).softmax(-1)[0].tolist()
from timm_galaxy_attn.labels import MIRROR_LABEL_SWAPS, dataset_of_label_names
from timm_galaxy_attn.tta import d4_probs, mirror_permutation
swaps = MIRROR_LABEL_SWAPS[dataset_of_label_names(model.pretrained_cfg["label_names"])]
perm = mirror_permutation(model.num_classes, swaps)
with torch.no_grad():
    out["package_d4"] = d4_probs(lambda v: model(v).softmax(-1), x, perm).mean(0)[0].tolist()
classify = pipeline("image-classification", model=str(timm_galaxy_attn.pretrained_path(tag)))
result = classify(image, top_k=model.num_classes)
print(json.dumps({"input_size": config["input_size"], "labels": model.pretrained_cfg["label_names"],
                  "tta": classify.model.config.tta, "dtype": str(classify.model.dtype),
                  "pipeline": {r["label"]: r["score"] for r in result}, **out}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("tag", SHIPPED_TAGS)
def test_shipped_tag_loads_offline_from_the_package(tag: str, tmp_path: Path) -> None:
    """timm.create_model(<tag>, pretrained=True) from the packaged file with an empty, offline Hugging Face
    cache; the same weights through the tag's Hub id from a cache that holds them; the transformers pipeline
    on pretrained_path(tag): the same probabilities (the pipeline's with the folder's TTA, if any)."""
    folder = pretrained_path(tag)
    repo_id = timm.models.get_pretrained_cfg(tag).hf_hub_id
    assert repo_id == f"timm-galaxy-attn/{tag}"
    assert json.loads((folder / "config.json").read_text())["pretrained_cfg"]["hf_hub_id"] == repo_id
    cache = tmp_path / "hf" / "hub"
    _place_in_cache(folder, cache, repo_id)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(cache))
    image = sorted(EXAMPLES.glob("*.png"))[0]
    proc = subprocess.run(
        [sys.executable, "-c", SHIPPED_LOAD_SCRIPT, tag, str(image)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["input_size"][1:] == list(timm.models.get_pretrained_cfg(tag).input_size[1:])
    assert out["dtype"] == "torch.float32"  # fp16 storage, float32 compute
    assert out["package"] == out["hub_cache"]
    expected = out["package"] if out["tta"] == "none" else out["package_d4"]
    for label, p in zip(out["labels"], expected, strict=True):
        assert abs(out["pipeline"][label] - p) < 1e-4, label
