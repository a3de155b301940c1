"""timm_galaxy_attn.tta: the D4 views, the mirror label swap, and the transformers model's ``tta`` config."""

from __future__ import annotations

import pytest
import timm
import torch

from timm_galaxy_attn.hf import GalaxyAttnConfig, GalaxyAttnForImageClassification
from timm_galaxy_attn.hf.folder import config_from_timm_model
from timm_galaxy_attn.labels import GZ1_SDSS_CLASSES
from timm_galaxy_attn.tta import d4_probs, d4_views, mirror_permutation

TINY = dict(widths=(4, 4, 4, 8, 8, 8))


def test_d4_views_are_the_eight_symmetries_identity_first() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    views = d4_views(x)
    assert len(views) == 8 and torch.equal(views[0][0], x)
    assert [m for _, m in views] == [False] * 4 + [True] * 4
    assert len({v.numpy().tobytes() for v, _ in views}) == 8  # all distinct
    assert torch.equal(views[4][0], x.flip(3)) and torch.equal(views[1][0], torch.rot90(x, 1, (2, 3)))


def test_mirrored_views_get_the_label_swap_undone() -> None:
    perm = mirror_permutation(3, {1: 2, 2: 1})
    assert perm.tolist() == [0, 2, 1]
    calls: list[int] = []

    def probs_of(view: torch.Tensor) -> torch.Tensor:  # view k says "class k % 3" for every image
        calls.append(len(calls))
        return torch.eye(3)[len(calls) % 3 - 1].expand(view.shape[0], 3)

    stack = d4_probs(probs_of, torch.zeros(2, 3, 4, 4), perm)
    assert stack.shape == (8, 2, 3) and len(calls) == 8
    for k in range(8):
        said = torch.eye(3)[(k + 1) % 3 - 1]
        assert torch.equal(stack[k, 0], said[perm] if k >= 4 else said), k


def _hf_model(tta: str) -> GalaxyAttnForImageClassification:
    torch.manual_seed(0)
    timm_model = timm.create_model("galaxy_attn_vgg_small", num_classes=6, **TINY).eval()
    config = config_from_timm_model(timm_model, GZ1_SDSS_CLASSES)
    config.tta = tta
    model = GalaxyAttnForImageClassification(config)
    model.timm_model.load_state_dict(timm_model.state_dict())
    return model.eval()


def test_transformers_model_honours_tta_in_eval_only() -> None:
    model = _hf_model("d4")
    x = torch.randn(3, 3, 32, 32)
    perm = mirror_permutation(6, {1: 2, 2: 1})  # gz1_sdss: clockwise <-> anticlockwise
    with torch.no_grad():
        expected = d4_probs(lambda v: model.timm_model(v).softmax(-1), x, perm).mean(0)
        out = model(pixel_values=x, output_attentions=True)
        torch.testing.assert_close(out.logits.softmax(-1), expected, rtol=1e-5, atol=1e-6)
        assert len(out.attentions) == 3  # the identity view's maps
        plain = model.timm_model(x)
        assert not torch.allclose(out.logits.softmax(-1), plain.softmax(-1))
        model.train()  # training sees one view: TTA is an inference-time choice
        torch.testing.assert_close(model(pixel_values=x).logits, model.timm_model(x))


def test_tta_config_round_trips_and_rejects_unknown_modes(tmp_path) -> None:
    model = _hf_model("d4")
    model.save_pretrained(tmp_path / "m")
    assert GalaxyAttnConfig.from_pretrained(tmp_path / "m").tta == "d4"
    assert _hf_model("none").config.tta == "none"
    with pytest.raises(ValueError, match="tta='d8' is not supported"):
        GalaxyAttnConfig(tta="d8")
