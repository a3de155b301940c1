"""Tests of the catalogue's fast decoding (catalog.decode), the --maps sidecar and galaxy-attn render."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
import timm
import timm.data
import torch
from PIL import Image

import timm_galaxy_attn  # noqa: F401  (registers the models)
from timm_galaxy_attn.attention import capture_attention
from timm_galaxy_attn.catalog import load_model, maps_path, predict
from timm_galaxy_attn.catalog.decode import open_image
from timm_galaxy_attn.catalog.geometry import ModelPixels
from timm_galaxy_attn.catalog.render import parse_rows
from timm_galaxy_attn.cli import main
from timm_galaxy_attn.hf import save_pretrained_folder
from timm_galaxy_attn.pretrained import DEFAULT_TAG

KILL_AFTER = Path(__file__).with_name("kill_after.py")  # SIGKILLs a run after N committed batches

# Draft decode: on these smooth test galaxies the 1/2-scale JPEG decode keeps every probability this
# close to the full decode's. On 200 real SDSS JPEGs enlarged 2x with the shipped model: max change 0.045,
# mean 0.0013, every top class kept (benchmarks/results/speed/amd_epyc_2cpu.json: raw, predict_native,
# jpeg_draft_check).
DRAFT_PROB_ATOL = 0.02


def _galaxy(side: int, seed: int = 0) -> np.ndarray:
    """A smooth elliptical blob with a little noise: JPEG-friendly like survey cutouts."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:side, :side] / side - 0.5
    blob = np.exp(-((x / 0.18) ** 2 + (y / 0.1) ** 2))
    rgb = np.stack([blob * 230, blob * 200, blob * 160], axis=-1) + rng.normal(0, 4, (side, side, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    net = timm.create_model("galaxy_attn_vgg_small")  # 32 px input, central half (crop_pct 0.5)
    with torch.no_grad():
        net.fc.weight.mul_(50)
    return save_pretrained_folder(net, tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """JPEGs and PNGs (g0..g4), a broken file (row 3, sorted after g2.png), an HDF5 file of two rows."""
    root = tmp_path_factory.mktemp("maps_inputs")
    for i in range(5):
        Image.fromarray(_galaxy(48 + 8 * i, seed=i)).save(root / f"g{i}.{'jpg' if i % 2 else 'png'}")
    (root / "g2_broken.png").write_bytes(b"\x89PNG not really")
    with h5py.File(root / "z.h5", "w") as f:
        f["images"] = np.stack([_galaxy(40, seed=7), _galaxy(40, seed=8)])
    return root


def test_model_pixels_equal_timm_eval_transform():
    rng = np.random.default_rng(0)
    for size, crop_pct, interpolation in (
        (32, 0.5, "bicubic"),
        (64, 0.875, "bilinear"),
        (48, 1.0, "lanczos"),
    ):
        cfg = dict(input_size=(3, size, size), interpolation=interpolation, crop_pct=crop_pct)
        timm_tf = timm.data.create_transform(**cfg, is_training=False, use_prefetcher=True)
        pixels = ModelPixels(cfg)
        for h, w in ((40, 40), (41, 57), (300, 211), (127, 128), (423, 423), (24, 24)):
            img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            expected = np.asarray(timm_tf(img)).transpose(1, 2, 0)
            np.testing.assert_array_equal(pixels(img), expected, err_msg=f"{size} px from {h}x{w}")


def test_jpeg_decode_gives_the_pixels_of_pil(tmp_path):
    Image.fromarray(_galaxy(90)).save(tmp_path / "g.jpg", quality=90)
    fast, size = open_image(str(tmp_path / "g.jpg"))
    with Image.open(tmp_path / "g.jpg") as img:
        np.testing.assert_array_equal(np.asarray(fast), np.asarray(img.convert("RGB")))
    assert size == (90, 90)


def test_draft_decode_keeps_the_top_class_and_probabilities(tmp_path):
    # the shipped 128 px model: its crop comes from the image resized to 256 px, so a 520 px JPEG may be
    # decoded at 1/2 scale (260 px)
    for i in range(4):
        Image.fromarray(_galaxy(520, seed=i)).save(tmp_path / f"big{i}.jpg", quality=92)
    loaded = load_model(DEFAULT_TAG)
    pixels = ModelPixels(timm.data.resolve_model_data_config(loaded.model))
    drafted, full_size = open_image(str(tmp_path / "big0.jpg"), pixels.geometry)
    assert full_size == (520, 520) and drafted.size == (260, 260)  # the DCT-scaled decode was used
    kw = dict(progress=False, precision="fp32", batch_size=2)
    full = predict(tmp_path, loaded, jpeg_draft=False, **kw)
    draft = predict(tmp_path, loaded, jpeg_draft=True, **kw)
    cols = [c for c in full.columns if c.startswith("prob_")]
    assert (full["pred_id"] == draft["pred_id"]).all()
    np.testing.assert_allclose(draft[cols].to_numpy(), full[cols].to_numpy(), atol=DRAFT_PROB_ATOL)
    assert (draft[cols].to_numpy() != full[cols].to_numpy()).any()  # the draft did change the pixels


def test_maps_sidecar_rows_align_with_the_catalogue(model, inputs, tmp_path):
    out = tmp_path / "cat.parquet"
    df = predict(inputs, model, out=out, maps=True, batch_size=3, progress=False, precision="fp32")
    with h5py.File(maps_path(out), "r") as f:
        assert f["index"][:].tolist() == df["index"].tolist() == list(range(8))
        assert f["valid"][:].tolist() == df["error"].isna().tolist()
        assert not f["valid"][3] and "not an image" in df["error"][3]  # g2_broken.png, row 3
        meta = json.loads(pq.read_schema(out).metadata[b"galaxy_attn"])
        assert f.attrs["run_fingerprint"] == meta["run_fingerprint"] and meta["maps"] == "cat.parquet.maps.h5"
        assert f["attn1"].dtype == np.uint8 and f["attn3"].shape[0] == 8
        assert not f["attn1"][3].any() and np.isnan(f["attn1_range"][3]).all()
        q, (lo, hi) = f["attn1"][0].astype(float), f["attn1_range"][0]
    # row 0 (g0.png) against the model's own maps: uint8 steps of 1/255 of the map's range
    loaded = load_model(model)
    cfg = timm.data.resolve_model_data_config(loaded.model)
    x = timm.data.create_transform(**cfg, is_training=False)(Image.open(inputs / "g0.png"))[None]
    with torch.no_grad(), capture_attention(loaded.model) as maps:
        loaded.model(x)
    np.testing.assert_allclose(lo + q / 255 * (hi - lo), maps[0][0].numpy(), atol=(hi - lo) / 255)


def _predict_cli(args: list[str], kill_after: int | None = None):
    """``galaxy-attn predict ARGS`` in a subprocess; ``kill_after``: SIGKILLed after that many batches."""
    if kill_after is None:
        cmd = [sys.executable, "-m", "timm_galaxy_attn", "predict", *args]
    else:
        cmd = [sys.executable, str(KILL_AFTER), str(kill_after), "--", "predict", *args]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_maps_survive_a_kill_and_resume(model, inputs, tmp_path):
    common = ["--model", str(model), "--maps", "--batch-size", "3", "--no-progress", "--precision", "fp32"]
    reference = tmp_path / "ref.parquet"
    assert _predict_cli([str(inputs), "--out", str(reference), *common]).returncode == 1  # one broken input
    out = tmp_path / "killed.parquet"
    killed = _predict_cli([str(inputs), "--out", str(out), *common], kill_after=1)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    parts = out.with_name(out.name + ".parts")
    assert len(list(parts.glob("maps-*.npz"))) == 1 and not maps_path(out).exists()
    resumed = _predict_cli([str(inputs), "--out", str(out), *common])
    assert resumed.returncode == 1 and "5 predicted now, 3 already written" in resumed.stderr
    assert not parts.exists()
    with h5py.File(maps_path(reference), "r") as a, h5py.File(maps_path(out), "r") as b:
        assert sorted(a) == sorted(b)
        for name in a:
            np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)


def test_render_writes_the_pngs_of_chosen_rows(model, inputs, tmp_path, capsys):
    out = tmp_path / "cat.parquet"
    predict(inputs, model, out=out, maps=True, heatmaps=tmp_path / "direct", progress=False)
    assert main(["render", str(out), "--rows", "0,6-7", "--out", str(tmp_path / "png")]) == 0
    assert "3 heatmaps" in capsys.readouterr().err
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert names == ["00000000_g0.png", "00000006_z_row0.png", "00000007_z_row1.png"]
    for name in names:  # the same figure as predict --heatmaps, from uint8 maps
        with Image.open(tmp_path / "png" / name) as a, Image.open(tmp_path / "direct" / name) as b:
            assert a.size == b.size
            diff = np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int))
            assert diff.mean() < 1.0


def test_render_bad_input_gives_a_clear_error(model, inputs, tmp_path, capsys):
    out = tmp_path / "cat.parquet"
    predict(inputs, model, out=out, maps=True, progress=False)
    plain = tmp_path / "plain.parquet"
    predict(inputs, model, out=plain, progress=False)
    cases = [
        ([str(out), "--rows", "3"], "input failed"),
        ([str(out), "--rows", "99"], "not in"),
        ([str(out), "--rows", "3-1"], "lo <= hi"),
        ([str(out), "--rows", "x"], "not a row"),
        ([str(plain), "--rows", "0"], "--maps"),
        ([str(tmp_path / "missing.parquet"), "--rows", "0"], "does not exist"),
    ]
    for args, message in cases:
        assert main(["render", *args, "--out", str(tmp_path / "png")]) == 2, args
        assert message in capsys.readouterr().err, args
    assert not (tmp_path / "png").exists()  # nothing written for a bad request
    assert parse_rows("all") is None and parse_rows("4,1-2,2") == [4, 1, 2]
