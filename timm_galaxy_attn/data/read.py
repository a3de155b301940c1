"""Reading a source into ``datasets`` Arrow tables, every image decoded once and hashed on its pixels.

``Dataset.from_generator`` for HDF5 and synthetic images, ``load_dataset("parquet" | "imagefolder" | Hub
repo)`` for the rest; labels are checked against the source's class names, and every table gets a ``_hash``
column (``splits.pixel_hash``) that the split groups identical images by.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np

from ..labels import DATASET_CLASSES
from .hdf5 import GalaxyDataError, inspect_hdf5, iter_hdf5_rows
from .splits import pixel_hash

__all__ = ["read_all_rows"]


def _features(names: tuple[str, ...], radec: bool, extra: dict | None = None) -> datasets.Features:
    f = {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(names))}
    if radec:
        f["ra"] = datasets.Value("float64")
        f["dec"] = datasets.Value("float64")
    f.update(extra or {})
    f["_hash"] = datasets.Value("binary")
    return datasets.Features(f)


def _from_generator(
    gen, gen_kwargs: dict, features: datasets.Features, work: Path, key: str
) -> datasets.Dataset:
    try:
        return datasets.Dataset.from_generator(
            gen, features=features, gen_kwargs=gen_kwargs, cache_dir=str(work / "gen"), fingerprint=key
        )
    except datasets.exceptions.DatasetGenerationError as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, GalaxyDataError | OSError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from err
        raise


def _synthetic_rows(n_per_class: int, image_size: int, synthetic_seed: int):
    from .synthetic import make_synthetic_galaxies

    syn = make_synthetic_galaxies(n_per_class, image_size, seed=synthetic_seed)
    for img, label, mask in zip(syn.images, syn.labels, syn.masks, strict=True):
        yield {
            "image": img,
            "label": int(label),
            "mask": mask.astype(np.uint8) * 255,
            "_hash": pixel_hash(img),
        }


def _hash_images(ds: datasets.Dataset, origin: str) -> list[bytes]:
    """Decode every image (checking it is readable) and hash its pixels; errors name the row."""
    from PIL import Image
    from tqdm.auto import tqdm

    raw = ds.cast_column("image", datasets.Image(decode=False))
    hashes = []
    for i, item in enumerate(tqdm(raw["image"], desc=f"checking images of {origin}", leave=False)):
        try:
            if item.get("bytes") is not None:
                import io

                im = Image.open(io.BytesIO(item["bytes"]))
            else:
                im = Image.open(item["path"])
            hashes.append(pixel_hash(np.asarray(im.convert("RGB"))))
        except Exception as err:  # noqa: BLE001 - any decoder failure is a bad image
            where = f" ({item.get('path')})" if item.get("path") else ""
            raise GalaxyDataError(
                f"{origin}: row {i}{where}: unreadable image ({type(err).__name__}: {err}). "
                f"Remove or replace that image."
            ) from err
    return hashes


def _check_labels(ds: datasets.Dataset, names: tuple[str, ...] | None, origin: str) -> datasets.Dataset:
    if "image" not in ds.column_names or "label" not in ds.column_names:
        raise GalaxyDataError(
            f"{origin}: needs columns 'image' and 'label' (found {ds.column_names}); image folders need one "
            f"sub-folder per class."
        )
    feat = ds.features["label"]
    if isinstance(feat, datasets.ClassLabel):
        if names is not None and tuple(feat.names) != tuple(names):
            raise GalaxyDataError(
                f"{origin}: class names {feat.names} differ from the expected {list(names)}."
            )
        names = tuple(feat.names)
    elif names is None:
        raise GalaxyDataError(
            f"{origin}: column 'label' holds plain values ({feat}), not class names; pass "
            f"dataset_name='galaxy10_decals'|'galaxy10_sdss'|'gz1_sdss' to name the classes."
        )
    labels = np.asarray(ds["label"])
    if labels.dtype.kind not in "iu":
        raise GalaxyDataError(f"{origin}: column 'label' must hold integers, got {labels.dtype}.")
    bad = np.flatnonzero((labels < 0) | (labels >= len(names)))
    if len(bad):
        raise GalaxyDataError(
            f"{origin}: row {bad[0]} has label {labels[bad[0]]}, outside 0..{len(names) - 1} "
            f"({len(bad)} bad rows). Fix the labels or pass the right dataset_name."
        )
    if not isinstance(feat, datasets.ClassLabel):
        ds = ds.cast_column("label", datasets.ClassLabel(names=list(names)))
    return ds


def read_all_rows(
    plan: dict, work: Path, key: str
) -> tuple[datasets.Dataset | datasets.DatasetDict, str | None]:
    """Read the source into Arrow (with a ``_hash`` column); returns the data and its dataset name."""
    kind = plan["kind"]
    if kind == "synthetic":
        names = DATASET_CLASSES["galaxy10_decals"]
        feats = _features(names, False, {"mask": datasets.Image()})
        ds = _from_generator(_synthetic_rows, plan["kw"], feats, work, key)
        return ds, "galaxy10_decals"
    if kind == "hdf5":
        layout = inspect_hdf5(plan["files"][0], plan["dataset_name"])
        feats = _features(DATASET_CLASSES[layout.dataset_name], layout.has_radec)
        gk = {"path": str(layout.path), "has_radec": layout.has_radec}
        return _from_generator(iter_hdf5_rows, gk, feats, work, key), layout.dataset_name
    if kind == "hub":
        dd = datasets.load_dataset(plan["repo"], cache_dir=str(work / "gen"))
    elif kind == "parquet":
        if len(plan["files"]) > 1 or plan.get("root") is not None and Path(plan["root"]).is_dir():
            dd = datasets.load_dataset("parquet", data_dir=str(plan["root"]), cache_dir=str(work / "gen"))
        else:
            files = [str(f) for f in plan["files"]]
            dd = datasets.load_dataset("parquet", data_files={"train": files}, cache_dir=str(work / "gen"))
    else:
        dd = datasets.load_dataset("imagefolder", data_dir=str(plan["root"]), cache_dir=str(work / "gen"))
    names = DATASET_CLASSES.get(plan["dataset_name"]) if plan["dataset_name"] else None
    out = {}
    for split_name, ds in dd.items():
        origin = f"{plan['name']} [{split_name}]"
        ds = _check_labels(ds, names, origin)
        ds = ds.add_column("_hash", _hash_images(ds, origin))
        out[split_name] = ds
    return datasets.DatasetDict(out), plan["dataset_name"]
