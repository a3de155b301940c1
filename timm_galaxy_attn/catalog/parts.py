"""Part files, resume and merge: how a catalogue survives a killed run.

Every batch is committed atomically as ``<out>.parts/part-<start>-<end>.parquet`` (a temporary name, then
a rename), beside ``run.json`` (the run's metadata and fingerprint). A rerun with the same ``out`` and
fingerprint skips the rows already written; at the end the parts are merged, in input order, into ``out``
(parquet, with the metadata in its schema, or CSV with a ``<out>.json`` sidecar) through a temporary file.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .._io import TEMP_INFIX, atomic_write
from .maps import maps_path

__all__ = [
    "META_KEY",
    "list_parts",
    "merge_parts",
    "parts_dir_of",
    "pending_ranges",
    "prepare_parts_dir",
    "read_meta",
    "sidecar",
    "write_part",
]

META_KEY = b"galaxy_attn"
_PART = re.compile(r"^part-(\d{12})-(\d{12})\.parquet$")


def parts_dir_of(out: Path) -> Path:
    """The folder of the parts of catalogue ``out``: ``<out>.parts``."""
    return out.with_name(out.name + ".parts")


def sidecar(out: Path) -> Path:
    """The metadata file of a CSV catalogue: ``<out>.json``."""
    return out.with_name(out.name + ".json")


def list_parts(parts_dir: Path) -> list[tuple[int, int, Path]]:
    """The committed row parts as (start, end, path), in index order."""
    found = []
    if parts_dir.is_dir():
        for p in parts_dir.iterdir():
            m = _PART.match(p.name)
            if m:
                found.append((int(m[1]), int(m[2]), p))
    return sorted(found)


def write_part(parts_dir: Path, start: int, end: int, table) -> Path:
    """Commit the rows ``start .. end`` (a pyarrow table) as one part file, atomically."""
    import pyarrow.parquet as pq

    part = parts_dir / f"part-{start:012d}-{end:012d}.parquet"
    return atomic_write(part, lambda tmp: pq.write_table(table, tmp))


def pending_ranges(lo: int, hi: int, done: np.ndarray, batch_size: int) -> list[tuple[int, int]]:
    """The batches (ranges of at most ``batch_size``) covering the rows of ``lo .. hi`` not ``done``."""
    ranges = []
    i = lo
    while i < hi:
        if done[i]:
            i += 1
            continue
        j = i
        while j < hi and not done[j] and j - i < batch_size:
            j += 1
        ranges.append((i, j))
        i = j
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


def prepare_parts_dir(out: Path, meta: dict[str, Any], overwrite: bool) -> Path:
    """Make (or, with ``overwrite``, remake) the parts folder of ``out`` for the run of ``meta``: a folder
    of another run is an error; temporary files a killed run left behind are deleted."""
    parts_dir = parts_dir_of(out)
    if overwrite:
        shutil.rmtree(parts_dir, ignore_errors=True)
        for p in (out, sidecar(out), maps_path(out)):
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


def _check_complete(parts: list[tuple[int, int, Path]], n: int) -> None:
    expected = 0
    for start, end, path in parts:
        if start != expected:
            raise RuntimeError(
                f"Rows {expected}..{start - 1} are missing from {path.parent} (a process stopped early?). "
                "Rerun the same command to finish them."
            )
        expected = end
    if expected != n:
        raise RuntimeError(f"Rows {expected}..{n - 1} are missing from the parts; rerun the same command.")


def merge_parts(parts: list[tuple[int, int, Path]], n: int, out: Path, schema, meta: dict[str, Any]) -> None:
    """Stream the parts, in index order, into ``out`` (temp file + rename); check every row is there."""
    import pyarrow.parquet as pq

    _check_complete(parts, n)
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
