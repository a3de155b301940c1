"""The attention-map sidecar of a catalogue (``galaxy-attn predict --maps``): ``<out>.maps.h5``.

Row ``i`` of every dataset belongs to row ``i`` of the catalog (whose ``index`` is in ``index``: the same
``i`` unless the catalog is a ``--shard``); rows whose input failed have
``valid`` false and zero maps. Datasets: ``index`` (N,) int64, ``valid`` (N,) bool, and for each of the
three attention maps (shallow to deep) ``attn1`` .. ``attn3`` (N, H_k, W_k) uint8 with ``attn1_range``
.. ``attn3_range`` (N, 2) float32, the map's (min, max): the map is ``min + q / 255 * (max - min)``
(uint8 steps of 1/255 of the map's own range). Attributes: ``model``, ``weights_sha256``,
``run_fingerprint`` (the catalog's), ``catalogue`` (its file name).

Like the rows, each batch's maps are committed to ``<out>.parts/`` (an ``.npz`` per batch, named by
:func:`.parts.part_path`, written to a temporary name and renamed, before the batch's parquet part), so a
resumed run redoes exactly the batches whose rows are missing; the parts are merged, in order, into the
sidecar through a temporary file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write
from .parts import list_parts

__all__ = ["MAPS_SUFFIX", "MapsError", "maps_path", "merge_maps", "read_maps", "write_maps_part"]

MAPS_SUFFIX = ".maps.h5"
NUM_MAPS = 3


class MapsError(ValueError):
    """A maps sidecar that is missing, does not belong to its catalogue, or lacks the rows asked for."""


def maps_path(out: str | os.PathLike) -> Path:
    """The sidecar of a catalog: ``<out>.maps.h5``.

    Args:
        out: The catalog's path.
    """
    out = Path(out)
    return out.with_name(out.name + MAPS_SUFFIX)


def quantise(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, H, W) float maps -> uint8 maps scaled to each map's range, and the (B, 2) float32 ranges."""
    m = np.asarray(m, dtype=np.float32)
    if m.shape[0] == 0 or m.size == 0:
        return np.zeros(m.shape, dtype=np.uint8), np.full((m.shape[0], 2), np.nan, dtype=np.float32)
    lo = m.min(axis=(1, 2), keepdims=True)
    hi = m.max(axis=(1, 2), keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.rint((m - lo) / span * 255.0).clip(0, 255).astype(np.uint8)
    return q, np.concatenate([lo, hi], axis=1).reshape(-1, 2)


def write_maps_part(path: Path, indices: Sequence[int], valid: np.ndarray, maps: Sequence[Any]) -> None:
    """Commit one batch: ``maps`` are the three (n_valid, H, W) tensors of the rows with ``valid``."""
    n = len(indices)
    arrays: dict[str, np.ndarray] = {
        "index": np.asarray(indices, dtype=np.int64),
        "valid": np.asarray(valid, dtype=bool),
    }
    for k, m in enumerate(maps or [np.zeros((0, 0, 0), np.float32)] * NUM_MAPS, start=1):
        m = m.float().numpy() if hasattr(m, "numpy") else np.asarray(m)
        q, ranges = quantise(m)
        full_q = np.zeros((n, *q.shape[1:]), dtype=np.uint8)
        full_r = np.full((n, 2), np.nan, dtype=np.float32)
        full_q[arrays["valid"]], full_r[arrays["valid"]] = q, ranges
        arrays[f"attn{k}"], arrays[f"attn{k}_range"] = full_q, full_r

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def _shapes(parts: list[Path]) -> list[tuple[int, int]]:
    """The (H, W) of each map, from the first part with a valid row ((0, 0) if no row is valid)."""
    for path in parts:
        with np.load(path, allow_pickle=False) as z:
            if z["valid"].any():
                return [tuple(z[f"attn{k}"].shape[1:]) for k in range(1, NUM_MAPS + 1)]
    return [(0, 0)] * NUM_MAPS


def merge_maps(ranges: list[tuple[int, int]], parts_dir: Path, out: Path, attrs: dict) -> Path:
    """Stream the maps parts of ``ranges`` (the catalog's batches, contiguous and in order) into the
    sidecar ``out``, atomically; the first range's rows become the sidecar's row 0."""
    import h5py

    found = {(start, end): path for start, end, path in list_parts(parts_dir, "maps")}
    missing = [r for r in ranges if r not in found]
    if missing:
        raise RuntimeError(
            f"Attention maps of rows {missing[0][0]}..{missing[0][1] - 1} are missing from {parts_dir}; "
            "rerun the same command."
        )
    paths = [found[r] for r in ranges]
    shapes = _shapes(paths)
    offset = ranges[0][0] if ranges else 0
    n = ranges[-1][1] - offset if ranges else 0

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({k: str(v) for k, v in attrs.items()})
            f.create_dataset("index", (n,), dtype=np.int64)
            f.create_dataset("valid", (n,), dtype=bool)
            for k, (h, w) in enumerate(shapes, start=1):
                chunks = (min(n, 256), h, w) if n and h and w else None  # HDF5 chunks cannot be empty
                f.create_dataset(f"attn{k}", (n, h, w), dtype=np.uint8, chunks=chunks)
                f.create_dataset(f"attn{k}_range", (n, 2), dtype=np.float32)
            for (start, end), path in zip(ranges, paths, strict=True):
                start, end = start - offset, end - offset
                with np.load(path, allow_pickle=False) as z:
                    f["index"][start:end], f["valid"][start:end] = z["index"], z["valid"]
                    for k, (h, w) in enumerate(shapes, start=1):
                        q = z[f"attn{k}"]
                        if q.shape[1:] == (h, w):
                            f[f"attn{k}"][start:end] = q
                        f[f"attn{k}_range"][start:end] = z[f"attn{k}_range"]

    return atomic_write(out, write)


def read_maps(path: str | os.PathLike, rows: Sequence[int]) -> tuple[dict[str, str], list[list[np.ndarray]]]:
    """The sidecar's attributes and, for each catalog row in ``rows``, its three float maps.

    Args:
        path: The maps sidecar (:func:`maps_path`).
        rows: Catalog rows to read.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise MapsError(f"No attention maps at {path}: run galaxy-attn predict with --maps first.")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise MapsError(f"{path} is not a readable maps sidecar (HDF5): {exc}") from None
    with f:
        attrs = {k: str(v) for k, v in f.attrs.items()}
        n = f["index"].shape[0]
        out = []
        for r in rows:
            if not 0 <= r < n:
                raise MapsError(f"row {r} is not in {path} (rows 0..{n - 1})")
            if not f["valid"][r]:
                raise MapsError(f"row {r} has no attention maps (its input failed; see its error column)")
            maps = []
            for k in range(1, NUM_MAPS + 1):
                lo, hi = f[f"attn{k}_range"][r]
                maps.append(lo + f[f"attn{k}"][r].astype(np.float64) / 255.0 * (hi - lo))
            out.append(maps)
    return attrs, out
