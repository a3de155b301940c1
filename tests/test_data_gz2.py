"""Kaggle Galaxy Zoo 2 sets: build from the committed slice, load, group and pin, clear errors (offline)."""

from __future__ import annotations

import csv
import shutil
import subprocess

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import REPO_ROOT, SHARED_DATA

from timm_galaxy_attn.data import DataSourceUnavailable, GalaxyDataError, load_galaxy_dataset, split_info
from timm_galaxy_attn.data.gz2_kaggle import (
    GZ2_KAGGLE_CLASSES,
    GZ2_SPIRAL_CLASSES,
    KAGGLE_VOTE_COLUMNS,
    build_gz2_kaggle,
    read_cosmic,
    read_pellegrini,
)
from timm_galaxy_attn.data.splits import grouped_stratified_split

SLICE = REPO_ROOT / "tests" / "data" / "gz2_kaggle_slice"
PELLEGRINI = SLICE / "Galaxy-zoo"
COSMIC = SLICE / "Cosmic-Compendium"


def slice_twins() -> dict[int, int]:
    """GalaxyID -> sdss_objid of the slice's galaxies that are also in gz1_sdss (checked by eye)."""
    with open(SLICE / "gz1_twins.csv") as f:
        return {int(r["galaxy_id"]): int(r["sdss_objid"]) for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The slice built as a user's build would be, against a 30-row gz1_sdss file holding the twins."""
    tmp = tmp_path_factory.mktemp("gz2")
    table = pq.read_table(SHARED_DATA / "gz1_sdss" / "data.parquet")
    objid = np.asarray(table.column("sdss_objid"))
    twins = np.flatnonzero(np.isin(objid, list(slice_twins().values())))
    others = np.setdiff1d(np.arange(60), twins)[: 30 - len(twins)]
    gz1 = tmp / "gz1" / "data.parquet"
    gz1.parent.mkdir()
    pq.write_table(table.take(np.concatenate([twins, others])), gz1)
    cache = tmp / "cache"
    report = build_gz2_kaggle(PELLEGRINI, COSMIC, tmp / "out", gz1, cache_dir=cache)
    return {"out": tmp / "out", "gz1": gz1, "cache": cache, "report": report}


def test_slice_is_small():
    assert sum(p.stat().st_size for p in SLICE.rglob("*") if p.is_file()) < 1_000_000


def test_readers_on_the_slice():
    votes = read_pellegrini(PELLEGRINI)
    spirals, conflicting = read_cosmic(COSMIC)
    # 17 files in the layouts of the repository's history, one galaxy filed twice
    assert len(votes) == 19 and len(spirals) == 16 and conflicting == 0
    assert set(KAGGLE_VOTE_COLUMNS.values()) <= set(votes[0])
    assert all(r["image"][:2] == b"\xff\xd8" for r in votes + spirals)  # JPEG bytes as stored


def test_load_columns_and_dedup(built):
    dd = load_galaxy_dataset("gz2_kaggle", path=built["out"], cache_dir=built["cache"])
    assert set(dd) == {"train", "validation", "test"}
    ds = datasets.concatenate_datasets(list(dd.values()))
    assert ds.features["label"].names == list(GZ2_KAGGLE_CLASSES)
    assert {"image", "galaxy_id", "source", "group", "gz1_sdss_objid", "gz1_sdss_split", "cc_spiral"} <= set(
        ds.column_names
    )
    assert set(KAGGLE_VOTE_COLUMNS.values()) <= set(ds.column_names)
    assert len(ds) == 19 and len(set(ds["galaxy_id"])) == 19
    t01 = np.stack([ds[c] for c in list(KAGGLE_VOTE_COLUMNS.values())[:3]], axis=1)
    assert (t01.argmax(axis=1) == np.asarray(ds["label"])).all()
    spiral = datasets.concatenate_datasets(
        list(load_galaxy_dataset("gz2_kaggle_spiral", path=built["out"], cache_dir=built["cache"]).values())
    )
    assert spiral.features["label"].names == list(GZ2_SPIRAL_CLASSES)
    # the two ids in both repositories are kept once, with their votes, and carry the other label
    both = set(ds["galaxy_id"]) & {r["galaxy_id"] for r in read_cosmic(COSMIC)[0]}
    assert len(both) == 2 and not both & set(spiral["galaxy_id"]) and len(spiral) == 14
    assert all(c >= 0 for g, c in zip(ds["galaxy_id"], ds["cc_spiral"], strict=True) if g in both)
    assert built["report"]["same_galaxy_id_in_both_sources"] == 2


def test_gz1_twins_found_and_pinned(built):
    """Every twin checked by eye is found; each keeps the split of its gz1_sdss galaxy."""
    gz1 = load_galaxy_dataset("gz1_sdss", path=built["gz1"], cache_dir=built["cache"])
    gz1_split = {o: s for s, d in gz1.items() for o in d["sdss_objid"]}
    found = {}
    for name in ("gz2_kaggle", "gz2_kaggle_spiral"):
        dd = load_galaxy_dataset(name, path=built["out"], cache_dir=built["cache"])
        for split, d in dd.items():
            for gid, objid, pin in zip(d["galaxy_id"], d["gz1_sdss_objid"], d["gz1_sdss_split"], strict=True):
                if objid >= 0:
                    found[gid] = objid
                    assert pin == gz1_split[objid] == split
    assert found == slice_twins()


def test_split_deterministic_and_grouped(built, tmp_path):
    a = load_galaxy_dataset("gz2_kaggle", path=built["out"], cache_dir=built["cache"], seed=3)
    b = load_galaxy_dataset("gz2_kaggle", path=built["out"], cache_dir=tmp_path, seed=3)
    for split in a:
        assert a[split]["galaxy_id"] == b[split]["galaxy_id"]
    where = {g: s for s, d in a.items() for g in d["group"]}
    assert all(where[g] == s for s, d in a.items() for g in d["group"])
    assert "gz1_sdss_split" in split_info(a)["rule"] and split_info(a)["grouping"]["group_column"] == "group"


def test_pinned_split_rows():
    labels = np.repeat([0, 1], 50)
    groups = np.arange(100)
    free = grouped_stratified_split(labels, groups, seed=1)
    same = grouped_stratified_split(labels, groups, seed=1, pinned=np.full(100, -1))
    assert all((free.indices[k] == same.indices[k]).all() for k in free.indices)
    pinned = np.full(100, -1)
    pinned[:6] = 2  # six class-0 rows pinned to test: class 0 has no room left for free rows in test
    res = grouped_stratified_split(labels, groups, seed=1, pinned=pinned)
    assert set(range(6)) <= set(res.indices["test"].tolist())
    assert [len(res.indices[k]) for k in ("train", "validation", "test")] == [79, 10, 11]
    with pytest.raises(ValueError, match="one split index per row"):
        grouped_stratified_split(labels, groups, pinned=np.full(99, -1))


def test_missing_data_names_the_build_script(tmp_path, monkeypatch):
    monkeypatch.delenv("GZ2_KAGGLE_DIR", raising=False)
    monkeypatch.setenv("GALAXY_ATTN_DATA_DIR", str(tmp_path))
    for name in ("gz2_kaggle", "gz2_kaggle_spiral"):
        with pytest.raises(DataSourceUnavailable, match="scripts/build_gz2_kaggle.py.*GZ2_KAGGLE_DIR"):
            load_galaxy_dataset(name, cache_dir=tmp_path / "cache")


def test_env_var_finds_the_build(built, monkeypatch):
    monkeypatch.setenv("GZ2_KAGGLE_DIR", str(built["out"]))
    assert len(load_galaxy_dataset("gz2_kaggle_spiral", cache_dir=built["cache"])["train"]) > 0


def test_bad_labels_csv(tmp_path):
    shutil.copytree(PELLEGRINI, tmp_path / "p")
    csv_path = tmp_path / "p" / "data" / "exercise_3_debug" / "labels.csv"
    csv_path.write_text(csv_path.read_text().replace("Class7.2", "Class7_2"))
    with pytest.raises(GalaxyDataError, match="Class7.2"):
        read_pellegrini(tmp_path / "p")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_cosmic_images_deleted_at_head_are_read_from_history(tmp_path):
    """As in the real repository: images committed once, deleted later, found in the history."""
    repo = tmp_path / "cc"
    shutil.copytree(COSMIC, repo)

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "images")
    git("rm", "-rq", "data/galaxies/train")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "remove")
    rows, _ = read_cosmic(repo)
    assert sorted(r["galaxy_id"] for r in rows) == sorted(r["galaxy_id"] for r in read_cosmic(COSMIC)[0])


def test_bad_pin_value_is_named(built, tmp_path):
    ds = datasets.Dataset.from_parquet(str(built["out"] / "gz2_kaggle" / "data.parquet"))
    ds = ds.map(lambda r: {"gz1_sdss_split": "val"})
    ds.to_parquet(str(tmp_path / "data.parquet"))
    with pytest.raises(GalaxyDataError, match="'gz1_sdss_split' holds \\['val'\\]"):
        load_galaxy_dataset("gz2_kaggle", path=tmp_path, cache_dir=tmp_path / "cache")
