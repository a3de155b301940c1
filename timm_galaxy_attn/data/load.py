"""``load_galaxy_dataset``: one call from a source name or path to a cached, leak-free DatasetDict.

Build: rows are read lazily into a ``datasets`` Arrow table (``read.py``: ``Dataset.from_generator`` for
HDF5 and synthetic images, ``load_dataset("parquet" | "imagefolder")`` for parquet files and folders), every
image is hashed on its decoded pixels, groups are formed (``splits.group_images``) and split
(``splits.grouped_stratified_split``), and the DatasetDict is saved under
``<cache_dir>/<key>/``. The key hashes the source's identity (absolute path, size, mtime of each file),
the split arguments and the source arguments, so a changed file or argument builds anew. The build
happens in ``<cache_dir>/.tmp-*`` and is moved into place with ``os.replace``: a failed build leaves
nothing behind. Later calls only memory-map the saved Arrow files.

Where the split is recorded: every split's ``info.description`` holds the same JSON (rule, seed,
fractions, counts, class counts, grouping statistics, source); :func:`split_info` returns it as a dict.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from .._io import sha256_json
from ..catalog.inputs import IMAGE_SUFFIXES as _IMAGE_SUFFIXES
from .hdf5 import GalaxyDataError
from .read import read_all_rows
from .sources import (
    GZ2_KAGGLE_NAMES,
    HUB_REPOS,
    default_cache_dir,
    hub_available,
    resolve_gz1_sdss,
    resolve_gz2_kaggle,
    resolve_official_file,
)
from .splits import (
    PIN_COLUMN,
    SPLIT_NAMES,
    SPLIT_RULE,
    group_images,
    grouped_stratified_split,
    iau_name_to_radec,
)

__all__ = ["load_galaxy_dataset", "split_info"]

_CACHE_VERSION = 1


def split_info(dsdict: datasets.DatasetDict) -> dict:
    """The split rule and counts recorded by :func:`load_galaxy_dataset` (from ``info.description``).

    Args:
        dsdict: A DatasetDict returned by :func:`load_galaxy_dataset`.
    """
    ds = next(iter(dsdict.values()))
    try:
        return json.loads(ds.info.description)
    except (TypeError, json.JSONDecodeError):
        raise ValueError(
            "this DatasetDict carries no split info (it was not built by load_galaxy_dataset)"
        ) from None


def _file_identity(paths: list[Path]) -> list[list]:
    out = []
    for p in paths:
        st = p.stat()
        out.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    return out


def _local_files(path: Path) -> tuple[str, list[Path]]:
    """Kind ('hdf5', 'parquet', 'imagefolder') and files of a local path."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder.")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".h5", ".hdf5"):
            return "hdf5", [path]
        if suffix == ".parquet":
            return "parquet", [path]
        raise GalaxyDataError(
            f"{path}: unsupported file type {suffix!r}; give an .h5, a .parquet or a folder."
        )
    parquet = sorted(path.rglob("*.parquet"))
    if parquet:
        return "parquet", parquet
    images = sorted(p for p in path.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    if images:
        return "imagefolder", images
    raise GalaxyDataError(f"{path}: folder holds no .parquet files and no images in class sub-folders.")


def _resolve(
    source: str | os.PathLike, path, dataset_name, split, cache_dir: Path, kw: dict
) -> dict[str, Any]:
    """A plan: how to read ``source``, its class names and the identity that keys the cache."""
    name = str(source)
    if name == "synthetic":
        kw = {"n_per_class": 100, "image_size": 64, "synthetic_seed": 0, **kw}
        return {
            "kind": "synthetic",
            "name": "synthetic",
            "files": [],
            "kw": kw,
            "dataset_name": "galaxy10_decals",
        }
    if name == "gz1_sdss":
        p = resolve_gz1_sdss(path)
        return {"kind": "parquet", "name": "gz1_sdss", "files": [p], "kw": kw, "dataset_name": "gz1_sdss"}
    if name in GZ2_KAGGLE_NAMES:  # duplicates share a ``group``; gz1_sdss twins keep their split
        p = resolve_gz2_kaggle(name, path)
        return {
            "kind": "parquet",
            "name": name,
            "files": [p],
            "kw": kw,
            "dataset_name": name,
            "group_column": "group",
            "pin_column": PIN_COLUMN,
        }
    if name in ("galaxy10_decals", "galaxy10_sdss"):
        if split == "hub":
            if path is not None:
                kind, files = _local_files(Path(path))
                return {
                    "kind": kind,
                    "name": name,
                    "files": files,
                    "kw": kw,
                    "dataset_name": name,
                    "root": path,
                }
            if name not in HUB_REPOS:
                raise ValueError(f"{name} has no Hugging Face copy with its own split; use split='grouped'.")
            hub_available(name)
            return {
                "kind": "hub",
                "name": name,
                "files": [],
                "kw": kw,
                "dataset_name": name,
                "repo": HUB_REPOS[name],
            }
        p = resolve_official_file(name, path, cache_dir)
        return {"kind": "hdf5", "name": name, "files": [p], "kw": kw, "dataset_name": name}
    p = Path(source).expanduser()
    kind, files = _local_files(p)
    return {"kind": kind, "name": str(p), "files": files, "kw": kw, "dataset_name": dataset_name, "root": p}


def _sky_and_keys(ds: datasets.Dataset, group_column: str | None, origin: str):
    """(ra, dec, keys, positions_from_names) for grouping: ra/dec columns, the group key column, and the
    positions its IAU designations encode when the source has no ra/dec."""
    ra = np.asarray(ds["ra"], dtype=np.float64) if "ra" in ds.column_names else None
    dec = np.asarray(ds["dec"], dtype=np.float64) if "dec" in ds.column_names else None
    if group_column is None:
        return ra, dec, None, False
    if group_column not in ds.column_names:
        usable = [c for c in ds.column_names if c not in ("image", "label", "_hash")]
        raise GalaxyDataError(
            f"{origin}: group column {group_column!r} does not exist; columns that could serve: {usable}."
        )
    keys = ds[group_column]
    parsed = iau_name_to_radec(keys) if ra is None else None
    if parsed is not None:
        ra, dec = parsed
    return ra, dec, keys, parsed is not None


def _split_one(
    ds: datasets.Dataset,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    match_arcsec: float,
    group_column: str | None = None,
    origin: str = "dataset",
    pin_column: str | None = None,
):
    ra, dec, keys, from_names = _sky_and_keys(ds, group_column, origin)
    groups, gstats = group_images(ds["_hash"], ra, dec, match_arcsec, keys=keys)
    if group_column is not None:
        gstats.update(group_column=group_column, positions_from_iau_names=from_names)
    names = tuple(ds.features["label"].names)
    res = grouped_stratified_split(
        np.asarray(ds["label"]),
        groups,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        class_names=names,
        pinned=_pins(ds, pin_column, origin),
    )
    res.info["grouping"] = gstats
    return res


def _pins(ds: datasets.Dataset, pin_column: str | None, origin: str) -> np.ndarray | None:
    """Split index per row from a column of split names (``""``: free), or None without one."""
    if pin_column is None:
        return None
    if pin_column not in ds.column_names:
        raise GalaxyDataError(f"{origin}: column {pin_column!r} is missing; rebuild the dataset.")
    index = {"": -1, **{name: k for k, name in enumerate(SPLIT_NAMES)}}
    values = ds[pin_column]
    bad = sorted(set(values) - set(index))
    if bad:
        raise GalaxyDataError(
            f"{origin}: {pin_column!r} holds {bad[:3]}; expected '' or {list(SPLIT_NAMES)}."
        )
    return np.asarray([index[v] for v in values], dtype=np.int64)


def _hub_parts(
    data: datasets.DatasetDict, plan: dict, seed, val_fraction, test_fraction, match_arcsec, group_column
):
    """split='hub': the source's own test split; validation carved from its train split."""
    if "test" not in data:
        raise ValueError(
            f"{plan['name']}: split='hub' needs a source with its own test split (found {list(data)}); "
            f"use split='grouped'."
        )
    train, test = data["train"], data["test"]
    val_share = val_fraction / (1 - test_fraction) if test_fraction < 1 else 0
    res = _split_one(train, seed, val_share, 0.0, match_arcsec, group_column, plan["name"])
    parts = {
        "train": train.select(res.indices["train"]),
        "validation": train.select(res.indices["validation"]),
        "test": test,
    }
    info = dict(
        rule="hub: the source's own test split; validation carved from its train split by the "
        + SPLIT_RULE.format(arcsec=match_arcsec),
        seed=seed,
        val_fraction=val_fraction,
        identical_pixels_across_hub_train_test=len(set(train["_hash"]) & set(test["_hash"])),
        grouping=res.info["grouping"],
    )
    return parts, info


def _grouped_parts(
    data: datasets.DatasetDict, plan: dict, seed, val_fraction, test_fraction, match_arcsec, group_column
):
    """split='grouped': every row of every source split, split anew (grouped and stratified)."""
    full = datasets.concatenate_datasets(list(data.values())) if len(data) != 1 else next(iter(data.values()))
    pin = plan.get("pin_column")
    res = _split_one(full, seed, val_fraction, test_fraction, match_arcsec, group_column, plan["name"], pin)
    parts = {name: full.select(res.indices[name]) for name in SPLIT_NAMES}
    rule = SPLIT_RULE.format(arcsec=match_arcsec)
    if pin:
        rule += f"; a group with a non-empty {pin!r} goes to that split"
    return parts, dict(res.info, rule=rule)


def _build(
    plan, work: Path, key: str, seed, val_fraction, test_fraction, split, match_arcsec, group_column=None
) -> datasets.DatasetDict:
    """Read the source and split it; the split rule and counts go into every split's description."""
    data, dataset_name = read_all_rows(plan, work, key)
    if isinstance(data, datasets.Dataset):
        data = datasets.DatasetDict({"train": data})
    splitter = {"hub": _hub_parts, "grouped": _grouped_parts}.get(split)
    if splitter is None:
        raise ValueError(
            f"split={split!r}: use 'grouped' (leak-free, stratified) or 'hub' (the source's own)."
        )
    parts, split_info_ = splitter(data, plan, seed, val_fraction, test_fraction, match_arcsec, group_column)
    if group_column:
        split_info_["rule"] += f"; rows with the same {group_column!r} grouped too"
    empty = [k for k, v in parts.items() if len(v) == 0]
    if empty:
        raise GalaxyDataError(
            f"{plan['name']}: split(s) {empty} would be empty (val_fraction={val_fraction}, "
            f"test_fraction={test_fraction}); use more images or larger fractions."
        )
    names = parts["train"].features["label"].names
    info: dict[str, Any] = {
        "source": plan["name"],
        "dataset_name": dataset_name,
        "match_arcsec": match_arcsec,
        **split_info_,
        "counts": {k: len(v) for k, v in parts.items()},
        "class_counts": {k: np.bincount(v["label"], minlength=len(names)).tolist() for k, v in parts.items()},
        "class_names": list(names),
    }
    description = json.dumps(info, sort_keys=True)
    out = {}
    for k, v in parts.items():
        v = v.remove_columns("_hash")
        v.info.description = description
        out[k] = v
    return datasets.DatasetDict(out)


def load_galaxy_dataset(
    source: str | os.PathLike,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split: str = "grouped",
    path: str | os.PathLike | None = None,
    dataset_name: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    match_arcsec: float = 10.0,
    group_column: str | None = None,
    **source_kwargs: Any,
) -> datasets.DatasetDict:
    """Load a galaxy dataset as a DatasetDict with ``train``, ``validation`` and ``test`` splits.

    Args:
        source: ``"galaxy10_decals"``, ``"galaxy10_sdss"`` (official astroNN HDF5: ``path``, env var
            ``GALAXY10_DECALS_PATH``/``GALAXY10_SDSS_PATH``, or download; with ``split="hub"`` the
            Hugging Face copy), ``"gz1_sdss"`` (real SDSS sample; ``path``, ``GZ1_SDSS_PATH`` or
            ``$GALAXY_ATTN_DATA_DIR/gz1_sdss``), ``"gz2_kaggle"`` / ``"gz2_kaggle_spiral"`` (Kaggle Galaxy
            Zoo 2 vote fractions / spiral labels built by ``scripts/build_gz2_kaggle.py``; ``path`` or
            ``$GZ2_KAGGLE_DIR``; grouped by their ``group`` column, gz1_sdss twins pinned to their split),
            ``"synthetic"`` (kwargs ``n_per_class``, ``image_size``, ``synthetic_seed``), or a path to an
            astroNN-layout ``.h5``, a ``.parquet`` file, a folder of parquet files or an image folder.
        seed: split seed. val_fraction, test_fraction: per-class fractions of validation and test.
        split: ``"grouped"`` (duplicates and images within ``match_arcsec`` kept together, stratified) or
            ``"hub"`` (the source's own test split; validation carved from its train split).
        dataset_name: names the classes of a path source (``"galaxy10_decals"``, ``"galaxy10_sdss"``,
            ``"gz1_sdss"``) when the file does not say.
        cache_dir: where built datasets are kept (default ``$GALAXY_ATTN_CACHE`` or the HF datasets cache).
        group_column: a column whose equal values must stay on one side of the split (an object id, an
            IAU name); when it holds IAU designations (``J000411.19+020924.0``) and the source has no
            ra/dec, the positions they encode join the ``match_arcsec`` sky grouping too.

    Features: ``image`` (Image), ``label`` (ClassLabel, official names), ``ra``/``dec`` when known, plus
    source extras (``mask`` for synthetic, ``sdss_objid`` for gz1_sdss). Split rule and counts:
    :func:`split_info`.
    """
    _check_split_args(split, val_fraction, test_fraction)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    plan = _resolve(source, path, dataset_name, split, cache, dict(source_kwargs))
    group_column = group_column or plan.get("group_column")
    ident = {
        "version": _CACHE_VERSION,
        "kind": plan["kind"],
        "name": plan["name"],
        "files": _file_identity(plan["files"]),
        "repo": plan.get("repo"),
        "dataset_name": plan["dataset_name"],
        "kw": plan["kw"],
        "split": [split, seed, val_fraction, test_fraction, match_arcsec],
    }
    if group_column is not None:  # only then: the keys of earlier builds stay valid
        ident["group_column"] = group_column
    if plan.get("pin_column"):
        ident["pin_column"] = plan["pin_column"]
    key = sha256_json(ident)[:24]
    final = cache / f"{plan['kind']}-{key}"
    if not (final / "dataset_dict.json").is_file():
        _build_into(final, key, plan, seed, val_fraction, test_fraction, split, match_arcsec, group_column)
    return datasets.load_from_disk(str(final))


def _check_split_args(split: str, val_fraction: float, test_fraction: float) -> None:
    if split not in ("grouped", "hub"):
        raise ValueError(
            f"split={split!r}: use 'grouped' (leak-free, stratified) or 'hub' (the source's own)."
        )
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction={val_fraction}, test_fraction={test_fraction}: each in [0, 1), sum < 1."
        )


def _build_into(final: Path, key: str, plan: dict, *split_args: Any) -> None:
    """Build the dataset in a temporary folder beside ``final`` and move it into place (a concurrent build
    that got there first wins)."""
    cache = final.parent
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=cache))
    try:
        dsdict = _build(plan, work, key, *split_args)
        dsdict.save_to_disk(str(work / "out"))
        try:
            os.replace(work / "out", final)
        except OSError:
            if not (final / "dataset_dict.json").is_file():  # another process won the race if it exists
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
