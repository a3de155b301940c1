"""The catalogue tool goes on past any undecodable input, and warns about inputs too small for the crop."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
import timm
from PIL import Image

from timm_galaxy_attn._input_checks import small_input_warning
from timm_galaxy_attn.catalog import predict

batches_module = importlib.import_module("timm_galaxy_attn.catalog.batches")  # decodes each input
TINY = dict(widths=(8, 8, 12, 16, 16, 16))


@pytest.fixture
def model():
    """A small random model whose eval transform takes the central half to 32 px."""
    overlay = dict(input_size=(3, 32, 32), crop_pct=0.5)
    return timm.create_model("galaxy_attn_vgg_small", num_classes=10, pretrained_cfg_overlay=overlay, **TINY)


def _png(path, side: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)


def test_any_decoding_failure_is_an_error_row(model, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, side in (("a_good.png", 64), ("b_bomb.png", 300), ("c_codec.png", 64), ("d_good.png", 64)):
        _png(folder / name, side)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)  # 300 x 300 px is over twice that: a "bomb"
    decode = batches_module.open_image

    def flaky(path: str) -> np.ndarray:
        if path.endswith("c_codec.png"):
            raise RuntimeError("codec crashed")
        return decode(path)

    monkeypatch.setattr(batches_module, "open_image", flaky)
    df = predict(folder, model, batch_size=4, progress=False)
    assert df["source"].str.rsplit("/", n=1).str[-1].tolist() == [
        "a_good.png",
        "b_bomb.png",
        "c_codec.png",
        "d_good.png",
    ]
    errors = df["error"].tolist()
    assert pd.isna(errors[0]) and pd.isna(errors[3])
    assert "too large to decode safely" in errors[1] and "MAX_IMAGE_PIXELS" in errors[1]
    assert errors[2] == "cannot decode: RuntimeError: codec crashed"
    assert df["pred_label"].notna().tolist() == [True, False, False, True]


def test_small_inputs_get_a_warning_and_a_prediction(model, tmp_path):
    _png(tmp_path / "big.png", 64)
    _png(tmp_path / "small.png", 24)
    df = predict([tmp_path / "big.png", tmp_path / "small.png"], model, progress=False)
    assert df["error"].isna().all() and df["pred_label"].notna().all()
    assert pd.isna(df["warning"][0])
    assert (
        df["warning"][1].startswith("small input: 24x24 px") and "upsampled 2.7x to 32 px" in df["warning"][1]
    )


def test_small_input_threshold():
    assert small_input_warning(64, 64, 32, 0.5) is None  # the crop is the model's size
    assert small_input_warning(32, 40, 32, 0.5) is None  # exactly 2x: still fine
    message = small_input_warning(69, 69, 128, 0.5)  # Galaxy10 SDSS into a 128 px model
    assert message is not None and "at least 128 px per side" in message
