"""Listing the inputs of a run cheaply (names, HDF5 lengths, FITS headers) into items with global indices.

Folders are searched recursively for :data:`IMAGE_SUFFIXES`, :data:`HDF5_SUFFIXES` and
:data:`FITS_SUFFIXES`, sorted by their path relative to the folder, hidden files skipped. Single-band FITS
files named ``<name>_<band>.fits`` in one folder form one galaxy (a band group).
"""

from __future__ import annotations

import dataclasses
import os
import re
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._io import sha256_json

__all__ = [
    "BANDS_BY_WAVELENGTH",
    "FITS_SUFFIXES",
    "HDF5_SUFFIXES",
    "IMAGE_SUFFIXES",
    "InputList",
    "Unit",
    "collect_inputs",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")  # the package's one list
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
BANDS_BY_WAVELENGTH = "ugrizy"
_BAND_FILE = re.compile(r"^(?P<name>.+)[_.-](?P<band>[ugrizy])\.(?:fits|fit|fts)(?:\.gz)?$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Unit:
    """A run of consecutive items from one source: one image, an HDF5 file, a FITS file or band group."""

    kind: str  # "image" | "hdf5" | "fits" | "bands" | "invalid"
    source: str
    count: int = 1
    hdus: tuple[int, ...] = ()  # fits: the HDU of each item
    paths: tuple[str, ...] = ()  # bands: the files, blue to red
    error: str | None = None  # invalid: why the source gives one error row


class InputList:
    """The items of a run: ``len()`` items, each addressed by a global index."""

    def __init__(self, units: list[Unit]) -> None:
        self.units = units
        self.starts = np.cumsum([0] + [u.count for u in units]).tolist()

    def __len__(self) -> int:
        return self.starts[-1]

    def locate(self, index: int) -> tuple[Unit, int]:
        """Return the unit holding item ``index`` and the item's position in it."""
        u = bisect_right(self.starts, index) - 1
        return self.units[u], index - self.starts[u]

    def digest(self) -> str:
        return sha256_json([dataclasses.astuple(u) for u in self.units])


def _has_suffix(path: Path, suffixes: Sequence[str]) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in suffixes)


def _listed(path: Path, folder: Path) -> bool:
    """Whether a folder search keeps ``path``: a supported file, not hidden below ``folder``."""
    return (
        path.is_file()
        and _has_suffix(path, IMAGE_SUFFIXES + HDF5_SUFFIXES + FITS_SUFFIXES)
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def _expand(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = [p for p in path.rglob("*") if _listed(p, path)]
            files.extend(sorted(found, key=lambda p: p.relative_to(path).as_posix()))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(
                f"Input {str(path)!r} does not exist (expected an image, folder, .h5 or FITS file)."
            )
    return files


def _hdf5_unit(path: Path) -> Unit:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "images" not in f:
                keys = ", ".join(sorted(f.keys())) or "none"
                return Unit(
                    "invalid",
                    str(path),
                    error=f"HDF5 file has no 'images' dataset (keys: {keys}); "
                    "the astroNN layout is images (N, H, W, 3) uint8 with optional ans, ra, dec",
                )
            images = f["images"]
            if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
                return Unit(
                    "invalid",
                    str(path),
                    error=f"HDF5 'images' has shape {images.shape} and dtype "
                    f"{images.dtype}; the astroNN layout is (N, H, W, 3) uint8",
                )
            return Unit("hdf5", str(path), count=int(images.shape[0]))
    except OSError as exc:
        return Unit("invalid", str(path), error=f"unreadable HDF5 file: {exc}")


def _fits_unit(path: Path) -> Unit:
    from astropy.io import fits

    try:
        with fits.open(path, memmap=True) as hdul:
            hdus = tuple(i for i, h in enumerate(hdul) if h.is_image and h.header.get("NAXIS", 0) >= 2)
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError on broken files
        return Unit("invalid", str(path), error=f"unreadable FITS file: {exc}")
    if not hdus:
        return Unit("invalid", str(path), error="FITS file has no image HDU with 2 or more axes")
    return Unit("fits", str(path), count=len(hdus), hdus=hdus)


def _band_unit(paths: list[Path], fits_bands: str | None) -> Unit:
    by_band = {_BAND_FILE.match(p.name)["band"].lower(): p for p in paths}
    bands = sorted(by_band, key=BANDS_BY_WAVELENGTH.index)
    if fits_bands:
        wanted = [b.lower() for b in fits_bands]
        bands = [b for b in sorted(wanted, key=BANDS_BY_WAVELENGTH.index) if b in by_band]
    chosen = [by_band[b] for b in bands]
    source = ";".join(str(by_band[b]) for b in sorted(by_band, key=BANDS_BY_WAVELENGTH.index))
    if len(paths) != len(by_band):
        return Unit("invalid", source, error="two files of the same band in one FITS band group")
    if len(bands) != 3:
        have = ",".join(sorted(by_band, key=BANDS_BY_WAVELENGTH.index))
        return Unit(
            "invalid",
            source,
            error=f"FITS band group has bands {have}; it needs exactly 3 "
            "(or choose three with --fits-bands, e.g. grz)",
        )
    return Unit("bands", source, paths=tuple(str(p) for p in chosen))


def _file_unit(path: Path) -> Unit:
    if _has_suffix(path, HDF5_SUFFIXES):
        return _hdf5_unit(path)
    if _has_suffix(path, FITS_SUFFIXES):
        return _fits_unit(path)
    return Unit("image", str(path))


def collect_inputs(inputs: Sequence[str | os.PathLike], *, fits_bands: str | None = None) -> InputList:
    """List the items of ``inputs`` (files and folders) in a deterministic order, without decoding pixels.

    Args:
        inputs: Image, HDF5 and FITS files, and folders of them (walked recursively).
        fits_bands: The three bands of a group of single-band FITS files (``NAME_g.fits``, ...) to read as
            RGB, e.g. ``"grz"``; None: the group must hold exactly three.
    """
    files = _expand(inputs)
    groups: dict[tuple[Path, str], list[Path]] = {}
    for p in files:
        m = _BAND_FILE.match(p.name)
        if m:
            groups.setdefault((p.parent, m["name"]), []).append(p)
    grouped = {p: key for key, members in groups.items() if len(members) > 1 for p in members}
    units: list[Unit] = []
    emitted: set[tuple[Path, str]] = set()
    for p in files:
        key = grouped.get(p)
        if key is None:
            units.append(_file_unit(p))
        elif key not in emitted:
            emitted.add(key)
            units.append(_band_unit(groups[key], fits_bands))
    return InputList(units)
