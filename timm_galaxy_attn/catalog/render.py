"""``galaxy-attn render CATALOGUE --rows 0,5,10-20 --out DIR``: heatmap PNGs from stored attention maps.

The maps come from the catalogue's sidecar (``<catalogue>.maps.h5``, written by ``predict --maps``;
:mod:`.maps`), the pictures from the inputs named in the ``source`` column, decoded again and cut
to the part of the image the model saw (as ``predict --heatmaps``). Each PNG is written by
:func:`.heatmaps.write_heatmap`, titled and named as ``predict --heatmaps`` titles and names it
(``<index>_<source stem>[_row<r>|_hdu<h>].png``; :mod:`.heatmaps`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .heatmaps import display_crop, heatmap_name, heatmap_title, write_heatmap
from .maps import MapsError, maps_path, read_maps
from .parts import read_meta

__all__ = ["parse_rows", "render"]


def parse_rows(text: str) -> list[int] | None:
    """``"0,5,10-20"`` -> [0, 5, 10, ..., 20] (in the order given, without repeats); ``"all"`` -> None."""
    if text.strip().lower() == "all":
        return None
    rows: list[int] = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        lo, sep, hi = item.partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ValueError(f"--rows {text!r}: {item!r} is not a row or a range like 10-20") from None
        if a < 0 or b < a:
            raise ValueError(f"--rows {text!r}: {item!r} must be a row >= 0 or a range lo-hi with lo <= hi")
        rows.extend(r for r in range(a, b + 1) if r not in rows)
    if not rows:
        raise ValueError(f"--rows {text!r} names no rows; e.g. --rows 0,5,10-20 or --rows all")
    return rows


def _read_catalog(path: Path):
    """(rows as a dict of columns, run metadata) of a catalogue written by galaxy-attn predict."""
    if not path.is_file():
        raise FileNotFoundError(f"Catalogue {path} does not exist.")
    meta = read_meta(path)
    if meta is None:
        raise MapsError(f"{path} is not a galaxy-attn catalogue (no run metadata).")
    if path.suffix.lower() == ".csv":
        import pyarrow.csv as pcsv

        table = pcsv.read_csv(path)
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    return table.to_pydict(), meta


def _source_image(row: dict[str, Any], meta: dict[str, Any]) -> np.ndarray:
    """The full-resolution RGB pixels of a catalogue row's input, decoded as predict decoded them."""
    from .decode import decode_image
    from .fits import FitsOptions, decode_bands, decode_fits_hdu
    from .inputs import collect_inputs

    fits = FitsOptions(**{**meta["fits"], "planes": tuple(meta["fits"]["planes"])})
    source = row["source"]
    if row.get("row") is not None:
        import h5py

        with h5py.File(source, "r") as f:
            return np.asarray(f["images"][int(row["row"])])
    if row.get("hdu") is not None:
        return decode_fits_hdu(source, int(row["hdu"]), fits)
    if ";" in source:
        unit = collect_inputs(source.split(";"), fits_bands=fits.bands).units[0]
        return decode_bands(unit.paths, fits)
    return decode_image(source)


def _title(cols: dict[str, list], i: int) -> str:
    """The heatmap title of row ``i`` from its ``pred_label`` and ``prob_<class>`` columns."""
    return heatmap_title(cols["pred_label"][i], max(cols[c][i] for c in cols if c.startswith("prob_")))


def _check_rows(cols: dict[str, list], rows: Sequence[int], catalog: Path) -> None:
    """Every row in ``rows`` exists, has maps and still has its input files."""
    n = len(cols["index"])
    for r in rows:
        if not 0 <= r < n:
            raise MapsError(f"row {r} is not in {catalog} (rows 0..{n - 1})")
        if cols["error"][r] is not None:
            raise MapsError(f"row {r} has no attention maps: its input failed ({cols['error'][r]})")
        missing = [p for p in cols["source"][r].split(";") if not Path(p).is_file()]
        if missing:
            raise MapsError(f"row {r}: its input {missing[0]} is gone; render needs the inputs.")


def render(
    catalog: str | os.PathLike,
    rows: Sequence[int] | None,
    out_dir: str | os.PathLike,
    *,
    maps: str | os.PathLike | None = None,
) -> list[Path]:
    """Write the heatmap PNG of each catalogue row in ``rows`` (None: every row with maps) to ``out_dir``.

    Raises :class:`.maps.MapsError` (or FileNotFoundError) with the reason when the catalogue, its
    maps or a row's input cannot be used; every row is checked before the first PNG is written.

    Args:
        catalog: The catalog written by ``galaxy-attn predict --maps``.
        rows: Catalog rows to draw; None: every row with maps.
        out_dir: Folder of the PNGs.
        maps: The maps sidecar, if not beside the catalog.
    """
    catalog = Path(catalog)
    cols, meta = _read_catalog(catalog)
    sidecar = Path(maps) if maps is not None else maps_path(catalog)
    if rows is None:
        rows = [i for i in range(len(cols["index"])) if cols["error"][i] is None]
    _check_rows(cols, rows, catalog)
    attrs, stored = read_maps(sidecar, rows)
    if attrs.get("run_fingerprint") != meta.get("run_fingerprint"):
        raise MapsError(f"{sidecar} belongs to another run than {catalog}; pass the catalogue's own maps.")
    crop_pct = float(meta["data_config"]["crop_pct"])
    written = []
    for r, row_maps in zip(rows, stored, strict=True):
        row = {k: cols[k][r] if k in cols else None for k in ("index", "source", "row", "hdu")}
        try:
            display = display_crop(_source_image(row, meta), crop_pct)
        except ValueError as exc:  # InputError: the input changed since the run
            raise MapsError(f"row {r}: cannot decode its input {row['source']}: {exc}") from None
        written.append(write_heatmap(display, row_maps, _title(cols, r), Path(out_dir) / heatmap_name(row)))
    return written
