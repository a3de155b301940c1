"""transformers integration: one folder for timm and transformers, processor == timm transform, pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    TimmWrapperForImageClassification,
    pipeline,
)

import timm_galaxy_attn
from timm_galaxy_attn import capture_attention
from timm_galaxy_attn.hf import (
    GalaxyAttnConfig,
    GalaxyAttnForImageClassification,
    GalaxyAttnImageProcessor,
    save_pretrained_folder,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT.parent / "shared" / "data" / "galaxy10_decals_examples"


def train_tiny(folder: Path, steps: int = 3) -> Path:
    """Train galaxy_attn_vgg_small a few steps on the ten real Galaxy10 DECaLS examples; save the folder."""
    torch.manual_seed(0)
    model = timm.create_model("galaxy_attn_vgg_small", num_classes=10)
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model), is_training=False)
    rows = [line.split(",") for line in (EXAMPLES / "labels.csv").read_text().splitlines()[1:]]
    x = torch.stack([transform(Image.open(EXAMPLES / r[0]).convert("RGB")) for r in rows])
    y = torch.tensor([int(r[1]) for r in rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]  # it learned something: these are trained, not random, weights
    return save_pretrained_folder(model.eval(), folder, label_names=[r[2] for r in rows])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("hf") / "model")


@pytest.fixture(scope="module")
def timm_model(folder: Path) -> torch.nn.Module:
    return timm.create_model(f"local-dir:{folder}", pretrained=True).eval()


@pytest.fixture(scope="module")
def hf_model(folder: Path) -> GalaxyAttnForImageClassification:
    return AutoModelForImageClassification.from_pretrained(folder).eval()


def example_images() -> list[Image.Image]:
    paths = sorted(EXAMPLES.glob("*.png"))
    assert len(paths) == 10
    return [Image.open(p).convert("RGB") for p in paths]


@pytest.mark.slow
def test_folder_holds_timm_and_transformers_keys(folder: Path, timm_model: torch.nn.Module) -> None:
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ]
    umask = os.umask(0)
    os.umask(umask)
    # the usual permissions, not mkdtemp's 0700 folder nor safetensors' 0600 file
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask
    assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {0o666 & ~umask}
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["architecture"] == "galaxy_attn_vgg_small" and cfg["model_type"] == "galaxy_attn_vgg"
    assert cfg["num_classes"] == 10 == len(cfg["label_names"]) == len(cfg["id2label"])
    assert cfg["label_names"] == list(timm_galaxy_attn.class_names("galaxy10_decals"))
    assert [cfg["id2label"][str(i)] for i in range(10)] == cfg["label_names"]
    assert {cfg["label2id"][n] for n in cfg["label_names"]} == set(range(10))
    assert cfg["model_args"] == {
        "in_chans": 3, "compatibility": "pc", "normalize": "softmax", "attn_position": "before",
        "stem_stride": 1,
        "attention": True,
    }  # fmt: skip
    assert cfg["pretrained_cfg"]["input_size"] == [3, 32, 32]
    # one set of weights: the file's keys are the timm model's keys, and timm loads it strictly
    stored = safetensors.torch.load_file(folder / "model.safetensors")
    assert set(stored) == set(timm_model.state_dict())
    assert all(torch.equal(stored[k], v) for k, v in timm_model.state_dict().items())


def test_transformers_loads_the_timm_keys_without_missing_or_unexpected(folder: Path, tmp_path: Path) -> None:
    model, info = AutoModelForImageClassification.from_pretrained(folder, output_loading_info=True)
    assert isinstance(model, GalaxyAttnForImageClassification)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.config.id2label[2] == "Round Smooth" and model.config.num_labels == 10
    # saving through transformers writes the same timm keys back
    model.save_pretrained(tmp_path / "resaved")
    resaved = safetensors.torch.load_file(tmp_path / "resaved" / "model.safetensors")
    original = safetensors.torch.load_file(folder / "model.safetensors")
    assert set(resaved) == set(original) and all(torch.equal(resaved[k], original[k]) for k in original)
    again = timm.create_model(f"local-dir:{tmp_path / 'resaved'}", pretrained=True)
    assert again.num_classes == 10


def test_processor_reproduces_timm_transform_and_logits(
    folder: Path, timm_model: torch.nn.Module, hf_model: GalaxyAttnForImageClassification
) -> None:
    processor = AutoImageProcessor.from_pretrained(folder)
    assert isinstance(processor, GalaxyAttnImageProcessor)
    transform = timm.data.create_transform(
        **timm.data.resolve_model_data_config(timm_model), is_training=False
    )
    image = example_images()[3]  # a real 256x256 Galaxy10 DECaLS galaxy
    pixels = processor(image, return_tensors="pt")["pixel_values"]
    expected = transform(image).unsqueeze(0)
    assert pixels.shape == (1, 3, 32, 32) and torch.equal(pixels, expected)
    with torch.no_grad():
        hf_logits = hf_model(**processor(image)).logits
        timm_logits = timm_model(expected)
    torch.testing.assert_close(hf_logits, timm_logits, rtol=0, atol=1e-5)
    # the same image as a uint8 array and a CHW uint8 tensor gives the same pixels
    array = torch.from_numpy(np.array(image))
    assert torch.equal(processor(array.numpy())["pixel_values"], expected)
    assert torch.equal(processor(array.permute(2, 0, 1))["pixel_values"], expected)


def test_processor_rejects_bad_input() -> None:
    processor = GalaxyAttnImageProcessor(input_size=(3, 32, 32))
    with pytest.raises(TypeError, match="uint8"):
        processor(torch.rand(3, 40, 40))
    with pytest.raises(TypeError, match="cannot read a str"):
        processor("galaxy.png")
    with pytest.raises(ValueError, match="one per channel"):
        GalaxyAttnImageProcessor(input_size=(3, 32, 32), mean=(0.5,), std=(0.5,))


def test_pipeline_on_ten_real_galaxies(folder: Path) -> None:
    classifier = pipeline("image-classification", model=str(folder))
    names = json.loads((folder / "config.json").read_text())["label_names"]
    results = classifier(example_images(), top_k=len(names))
    assert len(results) == 10
    for result in results:
        assert sorted(r["label"] for r in result) == sorted(names)
        scores = [r["score"] for r in result]
        assert scores == sorted(scores, reverse=True)
        assert abs(sum(scores) - 1.0) < 1e-5


def test_outputs_loss_attentions_hidden_states(
    hf_model: GalaxyAttnForImageClassification, timm_model: torch.nn.Module
) -> None:
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([1, 7])
    with torch.no_grad():
        out = hf_model(pixel_values=x, labels=labels, output_attentions=True, output_hidden_states=True)
        with capture_attention(timm_model) as maps:
            logits = timm_model(x)
    torch.testing.assert_close(out.logits, logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.loss, F.cross_entropy(logits, labels), rtol=0, atol=1e-5)
    assert [tuple(a.shape) for a in out.attentions] == [(2, 32, 32), (2, 16, 16), (2, 8, 8)]
    for mine, ref in zip(out.attentions, maps, strict=True):
        torch.testing.assert_close(mine, ref, rtol=0, atol=1e-6)
        torch.testing.assert_close(mine.sum(dim=(1, 2)), torch.ones(2), rtol=0, atol=1e-5)
    assert len(out.hidden_states) == 4 and out.hidden_states[0].shape[-1] == 32
    plain = hf_model(pixel_values=x, return_dict=False)
    assert isinstance(plain, tuple) and len(plain) == 1


def test_timm_wrapper_loads_the_same_folder(folder: Path, timm_model: torch.nn.Module) -> None:
    model, info = TimmWrapperForImageClassification.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x).logits, timm_model(x), rtol=0, atol=1e-5)


def test_config_round_trip_and_errors(folder: Path, tmp_path: Path) -> None:
    config = AutoConfig.from_pretrained(folder)
    assert isinstance(config, GalaxyAttnConfig)
    assert config.architecture == "galaxy_attn_vgg_small" and config.attention and config.stem_stride == 1
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_args"]["compatibility"] == "pc" and "compatibility" not in saved
    assert saved["label_names"] == config.label_names
    with pytest.raises(ValueError, match="model_args has keys"):
        GalaxyAttnConfig.from_dict({**saved, "model_args": {"depth": 3}})
    with pytest.raises(ValueError, match="num_classes=4"):
        GalaxyAttnConfig.from_dict({**saved, "num_classes": 4})
    with pytest.raises(ValueError, match="architecture"):
        GalaxyAttnConfig(architecture="resnet18")


def test_save_pretrained_folder_checks_and_is_atomic(tmp_path: Path) -> None:
    model = timm.create_model("galaxy_attn_vgg_small", num_classes=3)
    with pytest.raises(ValueError, match="3 classes"):
        save_pretrained_folder(model, tmp_path / "a", label_names=["x", "y"])
    with pytest.raises(ValueError, match="unique"):
        save_pretrained_folder(model, tmp_path / "a", label_names=["x", "x", "y"])
    with pytest.raises(TypeError, match="GalaxyAttnVGG"):
        save_pretrained_folder(
            timm.create_model("resnet18", num_classes=3), tmp_path / "a", label_names="abc"
        )
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    out = save_pretrained_folder(
        model, tmp_path / "a", label_names=["x", "y", "z"], data_config={"crop_pct": 0.5}
    )
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_pretrained_folder(model, out, label_names=["x", "y", "z"])
    save_pretrained_folder(model, out, label_names=["p", "q", "r"], overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    assert json.loads((out / "config.json").read_text())["label_names"] == ["p", "q", "r"]
    assert (
        json.loads((out / "preprocessor_config.json").read_text())["crop_pct"]
        == model.pretrained_cfg["crop_pct"]
    )
    # the wrapped transformers model saves the same way
    hf = GalaxyAttnForImageClassification.from_pretrained(out)
    save_pretrained_folder(hf, tmp_path / "b", label_names=["p", "q", "r"])
    assert (
        safetensors.torch.load_file(tmp_path / "b" / "model.safetensors").keys() == model.state_dict().keys()
    )


@pytest.mark.slow
def test_without_the_import_transformers_refuses_and_names_the_model_type(folder: Path) -> None:
    code = (
        "from transformers import AutoModelForImageClassification\n"
        f"AutoModelForImageClassification.from_pretrained({str(folder)!r})\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0
    assert "galaxy_attn_vgg" in proc.stderr and "ValueError" in proc.stderr


@pytest.mark.parametrize("variant", ["galaxy_attn_vgg_small_s4", "galaxy_attn_vgg_tiny_s4"])
def test_stride4_variants_save_as_the_small_architecture_with_their_options(tmp_path: Path, variant: str):
    """A stride-4 variant's folder names the base architecture, keeps stem_stride=4 (and the tiny widths) in
    model_args and the 128 px preprocessing, and loads back in timm and transformers with the same logits."""
    torch.manual_seed(0)
    model = timm.create_model(variant, num_classes=3).eval()
    out = save_pretrained_folder(model, tmp_path / "s4", label_names=["a", "b", "c"])
    saved = json.loads((out / "config.json").read_text())
    assert saved["architecture"] == "galaxy_attn_vgg_small" and saved["model_args"]["stem_stride"] == 4
    tiny = variant == "galaxy_attn_vgg_tiny_s4"
    assert saved["model_args"].get("widths") == ([16, 32, 64, 128, 128, 128] if tiny else None)
    assert saved["pretrained_cfg"]["input_size"] == [3, 128, 128]
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        ref = model(x)
        timm_back = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
        hf_back = AutoModelForImageClassification.from_pretrained(out).eval()
        assert timm_back.stem_stride == 4 and hf_back.config.stem_stride == 4
        torch.testing.assert_close(timm_back(x), ref, rtol=0, atol=0)
        torch.testing.assert_close(hf_back(pixel_values=x).logits, ref, rtol=0, atol=0)
    assert list(AutoImageProcessor.from_pretrained(out).input_size) == [3, 128, 128]
