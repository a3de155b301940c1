"""The timm model: architecture, options, timm contract, attention capture, weights round trip."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

import timm_galaxy_attn
from timm_galaxy_attn import AttentionEstimator, GalaxyAttnVGG, capture_attention
from timm_galaxy_attn.labels import DATASET_CLASSES

# A narrow copy of the layout: same blocks, pools and attention, cheap enough for 256 px in a test.
TINY = dict(widths=(8, 8, 12, 16, 16, 16))
SIZES = (32, 64, 69, 128, 256)


def tiny(**kwargs) -> GalaxyAttnVGG:
    return timm.create_model(
        "galaxy_attn_vgg_small", num_classes=kwargs.pop("num_classes", 10), **TINY, **kwargs
    )


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registered_and_paper_layout():
    assert {"galaxy_attn_vgg", "galaxy_attn_vgg_small"} <= set(timm.list_models("galaxy_attn_vgg*"))
    model = timm.create_model("galaxy_attn_vgg", num_classes=10)
    convs = [m for m in model.stages.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256] + [512] * 8
    assert all(c.kernel_size == (3, 3) and c.bias is None for c in convs)
    bns = [m for m in model.stages.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 15
    # 19.9M parameters at 10 classes, as the issue states (bias-free convs: BatchNorm follows).
    assert 19.8e6 < n_params(model) < 19.9e6
    assert model.fc.in_features == 3 * 512 == model.num_features
    assert model.projector.in_channels == 256 and model.projector.out_channels == 512
    assert model.projector.bias is None and model.attn1.op.bias is None
    small = timm.create_model("galaxy_attn_vgg_small", num_classes=10)
    assert small.widths == (32, 64, 128, 256, 256, 256)
    assert small.num_features == 768


@pytest.mark.parametrize("size", SIZES)
def test_shapes_at_every_size(size):
    model = tiny().eval()
    x = torch.randn(2, 3, size, size)
    with capture_attention(model) as maps:
        logits = model(x)
    assert logits.shape == (2, 10)
    # l1 at full resolution, l2 at H/2, l3 at H/4 (floor division by the max-pools).
    assert [tuple(m.shape) for m in maps] == [
        (2, size, size),
        (2, size // 2, size // 2),
        (2, size // 4, size // 4),
    ]
    for m in maps:
        torch.testing.assert_close(m.sum((1, 2)), torch.ones(2))


def test_parameter_count_independent_of_input_size():
    counts = set()
    for size in SIZES:
        model = timm.create_model(
            "galaxy_attn_vgg_small",
            num_classes=10,
            **TINY,
            pretrained_cfg_overlay=dict(input_size=(3, size, size)),
        )
        model.eval()(torch.randn(1, 3, size, size))
        counts.add(n_params(model))
    assert len(counts) == 1


def grads_by_name(model: torch.nn.Module) -> dict[str, float]:
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    return {n: 0.0 if p.grad is None else float(p.grad.abs().max()) for n, p in model.named_parameters()}


G_PATH = ("stages.5.", "dense.")  # block 6 and the layer that makes g


@pytest.mark.parametrize("kwargs", [dict(compatibility="dp"), dict(normalize="sigmoid")])
def test_gradients_reach_every_layer(kwargs):
    grads = grads_by_name(tiny(**kwargs))
    assert [n for n, g in grads.items() if not g > 1e-7] == []


def test_pc_softmax_makes_g_irrelevant():
    """With 'pc' and softmax, u . (l_i + g) = u . l_i + u . g: the g term is the same at every position
    and cancels in the softmax, so block 6 and g get no gradient and cannot change the logits
    (a property of Jetley et al.'s formulation, kept here because it is the paper's network)."""
    model = tiny()
    grads = grads_by_name(model)
    dead = {n: g for n, g in grads.items() if n.startswith(G_PATH)}
    live = {n: g for n, g in grads.items() if not n.startswith(G_PATH)}
    assert dead and max(dead.values()) < 1e-6 * max(live.values())
    assert min(live.values()) > 1e-7
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    before = model(x)
    with torch.no_grad():
        model.dense.weight.mul_(-3.0)
        model.dense.bias.add_(5.0)
    torch.testing.assert_close(model(x), before)


def test_classifier_sees_only_attended_vectors(monkeypatch):
    """g reaches the logits only through the attention maps (shown where g matters: 'dp')."""
    model = tiny(compatibility="dp").eval()
    x = torch.randn(3, 3, 32, 32)
    base = model(x)
    with torch.no_grad():
        model.dense.bias.add_(1.0)
    assert not torch.allclose(base, model(x))  # g matters ...

    # ... but once the maps no longer depend on g, changing g's path leaves the logits unchanged.
    def scores_without_g(self, local, glob):
        return local.mean(1)

    monkeypatch.setattr(AttentionEstimator, "compatibility_scores", scores_without_g)
    before = model(x)
    with torch.no_grad():
        model.dense.weight.mul_(-3.0)
        model.dense.bias.add_(5.0)
    torch.testing.assert_close(model(x), before)
    assert model.fc.in_features == 3 * model.widths[5]


def test_attended_vector_is_map_weighted_sum():
    model = tiny().eval()
    x = torch.randn(2, 3, 32, 32)
    with capture_attention(model) as maps:
        feats = model.forward_features(x)
    l1, l2, l3, _ = model.forward_intermediates(x, intermediates_only=True)
    locals_ = (model.projector(l1), l2, l3)
    expected = torch.cat(
        [torch.einsum("bchw,bhw->bc", loc, a) for loc, a in zip(locals_, maps, strict=True)], dim=1
    )
    torch.testing.assert_close(feats, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(compatibility="dp"),
        dict(normalize="sigmoid"),
        dict(attn_position="after"),
        dict(stem_stride=2),
        dict(stem_stride=4),
        dict(in_chans=1),
        dict(drop_rate=0.2),
    ],
)
def test_options(kwargs):
    model = tiny(**kwargs).eval()
    size = 32 * kwargs.get("stem_stride", 1)
    x = torch.randn(2, kwargs.get("in_chans", 3), size, size)
    with capture_attention(model) as maps:
        assert model(x).shape == (2, 10)
    reduction = (2 if kwargs.get("attn_position") == "after" else 1) * kwargs.get("stem_stride", 1)
    assert maps[0].shape[-1] == size // reduction
    assert model.feature_info[0]["reduction"] == reduction
    if kwargs.get("normalize") == "sigmoid":
        assert all(((m > 0) & (m < 1)).all() for m in maps)
    # Only 'dp' (no u vectors) changes the parameters; stride, position and normalisation do not.
    u_params = 3 * model.widths[5] if kwargs.get("compatibility") == "dp" else 0
    assert n_params(model) + u_params == n_params(tiny(in_chans=kwargs.get("in_chans", 3)))


def test_stem_stride_keeps_cost_of_smaller_image():
    from torch.utils.flop_counter import FlopCounterMode

    def flops(model, size):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model.eval()(torch.randn(1, 3, size, size))
        return counter.get_total_flops()

    ratio = flops(tiny(stem_stride=4), 128) / flops(tiny(), 32)
    assert 0.9 < ratio < 1.3  # the two strided stem convs cost a little more than at 32 px


def test_ablation_without_attention():
    model = tiny(attention=False).eval()
    assert model.num_features == 16 and model.fc.in_features == 16
    assert not any(isinstance(m, AttentionEstimator) for m in model.modules())
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="no AttentionEstimator"):
        with capture_attention(model):
            pass


@pytest.mark.parametrize(
    ("kwargs", "allowed"),
    [
        (dict(compatibility="cosine"), "'pc', 'dp'"),
        (dict(normalize="relu"), "'softmax', 'sigmoid'"),
        (dict(attn_position="middle"), "'before', 'after'"),
        (dict(stem_stride=3), "1, 2, 4"),
    ],
)
def test_unknown_option_values_name_allowed_values(kwargs, allowed):
    with pytest.raises(ValueError, match=allowed):
        tiny(**kwargs)


@pytest.mark.parametrize("channels", [1, 4])
def test_wrong_channel_count_is_a_clear_error(channels):
    model = tiny()
    with pytest.raises(ValueError, match=rf"expects a \(batch, 3, height, width\).*in_chans={channels}"):
        model(torch.randn(1, channels, 32, 32))


def test_too_small_input_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 64x64"):
        tiny(stem_stride=2)(torch.randn(1, 3, 32, 32))


def test_capture_attention_keeps_nothing_outside_and_replaces_per_forward():
    model = tiny().eval()
    with capture_attention(model) as maps:
        model(torch.randn(2, 3, 32, 32))
        first = list(maps)
        model.forward_features(torch.randn(5, 3, 32, 32))
        assert len(maps) == 3 and maps[0].shape[0] == 5
        assert first[0].shape[0] == 2
        assert all(len(est._forward_hooks) == 1 for est in (model.attn1, model.attn2, model.attn3))
    assert all(len(est._forward_hooks) == 0 for est in (model.attn1, model.attn2, model.attn3))
    model(torch.randn(1, 3, 32, 32))
    assert maps[0].shape[0] == 5  # nothing recorded after the context closed


def test_plain_forward_hooks_on_estimators():
    model = tiny().eval()
    seen = []
    handle = model.attn2.register_forward_hook(lambda m, args, out: seen.append(out[1].shape))
    model(torch.randn(2, 3, 64, 64))
    handle.remove()
    assert seen == [torch.Size([2, 32, 32])]


def test_timm_head_contract():
    model = tiny().eval()
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (2, model.num_features)
    torch.testing.assert_close(model.forward_head(feats), model(x))
    torch.testing.assert_close(model.forward_head(feats, pre_logits=True), feats)
    assert model.get_classifier() is model.fc
    model.reset_classifier(4)
    assert model(x).shape == (2, 4) and model.num_classes == 4
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)
    assert timm.create_model("galaxy_attn_vgg_small", num_classes=0, **TINY)(x).shape == (2, 48)


def test_features_only_and_forward_intermediates():
    x = torch.randn(2, 3, 64, 64)
    features = timm.create_model("galaxy_attn_vgg_small", features_only=True, **TINY).eval()
    outs = features(x)
    assert [tuple(o.shape) for o in outs] == [
        (2, 12, 64, 64),
        (2, 16, 32, 32),
        (2, 16, 16, 16),
        (2, 16, 2, 2),
    ]
    assert features.feature_info.channels() == [12, 16, 16, 16]
    assert features.feature_info.reduction() == [1, 2, 4, 32]
    picked = timm.create_model("galaxy_attn_vgg_small", features_only=True, out_indices=(1, 2), **TINY)
    assert [tuple(o.shape) for o in picked(x)] == [(2, 16, 32, 32), (2, 16, 16, 16)]

    model = tiny().eval()
    final, inter = model.forward_intermediates(x)
    torch.testing.assert_close(final, model.forward_features(x))
    assert len(inter) == 4
    assert [tuple(t.shape) for t in model.forward_intermediates(x, indices=2, intermediates_only=True)] == [
        (2, 16, 16, 16),
        (2, 16, 2, 2),
    ]


def test_safetensors_round_trip_identical_logits(tmp_path):
    model = tiny(num_classes=6).eval()
    with torch.no_grad():  # make BatchNorm statistics non-trivial
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "weights.safetensors"
    save_file(model.state_dict(), str(path))
    loaded = timm.create_model(
        "galaxy_attn_vgg_small",
        pretrained=True,
        num_classes=6,
        **TINY,
        pretrained_cfg_overlay=dict(file=str(path), num_classes=6),
    ).eval()
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_untagged_configs_describe_their_data():
    """The architectures without weights keep a config: Galaxy10 DECaLS' classes, the central half, 32 px."""
    model = timm.create_model("galaxy_attn_vgg_small", **TINY)
    assert (
        model.num_classes == 10
        and tuple(model.pretrained_cfg["label_names"]) == DATASET_CLASSES["galaxy10_decals"]
    )
    config = timm.data.resolve_model_data_config(model)
    assert config["input_size"] == (3, 32, 32) and config["crop_pct"] == 0.5
    assert timm.create_model("galaxy_attn_vgg_small", num_classes=6, **TINY).num_classes == 6
    # first_conv and classifier name real modules (timm adapts them when loading weights).
    modules = dict(model.named_modules())
    assert model.pretrained_cfg["first_conv"] in modules and model.pretrained_cfg["classifier"] in modules


def test_bf16_channels_last_matches_fp32():
    model = tiny().eval()
    x = torch.randn(4, 3, 32, 32)
    ref = model(x)
    fast = model.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fast(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out.float(), ref, rtol=0.1, atol=0.05)


def test_package_version_and_exports():
    """__version__ is the installed distribution's and pyproject's (one release number, three places)."""
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    declared = re.search(r'^\[project\][^\[]*?^version = "([^"]+)"', pyproject, re.M | re.S)
    assert declared is not None, "pyproject.toml has no [project] version"
    assert timm_galaxy_attn.__version__ == importlib.metadata.version("timm-galaxy-attn") == declared[1]
    assert callable(timm_galaxy_attn.capture_attention)


def test_missing_hub_weights_offline_name_the_repo():
    """A Hub id that is not in the test machine's cache: offline, the error names the repo and the fix."""
    overlay = dict(hf_hub_id="timm-galaxy-attn/not-in-the-cache")
    with pytest.raises(RuntimeError, match=r"'timm-galaxy-attn/not-in-the-cache'.*local-dir:"):
        timm.create_model("galaxy_attn_vgg_small", pretrained=True, pretrained_cfg_overlay=overlay, **TINY)


def test_stride4_variant_is_the_small_network_at_128_px():
    model = timm.create_model("galaxy_attn_vgg_small_s4", num_classes=6).eval()
    small = timm.create_model("galaxy_attn_vgg_small", num_classes=6)
    assert model.stem_stride == 4 and model.widths == small.widths
    assert model.state_dict().keys() == small.state_dict().keys() and n_params(model) == n_params(small)
    config = timm.data.resolve_model_data_config(model)
    assert config["input_size"] == (3, 128, 128) and config["crop_pct"] == 0.5  # its untagged config
    with torch.no_grad():
        assert model(torch.randn(1, 3, 128, 128)).shape == (1, 6)
        with pytest.raises(ValueError, match="at least 128x128"):
            model(torch.randn(1, 3, 64, 64))


def test_tiny_variant_quarters_the_widths_and_the_compute():
    from torch.utils.flop_counter import FlopCounterMode

    tiny = timm.create_model("galaxy_attn_vgg_tiny_s4", num_classes=10).eval()
    small = timm.create_model("galaxy_attn_vgg_small_s4", num_classes=10).eval()
    assert tiny.stem_stride == 4 and tuple(tiny.widths) == tuple(w // 2 for w in small.widths)
    assert timm.data.resolve_model_data_config(tiny)["input_size"] == (3, 128, 128)
    flops = []
    for model in (tiny, small):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            assert model(torch.randn(1, 3, 128, 128)).shape == (1, 10)
        flops.append(counter.get_total_flops())
    assert 0.2 < flops[0] / flops[1] < 0.3 and n_params(tiny) < 0.3 * n_params(small)
