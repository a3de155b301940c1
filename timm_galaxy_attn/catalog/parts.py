"""Part files, resume and merge: how a catalog survives a killed run.

Every batch is committed atomically as ``<out>.parts/part-<start>-<end>.parquet`` (a temporary name, then
a rename; with ``--maps`` also ``maps-<start>-<end>.npz``), beside ``run.json`` (the run's metadata and
fingerprint). Each process of a launched run commits the parts of its own batches into the same folder. A
rerun with the same ``out`` and fingerprint, with any batch size or process count, skips the rows already
written; at the end the parts are merged, in input order, into ``out`` (parquet, with the metadata in its
schema, or CSV with a ``<out>.json`` sidecar) through a temporary file.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import TEMP_INFIX, atomic_write

__all__ = [
    "META_KEY",
    "check_complete",
    "list_parts",
    "merge_parts",
    "part_path",
    "parts_dir_of",
    "pending_ranges",
    "prepare_parts_dir",
    "read_meta",
    "sidecar",
    "write_part",
]

META_KEY = b"galaxy_attn"
_KINDS = {"rows": ("part", ".parquet"), "maps": ("maps", ".npz")}  # kind -> (file prefix, suffix)


def parts_dir_of(out: Path) -> Path:
    """The folder of the parts of catalog ``out``: ``<out>.parts``."""
    return out.with_name(out.name + ".parts")


def sidecar(out: Path) -> Path:
    """The metadata file of a CSV catalog: ``<out>.json``."""
    return out.with_name(out.name + ".json")


def part_path(parts_dir: Path, start: int, end: int, kind: str = "rows") -> Path:
    """The part of kind ``kind`` ("rows" or "maps") of the batch ``start .. end`` in ``parts_dir``."""
    prefix, suffix = _KINDS[kind]
    return parts_dir / f"{prefix}-{start:012d}-{end:012d}{suffix}"


def list_parts(parts_dir: Path, kind: str = "rows") -> list[tuple[int, int, Path]]:
    """The committed parts of kind ``kind`` ("rows" or "maps") as (start, end, path), in index order."""
    prefix, suffix = _KINDS[kind]
    pattern = re.compile(rf"^{prefix}-(\d{{12}})-(\d{{12}}){re.escape(suffix)}$")
    found = []
    if parts_dir.is_dir():
        for p in parts_dir.iterdir():
            m = pattern.match(p.name)
            if m:
                found.append((int(m[1]), int(m[2]), p))
    return sorted(found)


def write_part(parts_dir: Path, start: int, end: int, table) -> Path:
    """Commit the rows ``start .. end`` (a pyarrow table) as one part file, atomically."""
    import pyarrow.parquet as pq

    return atomic_write(part_path(parts_dir, start, end), lambda tmp: pq.write_table(table, tmp))


def pending_ranges(lo: int, hi: int, done: np.ndarray, batch_size: int) -> list[tuple[int, int]]:
    """The batches (ranges of at most ``batch_size``) covering the rows of ``lo .. hi`` not ``done``
    (``done``: one flag per row of ``lo .. hi``); each run of missing rows starts a new batch."""
    todo = np.concatenate([[False], ~np.asarray(done, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(todo.astype(np.int8)))  # starts and ends of the runs of missing rows
    ranges = []
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        ranges.extend((lo + s, lo + min(s + batch_size, b)) for s in range(a, b, batch_size))
    return ranges


def read_meta(path: Path) -> dict[str, Any] | None:
    """The run metadata of the catalogue ``path``, or None where it has none."""
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            meta = pq.read_schema(path).metadata or {}
            return json.loads(meta[META_KEY]) if META_KEY in meta else None
        meta_file = sidecar(path)
        return json.loads(meta_file.read_text()) if meta_file.is_file() else None
    except Exception:
        return None


def prepare_parts_dir(out: Path, meta: dict[str, Any], overwrite: bool, outputs: Sequence[Path] = ()) -> Path:
    """Make (or, with ``overwrite``, remake, deleting ``out``, its sidecar and ``outputs``) the parts folder
    of ``out`` for the run of ``meta``: a folder of another run is an error; temporary files a killed run
    left behind are deleted."""
    parts_dir = parts_dir_of(out)
    if overwrite:
        shutil.rmtree(parts_dir, ignore_errors=True)
        for p in (out, sidecar(out), *outputs):
            if p.exists():
                p.unlink()
    parts_dir.mkdir(parents=True, exist_ok=True)
    run_file = parts_dir / "run.json"
    if not run_file.is_file():
        atomic_write(run_file, lambda tmp: tmp.write_text(json.dumps(meta, indent=2)))
    elif json.loads(run_file.read_text()).get("run_fingerprint") != meta["run_fingerprint"]:
        raise FileExistsError(
            f"{parts_dir} holds parts of a different run (other inputs, model or options). "
            "Delete it, choose another --out, or pass --overwrite."
        )
    for stale in parts_dir.glob(f".*{TEMP_INFIX}*"):
        stale.unlink()  # a batch in flight when a previous run was killed
    return parts_dir


def check_complete(parts: list[tuple[int, int, Path]], rows: tuple[int, int], what: str = "Rows") -> None:
    """The parts tile ``rows`` (lo, hi) exactly, else a RuntimeError saying to rerun."""
    expected, hi = rows
    for start, end, path in parts:
        if start != expected:
            raise RuntimeError(
                f"{what} {expected}..{start - 1} are missing from {path.parent} (a process stopped early?). "
                "Rerun the same command to finish them."
            )
        expected = end
    if expected != hi:
        raise RuntimeError(f"{what} {expected}..{hi - 1} are missing from the parts; rerun the same command.")


def merge_parts(parts: list[tuple[int, int, Path]], out: Path, schema, meta: dict[str, Any]) -> None:
    """Stream the parts (in index order, tiling the run's rows: :func:`check_complete`) into ``out``
    (temp file + rename), with the run's metadata."""
    import pyarrow.parquet as pq

    meta_bytes = {
        META_KEY: json.dumps(meta).encode(),
        b"model": str(meta["model"]).encode(),
        b"weights_sha256": str(meta["weights_sha256"]).encode(),
        b"tta": str(meta["tta"]).encode(),
    }
    schema = schema.with_metadata(meta_bytes)
    if out.suffix.lower() == ".csv":
        import pyarrow.csv as pcsv

        def write_csv(tmp: Path) -> None:
            with pcsv.CSVWriter(str(tmp), schema) as writer:
                for _, _, path in parts:
                    writer.write_table(pq.read_table(path, schema=schema))

        atomic_write(out, write_csv)
        atomic_write(sidecar(out), lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))
        return

    def write_parquet(tmp: Path) -> None:
        with pq.ParquetWriter(str(tmp), schema) as writer:
            for _, _, path in parts:
                writer.write_table(pq.read_table(path).cast(schema))

    atomic_write(out, write_parquet)
