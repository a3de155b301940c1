"""Small files in the official Galaxy10 layouts, with planted duplicates, for the data tests."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

# per-class counts roughly in Galaxy10 DECaLS proportions (sum 480)
CLASS_COUNTS = [30, 50, 70, 55, 12, 55, 50, 70, 38, 50]


def make_decals_h5(path: Path, size: int = 32, seed: int = 0, counts=CLASS_COUNTS) -> dict:
    """Write an astroNN DECaLS-layout file; returns the planted row pairs."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts)
    rng.shuffle(labels)
    n = len(labels)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    ra = rng.uniform(0, 360, n)
    dec = np.rad2deg(np.arcsin(rng.uniform(-0.9, 0.9, n)))
    same_cls = [np.flatnonzero(labels == c) for c in range(len(counts))]
    a, b = same_cls[2][:2]  # same sky position (as the 59 pairs of the real file)
    ra[b], dec[b] = ra[a], dec[a]
    c, d = same_cls[7][:2]  # 8 arcsec apart, different pixels
    ra[d], dec[d] = ra[c], dec[c] + 8 / 3600
    e, f = same_cls[5][:2]  # identical pixels, far apart on the sky
    images[f] = images[e]
    g, h = same_cls[0][:2]  # 12 arcsec apart: must NOT be grouped
    ra[h], dec[h] = ra[g], dec[g] + 12 / 3600
    with h5py.File(path, "w") as fh:
        fh["images"] = images
        fh["ans"] = labels.astype(np.uint8)
        fh["ra"], fh["dec"] = ra, dec
        fh["redshift"] = rng.uniform(0, 0.2, n)
        fh["pxscale"] = np.full(n, 0.262)
    return {"same_position": (a, b), "within_10": (c, d), "identical": (e, f), "apart_12": (g, h), "n": n}


def make_sdss_h5(path: Path, n_per_class: int = 12, seed: int = 1) -> dict:
    """Write an astroNN SDSS-layout file (69x69, images and ans only) with a pixel-identical pair."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n_per_class)
    images = rng.integers(0, 256, size=(len(labels), 69, 69, 3), dtype=np.uint8)
    e, f = 3, 5  # both class 0
    images[f] = images[e]
    with h5py.File(path, "w") as fh:
        fh["images"] = images
        fh["ans"] = labels.astype(np.uint8)
    return {"identical": (e, f), "n": len(labels)}


def find_rows(dsdict, key_column: str, values) -> dict:
    """Split name of each wanted value of a column (used with a planted id column)."""
    out = {}
    for split, ds in dsdict.items():
        for v in ds[key_column]:
            if v in values:
                out[v] = split
    return out


# ---------------------------------------------------------------------------------------------- tests
import hashlib  # noqa: E402
import io  # noqa: E402
import tracemalloc  # noqa: E402

import datasets  # noqa: E402
import pytest  # noqa: E402

from timm_galaxy_attn.data import load_galaxy_dataset, split_info  # noqa: E402
from timm_galaxy_attn.labels import GALAXY10_DECALS_CLASSES, GALAXY10_SDSS_CLASSES  # noqa: E402


def _pixel_splits(dsdict) -> dict[bytes, list[str]]:
    out: dict[bytes, list[str]] = {}
    for split, ds in dsdict.items():
        raw = ds.cast_column("image", datasets.Image(decode=False))
        for item in raw["image"]:
            from PIL import Image

            px = np.asarray(Image.open(io.BytesIO(item["bytes"])).convert("RGB"))
            out.setdefault(hashlib.sha1(px.tobytes()).digest(), []).append(split)
    return out


def _split_of_position(dsdict, ra: float, dec: float) -> list[str]:
    return [
        s
        for s, ds in dsdict.items()
        for r, d in zip(ds["ra"], ds["dec"], strict=True)
        if r == ra and d == dec
    ]


@pytest.fixture(scope="module")
def decals(tmp_path_factory):
    root = tmp_path_factory.mktemp("decals")
    planted = make_decals_h5(root / "Galaxy10_DECals_small.h5")
    with h5py.File(root / "Galaxy10_DECals_small.h5") as fh:
        planted["ra"], planted["dec"], planted["images"] = fh["ra"][()], fh["dec"][()], fh["images"][()]
    dd = load_galaxy_dataset(root / "Galaxy10_DECals_small.h5", cache_dir=root / "cache", seed=0)
    return root, planted, dd


def test_decals_layout_features_and_names(decals):
    _, planted, dd = decals
    assert list(dd) == ["train", "validation", "test"]
    feats = dd["train"].features
    assert isinstance(feats["image"], datasets.Image)
    assert tuple(feats["label"].names) == GALAXY10_DECALS_CLASSES
    assert feats["ra"].dtype == "float64" and feats["dec"].dtype == "float64"
    assert sum(len(ds) for ds in dd.values()) == planted["n"]
    img = dd["test"][0]["image"]
    assert img.size == (32, 32) and img.mode == "RGB"
    info = split_info(dd)
    assert info["counts"] == {k: len(v) for k, v in dd.items()}
    assert info["dataset_name"] == "galaxy10_decals" and "grouped stratified" in info["rule"]
    # the image bytes round-trip to the HDF5 pixels (lossless PNG)
    ra0 = dd["test"][0]["ra"]
    row = int(np.flatnonzero(planted["ra"] == ra0)[0])
    np.testing.assert_array_equal(np.asarray(img), planted["images"][row])


def test_split_sizes_and_stratification(decals):
    _, planted, dd = decals
    n = planted["n"]
    sizes = {k: len(v) for k, v in dd.items()}
    assert abs(sizes["test"] - 0.1 * n) <= 10 and abs(sizes["validation"] - 0.1 * n) <= 10
    overall = np.array(CLASS_COUNTS) / n
    for ds in dd.values():
        frac = np.bincount(ds["label"], minlength=10) / len(ds)
        assert np.abs(frac - overall).max() < 0.02, (frac, overall)


def test_planted_pairs_never_split(decals):
    _, planted, dd = decals
    for key in ("same_position", "within_10"):
        i, j = planted[key]
        si = _split_of_position(dd, planted["ra"][i], planted["dec"][i])
        sj = _split_of_position(dd, planted["ra"][j], planted["dec"][j])
        assert len(si) >= 1 and len(sj) >= 1 and set(si) | set(sj) == {si[0]}, key
    e, _ = planted["identical"]
    splits = _pixel_splits(dd)[hashlib.sha1(planted["images"][e].tobytes()).digest()]
    assert len(splits) == 2 and splits[0] == splits[1]
    g = split_info(dd)["grouping"]
    assert g["identical_pixel_pairs"] == 1
    assert g["sky_pairs_within_arcsec"] == 2  # the same-position pair and the 8" pair, not the 12" pair
    assert g["multi_image_groups"] == 3


def test_pairs_hold_for_many_seeds(decals):
    """The 3 planted groups stay whole for every seed (directly on the split function)."""
    from timm_galaxy_attn.data import group_images, grouped_stratified_split
    from timm_galaxy_attn.data.splits import pixel_hash

    _, planted, _ = decals
    hashes = [pixel_hash(im) for im in planted["images"]]
    groups, _ = group_images(hashes, planted["ra"], planted["dec"])
    labels = np.repeat(np.arange(10), CLASS_COUNTS)  # any labels: only grouping is checked here
    for seed in range(20):
        res = grouped_stratified_split(labels, groups, seed=seed)
        where = np.empty(planted["n"], dtype=object)
        for name, idx in res.indices.items():
            where[idx] = name
        for key in ("same_position", "within_10", "identical"):
            i, j = planted[key]
            assert where[i] == where[j]


def test_determinism_and_cache(decals):
    root, _, dd = decals
    path = root / "Galaxy10_DECals_small.h5"
    again = load_galaxy_dataset(path, cache_dir=root / "cache", seed=0)  # from the cache
    other_dir = load_galaxy_dataset(path, cache_dir=root / "cache2", seed=0)  # built anew
    for split in dd:
        assert again[split]["ra"] == dd[split]["ra"] == other_dir[split]["ra"]
    seed1 = load_galaxy_dataset(path, cache_dir=root / "cache", seed=1)
    assert seed1["test"]["ra"] != dd["test"]["ra"]
    assert split_info(seed1)["seed"] == 1
    entries = sorted(p.name for p in (root / "cache").iterdir())
    assert len(entries) == 2 and all(e.startswith("hdf5-") for e in entries)  # one per seed, no temp left


def test_cache_rebuilds_when_file_changes(tmp_path):
    path = tmp_path / "g.h5"
    make_decals_h5(path, counts=[5] * 10)
    first = load_galaxy_dataset(path, cache_dir=tmp_path / "c")
    make_decals_h5(path, counts=[6] * 10, seed=3)
    second = load_galaxy_dataset(path, cache_dir=tmp_path / "c")
    assert sum(map(len, first.values())) == 50 and sum(map(len, second.values())) == 60


def test_sdss_layout(tmp_path):
    path = tmp_path / "Galaxy10.h5"
    planted = make_sdss_h5(path)
    dd = load_galaxy_dataset(path, cache_dir=tmp_path / "c", val_fraction=0.2, test_fraction=0.2)
    feats = dd["train"].features
    assert tuple(feats["label"].names) == GALAXY10_SDSS_CLASSES
    assert "ra" not in feats
    assert dd["train"][0]["image"].size == (69, 69)
    assert sum(map(len, dd.values())) == planted["n"]
    with h5py.File(path) as fh:
        px = fh["images"][planted["identical"][0]]
    splits = _pixel_splits(dd)[hashlib.sha1(px.tobytes()).digest()]
    assert len(splits) == 2 and splits[0] == splits[1]


def test_hdf5_official_name_with_env_var(tmp_path, monkeypatch):
    path = tmp_path / "Galaxy10.h5"
    make_sdss_h5(path, n_per_class=3)
    monkeypatch.setenv("GALAXY10_SDSS_PATH", str(path))
    dd = load_galaxy_dataset("galaxy10_sdss", cache_dir=tmp_path / "c")
    assert sum(map(len, dd.values())) == 30
    assert split_info(dd)["source"] == "galaxy10_sdss"


@pytest.mark.slow
def test_lazy_reading_peak_memory(tmp_path):
    """Building from a ~100 MB file allocates far less than the file (images are read in chunks)."""
    path = tmp_path / "big.h5"
    n, size = 520, 256
    with h5py.File(path, "w") as fh:
        ds = fh.create_dataset("images", shape=(n, size, size, 3), dtype=np.uint8)
        block = np.full((65, size, size, 3), 20, dtype=np.uint8)
        for s in range(0, n, 65):
            block[:, 0, 0, 0] = np.arange(s, s + 65) % 251  # distinct images, cheap to encode
            ds[s : s + 65] = block
        fh["ans"] = (np.arange(n) % 10).astype(np.uint8)
        fh["ra"], fh["dec"] = np.linspace(0, 300, n), np.linspace(-60, 60, n)
    file_size = path.stat().st_size
    assert file_size > 100e6
    tracemalloc.start()
    try:
        dd = load_galaxy_dataset(path, cache_dir=tmp_path / "c")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with h5py.File(path) as fh:  # control: reading everything at once is seen by the same measure
            whole = fh["images"][()]
        _, peak_whole = tracemalloc.get_traced_memory()
        del whole
    finally:
        tracemalloc.stop()
    assert sum(map(len, dd.values())) == n
    assert peak_whole > 0.9 * file_size
    assert peak < file_size / 4, f"peak {peak / 1e6:.1f} MB for a {file_size / 1e6:.0f} MB file"
