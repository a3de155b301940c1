"""Official sources offline, the gz1_sdss real sample, parquet/image folders, the synthetic source."""

from __future__ import annotations

import contextlib
import hashlib
import io
import socket
import threading

import numpy as np
import pytest
from PIL import Image

from timm_galaxy_attn.data import DataSourceUnavailable, load_galaxy_dataset, sources, split_info
from timm_galaxy_attn.data.sources import data_root, download_galaxy10, find_data, resolve_gz1_sdss
from timm_galaxy_attn.labels import GALAXY10_DECALS_CLASSES, GZ1_SDSS_CLASSES


@pytest.fixture
def no_official_files(monkeypatch):
    for var in ("GALAXY10_DECALS_PATH", "GALAXY10_SDSS_PATH"):
        monkeypatch.delenv(var, raising=False)


def record_connects(monkeypatch) -> list:
    """Every host lookup and TCP connection the code under test tries, refused and recorded."""
    tried = []

    def refuse(what):
        def call(*args, **kwargs):
            tried.append((what, args[-1] if what == "connect" else args[0]))
            raise OSError("no connection may be opened here (test)")

        return call

    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    return tried


@pytest.mark.parametrize(
    "name, fname, var",
    [
        ("galaxy10_decals", "Galaxy10_DECals.h5", "GALAXY10_DECALS_PATH"),
        ("galaxy10_sdss", "Galaxy10.h5", "GALAXY10_SDSS_PATH"),
    ],
)
def test_offline_fails_fast_with_instructions(tmp_path, monkeypatch, no_official_files, name, fname, var):
    """Offline: the error comes before any connection is tried (no probe, no download, no retries)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    connects = record_connects(monkeypatch)
    with pytest.raises(DataSourceUnavailable) as err:
        load_galaxy_dataset(name, cache_dir=tmp_path / "cache")
    assert connects == []
    msg = str(err.value)
    assert fname in msg and var in msg and "astro.utoronto.ca" in msg and "path=" in msg
    assert not (tmp_path / "cache" / "downloads" / fname).exists()


def test_no_network_fails_fast(tmp_path, monkeypatch, no_official_files):
    """Not flagged offline but no connection opens: the probe gives up fast and says where to put the file."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)

    probes = []

    def refuse(address, timeout):
        probes.append((address, timeout))
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(DataSourceUnavailable, match="cannot be reached.*GALAXY10_DECALS_PATH"):
        load_galaxy_dataset("galaxy10_decals", cache_dir=tmp_path / "cache")
    with pytest.raises(DataSourceUnavailable, match="huggingface.co cannot be reached"):
        load_galaxy_dataset("galaxy10_decals", split="hub", cache_dir=tmp_path / "cache")
    # fast: one probe per source, each bounded by the probe timeout (at most 2 s), no retry after the refusal
    assert 0 < sources._PROBE_TIMEOUT_S <= 2.0
    assert probes == [
        (("www.astro.utoronto.ca", 443), sources._PROBE_TIMEOUT_S),
        (("huggingface.co", 443), sources._PROBE_TIMEOUT_S),
    ]


def test_an_unanswered_probe_is_given_up_after_its_timeout(monkeypatch):
    """A host that does not answer in time: the probe says False at its timeout instead of waiting for the
    socket (which here would open, late: a probe without the bound would say True)."""
    release = threading.Event()

    def hang(address, timeout):
        release.wait(10)  # held until the probe has answered
        return contextlib.nullcontext()

    monkeypatch.setattr(socket, "create_connection", hang)
    try:
        assert sources._host_reachable("https://example.invalid", timeout=0.01) is False
    finally:
        release.set()


def test_download_is_checksummed_and_atomic(tmp_path, monkeypatch):
    """The download streams into a temporary file: a wrong SHA-256 leaves nothing, a right one the file."""
    payload = b"not really an HDF5 file" * 1000
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(sources, "_host_reachable", lambda url: True)

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

    monkeypatch.setattr(sources.urllib.request, "urlopen", lambda url, timeout: Response(payload))
    downloads = tmp_path / "downloads"

    monkeypatch.setitem(sources.GALAXY10_SHA256, "galaxy10_sdss", "0" * 64)
    with pytest.raises(OSError, match="SHA-256"):
        download_galaxy10("galaxy10_sdss", tmp_path)
    assert list(downloads.iterdir()) == []

    monkeypatch.setitem(sources.GALAXY10_SHA256, "galaxy10_sdss", hashlib.sha256(payload).hexdigest())
    dest = download_galaxy10("galaxy10_sdss", tmp_path)
    assert dest == downloads / "Galaxy10.h5" and dest.read_bytes() == payload
    assert [p.name for p in downloads.iterdir()] == ["Galaxy10.h5"]


def test_hub_split_offline_names_repo(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataSourceUnavailable, match="matthieulel/galaxy10_decals"):
        load_galaxy_dataset("galaxy10_decals", split="hub", cache_dir=tmp_path)


@pytest.mark.slow
def test_gz1_sdss_real_sample(tmp_path):
    dd = load_galaxy_dataset("gz1_sdss", cache_dir=tmp_path)
    assert sum(len(ds) for ds in dd.values()) == 5665
    ids = np.concatenate([np.asarray(ds["sdss_objid"]) for ds in dd.values()])
    assert len(np.unique(ids)) == 5665
    assert tuple(dd["train"].features["label"].names) == GZ1_SDSS_CLASSES
    info = split_info(dd)
    overall = np.array([3948, 352, 371, 848, 48, 98]) / 5665
    for split, counts in info["class_counts"].items():
        assert np.abs(np.array(counts) / sum(counts) - overall).max() < 0.02, split
    assert info["grouping"]["identical_pixel_pairs"] == 0  # checked on decoded pixels: none in this sample
    assert dd["test"][0]["image"].size == (423, 423)


def test_gz1_sdss_location(tmp_path, monkeypatch):
    found = resolve_gz1_sdss()
    monkeypatch.chdir(tmp_path)  # from elsewhere, found through GALAXY_ATTN_DATA_DIR (conftest)
    assert resolve_gz1_sdss() == found
    monkeypatch.setenv("GZ1_SDSS_PATH", str(found.parent))
    assert resolve_gz1_sdss() == found
    monkeypatch.setenv("GZ1_SDSS_PATH", str(tmp_path / "missing.parquet"))
    with pytest.raises(FileNotFoundError, match="GZ1_SDSS_PATH.*missing.parquet"):
        resolve_gz1_sdss()


def test_data_root_explicit_or_clear_error(tmp_path, monkeypatch):
    """The data root is an argument or GALAXY_ATTN_DATA_DIR; without either, the error names both."""
    found = resolve_gz1_sdss()
    assert resolve_gz1_sdss(data_dir=found.parents[1]) == found
    monkeypatch.delenv("GALAXY_ATTN_DATA_DIR")
    monkeypatch.chdir(tmp_path)  # nothing upward of here
    with pytest.raises(FileNotFoundError, match="data_dir=.*GALAXY_ATTN_DATA_DIR.*GZ1_SDSS_PATH"):
        resolve_gz1_sdss()
    assert data_root(found.parents[1]) == found.parents[1]
    monkeypatch.setenv("GALAXY_ATTN_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="GALAXY_ATTN_DATA_DIR points to .*missing"):
        find_data("gz1_sdss")


def test_image_folder_with_duplicate(tmp_path):
    rng = np.random.default_rng(0)
    first = None
    for c, name in enumerate(["Elliptical", "Spiral clockwise"]):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(10):
            arr = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            if c == 0 and i == 1:
                arr = first  # planted duplicate, saved under another name
            first = arr if first is None else first
            Image.fromarray(arr).save(tmp_path / "imgs" / name / f"{i}.png")
    dd = load_galaxy_dataset(tmp_path / "imgs", cache_dir=tmp_path / "c", val_fraction=0.2, test_fraction=0.2)
    assert dd["train"].features["label"].names == ["Elliptical", "Spiral clockwise"]
    assert sum(map(len, dd.values())) == 20
    assert split_info(dd)["grouping"]["identical_pixel_pairs"] == 1


def test_parquet_folder_hub_split(tmp_path):
    """A local copy of a Hub dataset (train/test parquet files) keeps its own test split."""
    import datasets

    feats = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(GALAXY10_DECALS_CLASSES))}
    )
    rng = np.random.default_rng(0)
    (tmp_path / "hub" / "data").mkdir(parents=True)
    for split, n in (("train", 60), ("test", 10)):
        ds = datasets.Dataset.from_dict(
            {
                "image": [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(n)],
                "label": [i % 10 for i in range(n)],
            },
            features=feats,
        )
        ds.to_parquet(tmp_path / "hub" / "data" / f"{split}-00000-of-00001.parquet")
    dd = load_galaxy_dataset("galaxy10_decals", split="hub", path=tmp_path / "hub", cache_dir=tmp_path / "c")
    assert len(dd["test"]) == 10 and len(dd["train"]) + len(dd["validation"]) == 60
    assert split_info(dd)["rule"].startswith("hub:")


def test_synthetic_source(tmp_path):
    dd = load_galaxy_dataset("synthetic", n_per_class=10, image_size=32, cache_dir=tmp_path)
    assert tuple(dd["train"].features["label"].names) == GALAXY10_DECALS_CLASSES
    row = dd["test"][0]
    assert row["image"].size == (32, 32) and row["mask"].size == (32, 32)
    assert [len(dd[s]) for s in ("train", "validation", "test")] == [80, 10, 10]
