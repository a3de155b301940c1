"""timm_galaxy_attn.pretrained: every tag in default_cfgs ships weights that load offline from the package."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors.torch import load_file

import timm_galaxy_attn
from timm_galaxy_attn.labels import DATASET_CLASSES
from timm_galaxy_attn.model import CONFIG_ARCHITECTURES, MODEL_PRESETS, config_architecture
from timm_galaxy_attn.pretrained import (
    DEFAULT_TAG,
    PRETRAINED_DIR,
    SHIPPED_TAGS,
    default_cfgs,
    pretrained_path,
)


def test_the_listed_tags_are_the_shipped_folders() -> None:
    assert sorted(timm.list_pretrained("galaxy_attn*")) == sorted(SHIPPED_TAGS)
    folders = sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "config.json").is_file())
    assert folders == sorted(SHIPPED_TAGS)  # no folder without a tag, no tag without a folder
    assert DEFAULT_TAG in SHIPPED_TAGS and timm_galaxy_attn.pretrained_path is pretrained_path


@pytest.mark.slow
def test_one_list_of_architectures() -> None:
    # default_cfgs names every registered architecture, and each has its presets (model.MODEL_PRESETS)
    assert set(default_cfgs) == set(MODEL_PRESETS) == set(timm.list_models("galaxy_attn*"))
    assert set(CONFIG_ARCHITECTURES) <= set(MODEL_PRESETS)
    for name in MODEL_PRESETS:  # a saved folder's architecture + model_args rebuild the same network
        model = timm.create_model(name)
        base = config_architecture(name)
        args = dict(widths=model.widths, stem_stride=model.stem_stride, num_classes=model.num_classes)
        rebuilt = timm.create_model(base, **args)
        assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in model.parameters()]
        assert (name == base) == (name in CONFIG_ARCHITECTURES)


@pytest.mark.parametrize("tag", SHIPPED_TAGS)
def test_tag_loads_the_packaged_weights(tag: str) -> None:
    folder = pretrained_path(tag)
    files = {p.name for p in folder.iterdir()}
    assert {
        "README.md",
        "config.json",
        "preprocessor_config.json",
        "model.safetensors",
        "metrics.json",
    } <= files
    cfg = timm.models.get_pretrained_cfg(tag)
    assert cfg.file == str(folder / "model.safetensors") and cfg.hf_hub_id == f"timm-galaxy-attn/{tag}"
    dataset = json.loads((folder / "metrics.json").read_text())["dataset"]  # the classes it was trained on
    assert tuple(cfg.label_names) == DATASET_CLASSES[dataset] and cfg.num_classes == len(cfg.label_names)
    stored = load_file(str(folder / "model.safetensors"))
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}  # half the bytes
    assert json.loads((folder / "config.json").read_text())["dtype"] == "float32"  # the compute dtype
    model = timm.create_model(tag, pretrained=True)
    state = model.state_dict()
    assert state.keys() == stored.keys()
    for key, value in stored.items():
        assert state[key].dtype == (torch.float32 if value.is_floating_point() else value.dtype), key
        torch.testing.assert_close(state[key], value.to(state[key].dtype), rtol=0, atol=0, msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("tag", SHIPPED_TAGS)
def test_tag_adapts_channels_classes_and_features(tag: str) -> None:
    """What timm's test_model_load_pretrained / test_model_features_pretrained ask of every tag."""
    size = timm.models.get_pretrained_cfg(tag).input_size[-1]
    full = timm.create_model(tag, pretrained=True).eval()
    gray = timm.create_model(tag, pretrained=True, in_chans=1, num_classes=5).eval()
    assert gray.num_classes == 5 and gray.stages[0][0].conv.in_channels == 1
    torch.testing.assert_close(
        gray.stages[0][0].conv.weight,
        full.stages[0][0].conv.weight.sum(1, keepdim=True),
        rtol=0,
        atol=1e-3,  # timm sums the stored fp16 weights
    )
    headless = timm.create_model(tag, pretrained=True, num_classes=0).eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(headless(x), full.forward_features(x))
        feats = timm.create_model(tag, pretrained=True, features_only=True).eval()(x)
    assert len(feats) == 4


def test_architecture_name_loads_its_default_tag_and_weightless_names_fail() -> None:
    model = timm.create_model("galaxy_attn_vgg", pretrained=True)
    # the network the weights were trained as (their config.json: the stride-4 stem, 128 px) ...
    assert model.pretrained_cfg["tag"] == "gz_sdss" and model.num_classes == 6 and model.stem_stride == 4
    assert tuple(model.pretrained_cfg["input_size"]) == (3, 128, 128)
    assert timm.create_model("galaxy_attn_vgg.gz_sdss").stem_stride == 4  # a tag named: its network
    assert timm.create_model("galaxy_attn_vgg", pretrained=True, stem_stride=1).stem_stride == 1  # as asked
    paper = timm.create_model("galaxy_attn_vgg")  # ... and without weights the paper's, at its 32 px
    assert paper.stem_stride == 1 and tuple(paper.pretrained_cfg["input_size"]) == (3, 32, 32)
    with pytest.raises(RuntimeError, match=r"withdrawn: .*replaced by galaxy_attn_vgg\.gz_sdss"):
        timm.create_model("galaxy_attn_vgg.gz1_sdss", pretrained=True)
    for name in ("galaxy_attn_vgg_small", "galaxy_attn_vgg_small_s4"):
        with pytest.raises(RuntimeError, match=r"No pretrained weights exist for .*galaxy_attn_vgg\.gz_sdss"):
            timm.create_model(name, pretrained=True)
        assert timm.create_model(name, pretrained=False).num_classes == 10  # random init still works
    with pytest.raises(RuntimeError, match="Invalid pretrained tag"):
        timm.create_model("galaxy_attn_vgg_small.galaxy10_decals", pretrained=True)  # no weightless tags


def test_pretrained_path_errors_name_the_tags() -> None:
    assert pretrained_path() == PRETRAINED_DIR / DEFAULT_TAG
    with pytest.raises(ValueError, match="galaxy_attn_vgg_tiny_s4.gz1_sdss"):
        pretrained_path("galaxy_attn_vgg_small.galaxy10_decals")
