"""TorchScript, torch.fx and the exports (ONNX, TorchScript file, ExportedProgram) against eager."""

from __future__ import annotations

import sys
import warnings

import pytest
import timm
import torch

import timm_galaxy_attn  # noqa: F401
from timm_galaxy_attn.catalog import ModelLoadError
from timm_galaxy_attn.cli import main
from timm_galaxy_attn.export import ExportError, export_model
from timm_galaxy_attn.model import MODEL_PRESETS

TINY = dict(widths=(8, 8, 12, 16, 16, 16))
VARIANTS = tuple(MODEL_PRESETS)


def _script(model: torch.nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in torch 2.9+
        return torch.jit.script(model)


@pytest.mark.slow
@pytest.mark.parametrize("name", VARIANTS)
def test_script_and_fx_trace_match_eager(name):
    assert set(VARIANTS) == set(timm.list_models("galaxy_attn*"))
    model = timm.create_model(name).eval()
    size = model.pretrained_cfg["input_size"][-1]
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        eager = model(x)
        torch.testing.assert_close(_script(model)(x), eager, rtol=0, atol=1e-5)
        assert torch.equal(torch.fx.symbolic_trace(model)(x), eager)
    with pytest.raises(ValueError, match="expects a \\(batch, 3, height, width\\)"):
        model(torch.randn(1, 1, size, size))  # the eager checks are still there


@pytest.mark.parametrize(
    "kwargs", [dict(attention=False), dict(attn_position="after", compatibility="dp", normalize="sigmoid")]
)
def test_script_and_fx_of_the_options(kwargs):
    model = timm.create_model("galaxy_attn_vgg_small", **TINY, **kwargs).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        eager = model(x)
        torch.testing.assert_close(_script(model)(x), eager, rtol=0, atol=1e-5)
        assert torch.equal(torch.fx.symbolic_trace(model)(x), eager)
        features = model.forward_features(x)  # forward_intermediates / early stop still work in eager
        final, inter = model.forward_intermediates(x)
        assert torch.equal(final, features) and len(inter) == 4
        assert len(model.forward_intermediates(x, indices=[1], intermediates_only=True)) == 1


def _tiny_model() -> torch.nn.Module:
    model = timm.create_model("galaxy_attn_vgg_small", **TINY).eval()
    return model


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "exported-program"])
def test_export_matches_eager_on_real_images(fmt, decals_examples, tmp_path):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    out = tmp_path / "model.file"
    result = export_model(_tiny_model(), fmt, out, images=[decals_examples])
    assert out.is_file() and out.stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.file"]  # no temporary left behind
    assert result.n_images == 10 and result.input_size == (3, 32, 32)
    assert "real images" in result.check_inputs and result.max_abs_diff < 1e-4
    assert "max |logit - eager|" in result.text()


def test_failed_check_leaves_no_file(decals_examples, tmp_path):
    out = tmp_path / "model.pt"
    with pytest.raises(ExportError, match="nothing was written"):
        export_model(_tiny_model(), "torchscript", out, images=[decals_examples], atol=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_bad_requests_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="choose one of onnx, torchscript, exported-program"):
        export_model(_tiny_model(), "tflite", tmp_path / "m")
    with pytest.raises(ModelLoadError, match="Unknown model"):
        export_model("no_such_model", "torchscript", tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_model(_tiny_model(), "torchscript", tmp_path / "m", images=[tmp_path / "missing.png"])
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if the extra were not installed
    with pytest.raises(ExportError, match=r"pip install timm-galaxy-attn\[export\]"):
        export_model(_tiny_model(), "onnx", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_export(tmp_path, decals_examples, capsys):
    out = tmp_path / "small.pt2"
    argv = ["export", "galaxy_attn_vgg_small", "--format", "exported-program", "--out", str(out)]
    assert main([*argv, "--allow-random-weights", "--check-images", str(decals_examples)]) == 0
    assert out.is_file() and "max |logit - eager|" in capsys.readouterr().err
    assert main(["export", "nope", "--format", "torchscript", "--out", str(tmp_path / "x.pt")]) == 2
    assert "Unknown model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["export", "galaxy_attn_vgg_small", "--format", "tflite", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
