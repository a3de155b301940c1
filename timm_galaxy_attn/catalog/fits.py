"""FITS data to RGB composites: 3-band cubes and single-band files, through a Lupton stretch, north up.

A 3-D HDU is a cube of 3 bands (3, H, W) whose planes run from blue to red (``FitsOptions.planes`` picks
red, green, blue); band groups are three aligned 2-D files, blue to red. FITS rows run south to north, so
the composite is flipped vertically (as survey JPEG cutouts are). Non-finite pixels are errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from .decode import InputError

__all__ = ["FitsOptions", "decode_bands", "decode_fits_hdu"]


@dataclasses.dataclass(frozen=True)
class FitsOptions:
    """How FITS data become RGB: cube planes (red, green, blue), Lupton stretch/Q/minimum, band choice."""

    planes: tuple[int, int, int] = (2, 1, 0)
    stretch: float = 0.5
    q: float = 8.0
    minimum: float = 0.0
    bands: str | None = None


def _finite(data: np.ndarray, what: str) -> np.ndarray:
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise InputError(
            f"{what} has {bad} non-finite (NaN/inf) pixels; fill them (e.g. with 0 or the sky level) first"
        )
    return data.astype(np.float64, copy=False)


def _lupton(r: np.ndarray, g: np.ndarray, b: np.ndarray, opts: FitsOptions) -> np.ndarray:
    from astropy.visualization import make_lupton_rgb

    rgb = make_lupton_rgb(r, g, b, minimum=opts.minimum, stretch=opts.stretch, Q=opts.q)
    return np.ascontiguousarray(rgb[::-1])  # FITS rows run south to north: put north up


def decode_fits_hdu(path: str, hdu: int, opts: FitsOptions) -> np.ndarray:
    """The (H, W, 3) uint8 composite of the 3-band cube in HDU ``hdu`` of ``path``."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            data = hdul[hdu].data
    except Exception as exc:
        raise InputError(f"unreadable FITS data: {exc}") from None
    shape = None if data is None else data.shape
    if data is None or data.ndim != 3 or data.shape[0] != 3:
        raise InputError(
            f"FITS HDU {hdu} has shape {shape}; expected a 3-band cube (3, H, W), or single-band 2-D files "
            "named NAME_g.fits, NAME_r.fits, NAME_z.fits (grouped into one galaxy)"
        )
    data = _finite(np.asarray(data), f"FITS HDU {hdu}")
    r, g, b = (data[i] for i in opts.planes)
    return _lupton(r, g, b, opts)


def _band_plane(path: str) -> np.ndarray:
    """The 2-D data of a single-band FITS file (its first image HDU with data)."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            hdu = next((h for h in hdul if h.is_image and h.data is not None), None)
            data = None if hdu is None else np.asarray(hdu.data)
    except Exception as exc:
        raise InputError(f"unreadable FITS file {path}: {exc}") from None
    if data is None or data.ndim != 2:
        raise InputError(
            f"{path} has data of shape {None if data is None else data.shape}; a band file must be 2-D"
        )
    return _finite(data, path)


def decode_bands(paths: Sequence[str], opts: FitsOptions) -> np.ndarray:
    """The (H, W, 3) uint8 composite of three single-band files, given blue to red."""
    planes = [_band_plane(path) for path in paths]
    if len({p.shape for p in planes}) != 1:
        raise InputError(
            f"FITS bands have different shapes {[p.shape for p in planes]}; they must be aligned"
        )
    blue, green, red = planes
    return _lupton(red, green, blue, opts)
