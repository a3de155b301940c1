"""Bad input to load_galaxy_dataset: a clear error naming file/key/row, and no half-written cache."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from test_data_hdf5 import make_decals_h5

from timm_galaxy_attn.data import GalaxyDataError, load_galaxy_dataset


def _assert_no_cache_left(cache):
    assert not cache.exists() or list(cache.iterdir()) == []


def _write(path, **keys):
    with h5py.File(path, "w") as fh:
        for k, v in keys.items():
            fh[k] = v


def _images(n=20, size=16):
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


LABELS = (np.arange(20) % 10).astype(np.uint8)


@pytest.mark.parametrize(
    "keys, expect",
    [
        ({"ans": LABELS}, ["'images'", "missing key"]),
        ({"images": _images()}, ["'ans'", "missing key"]),
        ({"images": _images().astype(np.float32), "ans": LABELS}, ["'images'", "float32", "uint8"]),
        ({"images": _images()[..., 0], "ans": LABELS}, ["'images'", "(20, 16, 16)"]),
        ({"images": _images(), "ans": LABELS[:10]}, ["'ans'", "(10,)"]),
        (
            {"images": _images(), "ans": np.r_[LABELS[:19], 10].astype(np.uint8)},
            ["'ans'", "row 19", "label 10"],
        ),
        ({"images": _images(), "ans": LABELS, "ra": np.zeros(20), "dec": np.zeros(3)}, ["'dec'"]),
    ],
    ids=["no-images", "no-ans", "float-images", "grey-images", "short-ans", "label-out-of-range", "bad-dec"],
)
def test_bad_hdf5_layouts(tmp_path, keys, expect):
    path = tmp_path / "bad.h5"
    _write(path, **keys)
    cache = tmp_path / "cache"
    with pytest.raises(GalaxyDataError) as err:
        load_galaxy_dataset(path, cache_dir=cache, dataset_name="galaxy10_decals")
    msg = str(err.value)
    assert str(path) in msg
    for e in expect:
        assert e in msg, msg
    _assert_no_cache_left(cache)


def test_missing_file(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        load_galaxy_dataset(tmp_path / "nope.h5", cache_dir=tmp_path / "cache")
    monkeypatch.setenv("GALAXY10_DECALS_PATH", str(tmp_path / "nope.h5"))
    with pytest.raises(FileNotFoundError, match="GALAXY10_DECALS_PATH.*not a file"):
        load_galaxy_dataset("galaxy10_decals", cache_dir=tmp_path / "cache")


def test_unknown_identity_needs_dataset_name(tmp_path):
    path = tmp_path / "x.h5"
    _write(path, images=_images(), ans=LABELS)
    with pytest.raises(GalaxyDataError, match="dataset_name="):
        load_galaxy_dataset(path, cache_dir=tmp_path / "cache")


def test_truncated_hdf5(tmp_path):
    path = tmp_path / "trunc.h5"
    make_decals_h5(path, counts=[4] * 10)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GalaxyDataError, match="trunc.h5.*truncated"):
        load_galaxy_dataset(path, cache_dir=tmp_path / "cache")
    _assert_no_cache_left(tmp_path / "cache")


def test_corrupt_chunk_mid_build_leaves_no_cache(tmp_path):
    """Damage one compressed chunk: the error comes during the build, and the temp dir goes away."""
    path = tmp_path / "corrupt.h5"
    n = 40
    with h5py.File(path, "w") as fh:
        fh.create_dataset("images", data=_images(n), chunks=(4, 16, 16, 3), compression="gzip")
        fh["ans"] = (np.arange(n) % 10).astype(np.uint8)
        fh["ra"], fh["dec"] = np.linspace(0, 10, n), np.zeros(n)
        info = fh["images"].id.get_chunk_info(7)  # rows 28-31
    with open(path, "r+b") as f:
        f.seek(info.byte_offset)
        f.write(b"\xff" * info.size)
    cache = tmp_path / "cache"
    with pytest.raises(GalaxyDataError, match="corrupt.h5.*'images' rows"):
        load_galaxy_dataset(path, cache_dir=cache)
    _assert_no_cache_left(cache)


def _parquet(path, images_bytes, labels):
    table = pa.table(
        {
            "image": pa.array(
                [{"bytes": b, "path": f"img{i}.png"} for i, b in enumerate(images_bytes)],
                type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
            ),
            "label": pa.array(labels, type=pa.int64()),
        }
    )
    pq.write_table(table, path)


def _png(seed):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_unreadable_image_in_parquet(tmp_path):
    imgs = [_png(i) for i in range(20)]
    imgs[13] = b"not an image at all"
    _parquet(tmp_path / "d.parquet", imgs, list(range(10)) * 2)
    cache = tmp_path / "cache"
    with pytest.raises(GalaxyDataError, match=r"d.parquet.*row 13.*img13.png.*unreadable image"):
        load_galaxy_dataset(tmp_path / "d.parquet", cache_dir=cache, dataset_name="galaxy10_decals")
    _assert_no_cache_left(cache)


def test_parquet_label_out_of_range_and_unnamed(tmp_path):
    _parquet(tmp_path / "d.parquet", [_png(i) for i in range(20)], [0] * 19 + [6])
    with pytest.raises(GalaxyDataError, match="row 19 has label 6"):
        load_galaxy_dataset(tmp_path / "d.parquet", cache_dir=tmp_path / "c", dataset_name="gz1_sdss")
    with pytest.raises(GalaxyDataError, match="pass\\s+dataset_name"):
        load_galaxy_dataset(tmp_path / "d.parquet", cache_dir=tmp_path / "c")
    _assert_no_cache_left(tmp_path / "c")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split="):
        load_galaxy_dataset("synthetic", split="random", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="sum < 1"):
        load_galaxy_dataset("synthetic", val_fraction=0.5, test_fraction=0.5, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="split='hub' needs"):
        load_galaxy_dataset("synthetic", split="hub", n_per_class=3, image_size=16, cache_dir=tmp_path / "c")
    _assert_no_cache_left(tmp_path / "c")
