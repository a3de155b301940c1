"""Tests of the catalogue engine (timm_galaxy_attn.catalog): readers, rows, errors, TTA, heatmaps, resume."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import timm
import torch
from astropy.io import fits
from astropy.visualization import make_lupton_rgb
from PIL import Image

import timm_galaxy_attn  # noqa: F401  (registers the models)
from timm_galaxy_attn.catalog import ModelLoadError, collect_inputs, load_model, predict
from timm_galaxy_attn.data import eval_transform
from timm_galaxy_attn.hf import save_pretrained_folder
from timm_galaxy_attn.labels import DATASET_CLASSES, GALAXY10_DECALS_CLASSES, GZ1_SDSS_CLASSES
from timm_galaxy_attn.pretrained import pretrained_path

SIZE = 32  # model input; the untagged config keeps the central half (crop_pct 0.5)


def _model_folder(root: Path, dataset: str) -> Path:
    torch.manual_seed(0)
    names = DATASET_CLASSES[dataset]
    model = timm.create_model("galaxy_attn_vgg_small", num_classes=len(names))
    with torch.no_grad():  # larger logits than the 0.01-std init, so that classes differ visibly
        model.fc.weight.mul_(50)
    return save_pretrained_folder(model, root / f"model_{dataset}", label_names=names)


@pytest.fixture(scope="module")
def decals_model(tmp_path_factory) -> Path:
    return _model_folder(tmp_path_factory.mktemp("models"), "galaxy10_decals")


def _rgb(rng, size=40):
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def _probs(df, i):
    cols = [c for c in df.columns if c.startswith("prob_")]
    return df.loc[i, cols].to_numpy(dtype=np.float64)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Every kind of input, good and broken; returns (inputs, expected sources, expected error keys)."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(1)
    a = _rgb(rng)
    Image.fromarray(a).save(root / "a.png")
    Image.fromarray(_rgb(rng)).save(root / "b.jpg", quality=95)
    folder = root / "folder"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(_rgb(rng)).save(folder / "sub" / "z.tiff")
    Image.fromarray(_rgb(rng)).save(folder / "c.png")
    Image.fromarray(_rgb(rng)).save(folder / ".hidden.png")
    (folder / "notes.txt").write_text("not an input")
    rgba = np.dstack([_rgb(rng), np.full((40, 40), 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "d_opaque_rgba.png")
    h5_images = np.stack([a, *(_rgb(rng) for _ in range(2))])
    with h5py.File(root / "cat.h5", "w") as f:
        f["images"] = h5_images
        f["ans"] = np.array([3, 1, 4])
        f["ra"] = np.array([10.5, 11.5, 12.5])
        f["dec"] = np.array([-1.0, -2.0, -3.0])
    grz = rng.gamma(2.0, 0.5, (3, 40, 40)).astype(np.float32)
    fits.writeto(root / "cube.fits", grz)
    for band, plane in zip("grz", grz, strict=True):
        fits.writeto(root / f"obj_{band}.fits", plane)
    # broken inputs
    (root / "truncated.png").write_bytes((root / "a.png").read_bytes()[:200])
    (root / "text.jpg").write_text("this is not a JPEG")
    Image.fromarray(_rgb(rng)[..., 0]).save(root / "gray.png")
    transparent = rgba.copy()
    transparent[:5, :5, 3] = 0
    Image.fromarray(transparent, "RGBA").save(root / "transparent.png")
    fits.writeto(root / "four_planes.fits", np.ones((4, 40, 40), np.float32))
    nan = grz.copy()
    nan[1, 5, 5] = np.nan
    fits.writeto(root / "nan.fits", nan)
    for band in "gr":
        fits.writeto(root / f"pair_{band}.fits", grz[0])
    inputs = [
        root / "a.png",
        root / "b.jpg",
        folder,
        root / "cat.h5",
        root / "cube.fits",
        root / "obj_g.fits",
        root / "obj_r.fits",
        root / "obj_z.fits",
        root / "truncated.png",
        root / "text.jpg",
        root / "gray.png",
        root / "transparent.png",
        root / "four_planes.fits",
        root / "nan.fits",
        root / "pair_g.fits",
        root / "pair_r.fits",
    ]
    expected = [
        (str(root / "a.png"), None),
        (str(root / "b.jpg"), None),
        (str(folder / "c.png"), None),
        (str(folder / "d_opaque_rgba.png"), None),
        (str(folder / "sub" / "z.tiff"), None),
        (str(root / "cat.h5"), None),
        (str(root / "cat.h5"), None),
        (str(root / "cat.h5"), None),
        (str(root / "cube.fits"), None),
        (";".join(str(root / f"obj_{b}.fits") for b in "grz"), None),
        (str(root / "truncated.png"), "truncated"),
        (str(root / "text.jpg"), "not an image"),
        (str(root / "gray.png"), "grayscale"),
        (str(root / "transparent.png"), "transparent"),
        (str(root / "four_planes.fits"), "(4, 40, 40)"),
        (str(root / "nan.fits"), "NaN"),
        (";".join(str(root / f"pair_{b}.fits") for b in "gr"), "exactly 3"),
    ]
    return root, inputs, expected, a, grz


def test_mixed_inputs_give_one_row_each(decals_model, mixed):
    root, inputs, expected, a, grz = mixed
    # fp32: the rows are compared with the eager fp32 model below (the default, auto, may pick bf16)
    table = predict(inputs, decals_model, batch_size=4, progress=False, output="arrow", precision="fp32")
    df = table.to_pandas()
    assert df["source"].tolist() == [s for s, _ in expected]
    assert df["index"].tolist() == list(range(len(expected)))
    for i, (_, err) in enumerate(expected):
        if err is None:
            assert pd.isna(df["error"][i]), df["error"][i]
        else:
            assert err in df["error"][i]
    good = df["error"].isna().to_numpy()
    probs = np.stack([_probs(df, i) for i in range(len(df))])
    assert np.isnan(probs[~good]).all() and df["pred_label"][~good].isna().all()
    np.testing.assert_allclose(probs[good].sum(1), 1.0, atol=1e-5)
    top2 = np.sort(probs[good], axis=1)[:, -2:]
    np.testing.assert_allclose(df["margin"][good], top2[:, 1] - top2[:, 0], atol=1e-6)
    entropy = -(probs[good] * np.log(probs[good])).sum(1)
    np.testing.assert_allclose(df["entropy"][good], entropy, rtol=1e-5)
    assert [GALAXY10_DECALS_CLASSES[int(i)] for i in df["pred_id"][good]] == df["pred_label"][good].tolist()
    # HDF5 rows: row index, ans, ra, dec
    h5 = df[df["source"] == str(root / "cat.h5")]
    assert h5["row"].astype(int).tolist() == [0, 1, 2] and h5["file_label"].astype(int).tolist() == [3, 1, 4]
    assert h5["ra"].tolist() == [10.5, 11.5, 12.5] and h5["dec"].tolist() == [-1.0, -2.0, -3.0]
    assert df["hdu"][8] == 0
    # The catalogue is the model on timm's eval transform: a.png by hand, and the same pixels in HDF5 row 0
    model = load_model(decals_model).model
    data_config = timm.data.resolve_model_data_config(model)
    with torch.no_grad():
        direct = model(eval_transform(data_config)(Image.open(root / "a.png"))[None]).softmax(1)[0]
    np.testing.assert_allclose(probs[0], direct.numpy(), atol=1e-5)
    np.testing.assert_allclose(probs[5], probs[0], atol=1e-6)
    # A (g, r, z) cube and the same bands as three files are the same galaxy: z -> red, g -> blue, north up
    np.testing.assert_allclose(probs[8], probs[9], atol=1e-6)
    rgb = make_lupton_rgb(grz[2], grz[1], grz[0], minimum=0, stretch=0.5, Q=8)[::-1]
    with torch.no_grad():
        direct = model(eval_transform(data_config)(Image.fromarray(np.ascontiguousarray(rgb)))[None]).softmax(
            1
        )
    np.testing.assert_allclose(probs[8], direct[0].numpy(), atol=1e-5)
    # metadata: model, weights SHA-256 of the safetensors file, TTA
    meta = table.schema.metadata
    sha = hashlib.sha256((decals_model / "model.safetensors").read_bytes()).hexdigest()
    assert meta[b"weights_sha256"].decode() == sha and meta[b"tta"] == b"none"
    assert meta[b"model"].decode() == str(decals_model)
    info = json.loads(meta[b"galaxy_attn"])
    assert info["label_names"] == list(GALAXY10_DECALS_CLASSES) and info["dataset"] == "galaxy10_decals"


@pytest.mark.slow
def test_decoding_workers_give_the_same_rows(decals_model, mixed, tmp_path):
    _, inputs, _, _, _ = mixed
    threaded = predict(inputs[:5], decals_model, batch_size=3, progress=False)
    workers = predict(inputs[:5], decals_model, batch_size=3, num_workers=1, progress=False)
    # The same rows in the same order; values to float32 rounding (the forwards may run on another number of
    # threads, whose convolutions can sum in another order on some CPUs).
    pd.testing.assert_frame_equal(threaded, workers, check_exact=False, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_cpu_pipelines_give_the_rows_and_maps_of_one(decals_model, mixed, tmp_path, monkeypatch):
    from timm_galaxy_attn.catalog import engine, maps_path, read_maps

    _, inputs, _, _, _ = mixed
    runs, threads = {}, torch.get_num_threads()
    for plan in [(1, 2), (3, 1)]:  # one pipeline of two threads; three single-threaded pipelines
        monkeypatch.setattr(engine, "cpu_pipelines", lambda cores=None, plan=plan: plan)
        out = tmp_path / f"cat{plan[0]}.parquet"
        df = predict(inputs, decals_model, out=out, maps=True, batch_size=2, progress=False)
        ok = df.index[df["error"].isna()].tolist()
        runs[plan] = df, read_maps(maps_path(out), ok)[1]
    (one, one_maps), (three, three_maps) = runs.values()
    # The same rows in the same order; values to float32 rounding (a 2-thread and a 1-thread conv may sum in
    # another order on some CPUs), far tighter than any difference between two galaxies.
    pd.testing.assert_frame_equal(one, three, check_exact=False, rtol=1e-5, atol=1e-6)
    assert len(one_maps) == len(three_maps) > 3
    assert not np.array_equal(one_maps[0][0], one_maps[1][0])  # rows' maps differ...
    for a, b in zip(one_maps, three_maps, strict=True):  # ...and each row has its own, not another batch's
        for m, n in zip(a, b, strict=True):
            np.testing.assert_allclose(m, n, rtol=1e-5, atol=1e-6)
    assert torch.get_num_threads() == threads  # the intra-op thread count is restored


def _radial_image(size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r2 = xx**2 + yy**2
    img = np.stack([200 * np.exp(-r2 / 60), 150 * np.exp(-r2 / 200), 255 * np.exp(-r2 / 30)], -1)
    img[np.abs(r2 - 150) < 20] = (30, 90, 200)  # a ring, so the map is not flat
    return img.round().astype(np.uint8)


def test_d4_tta_of_a_symmetric_image_has_zero_spread(decals_model, tmp_path):
    sym = _radial_image(64)  # 64 px, crop_pct 0.5 -> the central 32 px: the crop keeps the symmetry
    assert all(np.array_equal(sym, np.rot90(sym, k)) for k in range(4)) and np.array_equal(sym, sym[:, ::-1])
    Image.fromarray(sym).save(tmp_path / "sym.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        tmp_path / "r.png"
    )
    df = predict([tmp_path / "sym.png", tmp_path / "r.png"], decals_model, tta="d4", progress=False)
    std = df[[c for c in df.columns if c.startswith("std_")]].to_numpy()
    assert std.shape[1] == len(GALAXY10_DECALS_CLASSES)
    assert np.abs(std[0]).max() < 1e-6 and df["tta_agreement"][0] == 1.0
    assert std[1].max() > 1e-4  # noise is not symmetric: the views disagree
    plain = predict([tmp_path / "sym.png"], decals_model, progress=False)
    np.testing.assert_allclose(_probs(df, 0), _probs(plain, 0), atol=1e-6)


def test_d4_tta_swaps_mirror_labels(tmp_path):
    """gz1_sdss: a mirror turns clockwise into anticlockwise, so the views' probabilities of 1 and 2 swap."""
    folder = _model_folder(tmp_path, "gz1_sdss")
    Image.fromarray(_radial_image(64)).save(tmp_path / "sym.png")
    plain = predict([tmp_path / "sym.png"], folder, progress=False)
    tta = predict([tmp_path / "sym.png"], folder, tta="d4", progress=False, output="arrow")
    p = _probs(plain, 0)
    q = _probs(tta.to_pandas(), 0)
    expected = p.copy()
    expected[1] = expected[2] = (p[1] + p[2]) / 2  # four views see p, four see p with 1 and 2 swapped
    np.testing.assert_allclose(q, expected, atol=1e-6)
    info = json.loads(tta.schema.metadata[b"galaxy_attn"])
    assert info["mirror_label_swaps"] == {"1": 2, "2": 1} and info["label_names"] == list(GZ1_SDSS_CLASSES)


def test_heatmaps_one_png_per_galaxy_named_in_the_row(decals_model, mixed, tmp_path):
    root, _, _, _, _ = mixed
    inputs = [root / "a.png", root / "cat.h5", root / "gray.png"]
    df = predict(inputs, decals_model, heatmaps=tmp_path / "maps", progress=False)
    assert pd.isna(df["heatmap"][4])  # the grayscale image has no heatmap
    paths = df["heatmap"][:4].tolist()
    assert len(set(paths)) == 4 and sorted(Path(p).name for p in paths) == sorted(
        p.name for p in (tmp_path / "maps").iterdir()
    )
    assert Path(paths[1]).name == "00000001_cat_row0.png"
    with Image.open(paths[0]) as fig:
        assert fig.mode == "RGB" and fig.width > 3 * fig.height  # image + three maps side by side


def test_csv_out_resume_and_other_runs(decals_model, mixed, tmp_path):
    root, _, _, _, _ = mixed
    out = tmp_path / "cat.csv"
    inputs = [root / "a.png", root / "b.jpg", root / "gray.png"]
    summary = predict(inputs, decals_model, out=out, progress=False, output="none")
    assert (summary.n_rows, summary.n_errors, summary.n_processed) == (3, 1, 3)
    sidecar = json.loads((tmp_path / "cat.csv.json").read_text())
    assert sidecar["weights_sha256"] == load_model(decals_model).weights_sha256
    assert not (tmp_path / "cat.csv.parts").exists()
    first = out.read_bytes()
    again = predict(inputs, decals_model, out=out, progress=False, output="none")  # nothing left to do
    assert again.n_processed == 0 and again.n_rows == 3 and out.read_bytes() == first
    with pytest.raises(FileExistsError, match="different run"):
        predict(inputs[:2], decals_model, out=out, progress=False)
    df = predict(inputs[:2], decals_model, out=out, overwrite=True, progress=False)
    assert len(df) == 2


def test_architecture_name_loads_its_default_tag() -> None:
    loaded = load_model("galaxy_attn_vgg")  # as timm.create_model("galaxy_attn_vgg", pretrained=True)
    assert loaded.weights_file == str(pretrained_path("galaxy_attn_vgg.gz_sdss") / "model.safetensors")
    assert loaded.model.stem_stride == 4 and loaded.pretrained_cfg["input_size"][-1] == 128


def test_model_loading_errors(tmp_path, decals_model):
    with pytest.raises(ModelLoadError, match="allow-random-weights"):
        load_model("galaxy_attn_vgg_small")  # an architecture without shipped weights
    with pytest.raises(ModelLoadError, match="Unknown model"):
        load_model("resnet_that_does_not_exist")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="config.json"):
        load_model(tmp_path / "empty")
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_bytes((decals_model / "config.json").read_bytes())
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_model(no_weights)
    with pytest.warns(UserWarning, match="RANDOM"):
        loaded = load_model("galaxy_attn_vgg_small", allow_random_weights=True)
    assert loaded.weights_sha256 is None and loaded.dataset == "galaxy10_decals"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        collect_inputs([tmp_path / "missing.png"])


def test_folder_listing_is_sorted_and_recursive(tmp_path):
    for name in ("b/2.png", "a.png", "b/1.jpg", "c/x_g.fits", ".git/skip.png", "b/.hidden.png"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    units = collect_inputs([tmp_path]).units
    assert [Path(u.source).relative_to(tmp_path).as_posix() for u in units] == [
        "a.png",
        "b/1.jpg",
        "b/2.png",
        "c/x_g.fits",
    ]


@pytest.mark.slow
def test_compile_gives_the_rows_of_eager_and_refuses_maps(decals_model, mixed, tmp_path):
    from timm_galaxy_attn import capture_attention

    _, inputs, _, _, _ = mixed
    kw = dict(batch_size=4, progress=False, precision="fp32")
    eager = predict(inputs[:5], decals_model, **kw)
    compiled = predict(inputs[:5], decals_model, compile=True, **kw)
    cols = [c for c in eager.columns if c.startswith("prob_")]
    assert (eager["pred_id"].fillna(-1) == compiled["pred_id"].fillna(-1)).all()
    np.testing.assert_allclose(compiled[cols].to_numpy(float), eager[cols].to_numpy(float), atol=1e-5)
    with pytest.raises(ValueError, match="--compile cannot give attention maps"):
        predict(inputs[:5], decals_model, compile=True, maps=True, out=tmp_path / "c.parquet", **kw)
    model = load_model(decals_model).model
    with pytest.raises(ValueError, match="needs the eager model"), capture_attention(torch.compile(model)):
        pass


def test_the_gpu_producer_thread_yields_in_order_and_hands_on_failures():
    from timm_galaxy_attn.catalog.engine import iterate_batches

    class Batches:  # what BatchDecoder gives: len() batches, each a dict with "x"
        def __init__(self, fail_at=None):
            self.fail_at = fail_at

        def __len__(self):
            return 5

        def __getitem__(self, b):
            if b == self.fail_at:
                raise OSError(f"disk gone at batch {b}")
            return {"x": torch.full((1,), b), "range": (b, b + 1)}

    got = [int(item["x"]) for item in iterate_batches(Batches(), num_workers=0, prefetch=1)]
    assert got == [0, 1, 2, 3, 4]
    seen = []
    with pytest.raises(OSError, match="disk gone at batch 3"):
        for item in iterate_batches(Batches(fail_at=3), num_workers=0, prefetch=1):
            seen.append(int(item["x"]))
    assert seen == [0, 1, 2]
    first = next(iter(iterate_batches(Batches(), num_workers=0, prefetch=1)))  # an abandoned consumer
    assert int(first["x"]) == 0
