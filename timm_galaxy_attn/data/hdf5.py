"""Lazy reader of astroNN-layout HDF5 files: ``images`` (N, H, W, 3) uint8, ``ans`` (N,), ``ra``/``dec``.

The images are read ``chunk`` rows at a time (h5py slicing), so a 2.7 GB Galaxy10 DECaLS file never
sits in memory; only ``ans``/``ra``/``dec`` (a few hundred kB) are read whole, to check them first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..labels import DATASET_CLASSES
from .splits import pixel_hash

__all__ = ["GalaxyDataError", "Hdf5Layout", "inspect_hdf5", "iter_hdf5_rows"]


class GalaxyDataError(ValueError):
    """Bad input data: the message names the file, key or row and the fix."""


@dataclass
class Hdf5Layout:
    """What :func:`inspect_hdf5` found in a file."""

    path: Path
    n: int
    image_shape: tuple[int, int, int]
    dataset_name: str
    has_radec: bool


def _open(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as err:
        raise GalaxyDataError(
            f"{path}: cannot be opened as HDF5 ({err}). The file is truncated or not an HDF5 file: "
            f"download it again (compare its size/SHA-256 with the official file)."
        ) from err


def _infer_name(path: Path, f, image_shape: tuple[int, ...], dataset_name: str | None) -> str:
    if dataset_name is not None:
        if dataset_name not in ("galaxy10_decals", "galaxy10_sdss"):
            raise ValueError(
                f"dataset_name={dataset_name!r} for an HDF5 file must be 'galaxy10_decals' or 'galaxy10_sdss'"
            )
        return dataset_name
    if any(k in f for k in ("ra", "dec", "pxscale", "redshift")) or image_shape[0] == 256:
        return "galaxy10_decals"
    if image_shape[0] == 69:
        return "galaxy10_sdss"
    raise GalaxyDataError(
        f"{path}: cannot tell whether this is Galaxy10 DECaLS or SDSS (no ra/dec/redshift/pxscale keys and "
        f"images {image_shape[0]}x{image_shape[1]}, neither 256 nor 69 px). "
        f"Pass dataset_name='galaxy10_decals' or 'galaxy10_sdss'."
    )


def inspect_hdf5(path: str | os.PathLike, dataset_name: str | None = None) -> Hdf5Layout:
    """Check the layout of an astroNN HDF5 file (keys, shapes, dtype, label range) without reading images."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such HDF5 file. Check the path.")
    with _open(path) as f:
        missing = [k for k in ("images", "ans") if k not in f]
        if missing:
            raise GalaxyDataError(
                f"{path}: missing key(s) {missing}; an astroNN Galaxy10 file has 'images' (N, H, W, 3) uint8 "
                f"and 'ans' (N,) labels (found keys {sorted(f.keys())})."
            )
        images, ans = f["images"], f["ans"]
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise GalaxyDataError(
                f"{path}: key 'images' has shape {images.shape} dtype {images.dtype}; expected (N, H, W, 3) "
                f"uint8 RGB images."
            )
        n = images.shape[0]
        if ans.shape != (n,):
            raise GalaxyDataError(
                f"{path}: key 'ans' has shape {ans.shape}; expected ({n},), one label per image."
            )
        name = _infer_name(path, f, images.shape[1:], dataset_name)
        n_cls = len(DATASET_CLASSES[name])
        labels = _read_all(path, f, "ans")
        if not np.issubdtype(labels.dtype, np.integer) and not np.all(np.mod(labels, 1) == 0):
            raise GalaxyDataError(f"{path}: key 'ans' holds non-integer labels (dtype {labels.dtype}).")
        bad = np.flatnonzero((labels < 0) | (labels >= n_cls))
        if len(bad):
            raise GalaxyDataError(
                f"{path}: key 'ans' row {bad[0]} has label {labels[bad[0]]}, outside 0..{n_cls - 1} "
                f"of {name} ({len(bad)} bad rows in all). Fix the labels or pass the right dataset_name."
            )
        has_radec = "ra" in f and "dec" in f
        if has_radec:
            for k in ("ra", "dec"):
                if f[k].shape != (n,):
                    raise GalaxyDataError(f"{path}: key {k!r} has shape {f[k].shape}; expected ({n},).")
        return Hdf5Layout(path, n, tuple(images.shape[1:]), name, has_radec)


def _read_all(path: Path, f, key: str) -> np.ndarray:
    try:
        return np.asarray(f[key][()])
    except (OSError, ValueError) as err:
        raise GalaxyDataError(f"{path}: cannot read key {key!r} ({err}); the file is damaged.") from err


def iter_hdf5_rows(path: str | os.PathLike, has_radec: bool, chunk: int = 64) -> Iterator[dict]:
    """Yield rows ``{image, label, [ra, dec], _hash}`` reading ``chunk`` images at a time."""
    path = Path(path)
    with _open(path) as f:
        labels = _read_all(path, f, "ans").astype(np.int64)
        if has_radec:
            ra = _read_all(path, f, "ra").astype(np.float64)
            dec = _read_all(path, f, "dec").astype(np.float64)
        images = f["images"]
        for start in range(0, images.shape[0], chunk):
            stop = min(start + chunk, images.shape[0])
            try:
                block = images[start:stop]
            except (OSError, ValueError) as err:
                raise GalaxyDataError(
                    f"{path}: cannot read key 'images' rows {start}-{stop - 1} ({err}); the file is damaged "
                    f"or truncated: download it again."
                ) from err
            for i in range(stop - start):
                row = {"image": block[i], "label": int(labels[start + i]), "_hash": pixel_hash(block[i])}
                if has_radec:
                    row["ra"] = float(ra[start + i])
                    row["dec"] = float(dec[start + i])
                yield row
