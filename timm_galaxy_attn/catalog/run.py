"""One catalog run (``galaxy-attn predict``): list, decode, predict and commit batch by batch, merge.

Processes come from accelerate's :class:`~accelerate.PartialState`: one, or each of those of ``accelerate
launch`` (across GPUs or nodes, or CPU processes with ``--multi_gpu``). Each process predicts a contiguous
block of the rows (:func:`.options.split_block`) and commits its own parts into ``<out>.parts/`` (on
several nodes a shared file system); after a barrier the main process merges them, so the catalog equals
the one-process catalog row for row. ``shard`` (``--shard K/N``) first narrows the rows to the K-th of N
blocks, for independent jobs. An existing ``out`` of the same run is returned as it is; of another run it
is an error.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .._io import sha256_json
from ..device import announce, choose_precision
from ..labels import MIRROR_LABEL_SWAPS
from .batches import BatchDecoder
from .embed import EMBEDDING_OF, check_embedding
from .engine import Engine, predicted_batches
from .geometry import ModelPixels
from .heatmaps import write_heatmaps
from .inputs import InputList, collect_inputs
from .maps import maps_path, merge_maps, write_maps_part
from .model import LoadedModel, load_model
from .options import PredictOptions, PredictSummary, split_block
from .parts import (
    check_complete,
    list_parts,
    merge_parts,
    part_path,
    parts_dir_of,
    pending_ranges,
    prepare_parts_dir,
    read_meta,
    write_part,
)
from .table import batch_table, catalog_schema

__all__ = ["commit_batch", "run_predict"]

_FORMAT_VERSION = 2  # 2: the warning column


@dataclasses.dataclass
class _Plan:
    """A run ready to go: its inputs, model engine, pixels, schema and metadata (with the fingerprint)."""

    items: InputList
    rows: tuple[int, int]  # the rows of this run (all, or the shard's): lo .. hi
    opts: PredictOptions
    data_config: dict[str, Any]
    pixels: ModelPixels
    engine: Engine
    schema: Any
    meta: dict[str, Any]


def _check_out(opts: PredictOptions, out: Path) -> None:
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ValueError(f"--out {out} must end in .parquet or .csv.")
    if opts.embeddings and out.suffix.lower() != ".parquet":
        raise ValueError(
            f"--out {out}: embeddings are stored as a list column, which CSV cannot hold; "
            "write a .parquet catalog."
        )


def _process_state(device: str | None) -> tuple[Any, torch.device]:
    """accelerate's PartialState (this process of a launch, or the only one) and the device to run on:
    the state's under a launch, else ``device`` (default: cuda when available)."""
    from accelerate import PartialState

    state = PartialState(cpu=device == "cpu")
    if state.num_processes > 1:
        return state, state.device
    return state, torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _resolve_swaps(loaded: LoadedModel, opts: PredictOptions) -> dict[int, int]:
    if opts.mirror_label_swaps is not None:
        return {int(k): int(v) for k, v in opts.mirror_label_swaps.items()}
    if loaded.dataset is not None:
        return dict(MIRROR_LABEL_SWAPS[loaded.dataset])
    if opts.tta == "d4":
        warnings.warn(
            f"Model labels {loaded.label_names} match no known dataset; D4 TTA assumes that no label changes "
            "under a mirror flip. Pass mirror_label_swaps (--mirror-swap 1:2) if some do "
            "(e.g. spiral handedness).",
            stacklevel=3,
        )
    return {}


def _plan(
    loaded: LoadedModel,
    opts: PredictOptions,
    items: InputList,
    rows: tuple[int, int],
    dev: torch.device,
    out: Path,
) -> _Plan:
    from timm.data import resolve_model_data_config

    data_config = dict(resolve_model_data_config(loaded.model))
    if opts.image_size:
        data_config["input_size"] = (3, opts.image_size, opts.image_size)
    pixels = ModelPixels(data_config, jpeg_draft=opts.jpeg_draft)
    dim = check_embedding(loaded.model, tuple(data_config["input_size"])) if opts.embeddings else None
    engine = Engine(loaded, opts, dev, data_config["mean"], data_config["std"])
    schema = catalog_schema(engine.columns, opts.tta == "d4", opts.heatmaps is not None, dim)
    meta = {
        "format_version": _FORMAT_VERSION,
        "model": loaded.name,
        "weights_sha256": loaded.weights_sha256,
        "label_names": list(loaded.label_names),
        "prob_columns": {f"prob_{c}": n for c, n in zip(engine.columns, loaded.label_names, strict=True)},
        "dataset": loaded.dataset,
        "tta": opts.tta,
        "mirror_label_swaps": {str(k): v for k, v in opts.mirror_label_swaps.items()},
        "precision": opts.precision,
        "compile": opts.compile,
        "channels_last": opts.channels_last,
        "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()},
        "fits": dataclasses.asdict(opts.fits),
        "heatmaps": opts.heatmaps,
        "maps": maps_path(out).name if opts.maps else None,
        "decode": pixels.describe(),
        "n_inputs": len(items),
        "inputs_sha256": items.digest(),
        "entropy_units": "nats",
    }
    if opts.shard:  # only then, as the embedding below: the fingerprints of other catalogs stay as they were
        meta["shard"] = {"index": opts.shard[0], "count": opts.shard[1], "rows": list(rows)}
    if dim:
        view = "the identity view (probabilities: the D4 mean)" if opts.tta == "d4" else "the image"
        meta["embedding"] = {"dim": dim, "of": EMBEDDING_OF, "view": view, "dtype": "float32"}
    meta["run_fingerprint"] = sha256_json(meta)
    return _Plan(items, rows, opts, data_config, pixels, engine, schema, meta)


def commit_batch(
    batch: dict[str, Any],
    result: dict[str, Any] | None,
    engine: Engine,
    schema,
    parts_dir: Path,
    heat_dir: Path | None,
) -> int:
    """Commit one predicted batch: heatmap PNGs, the maps part, then the rows' part."""
    if heat_dir is not None and result is not None:
        write_heatmaps(batch, result, engine.loaded.label_names, heat_dir)
    start, end = batch["range"]
    if engine.opts.maps:
        valid = np.array([r["error"] is None for r in batch["rows"]], dtype=bool)
        indices = [r["index"] for r in batch["rows"]]
        write_maps_part(
            part_path(parts_dir, start, end, "maps"), indices, valid, result["maps"] if result else []
        )
    table = batch_table(batch["rows"], result, engine.loaded.label_names, engine.columns, schema)
    write_part(parts_dir, start, end, table)
    return end - start


def _done(parts_dir: Path, share: tuple[int, int]) -> np.ndarray:
    """One flag per row of ``share`` (lo, hi): whether a committed part holds it (parts of any batch
    size or process count)."""
    lo, hi = share
    done = np.zeros(hi - lo, dtype=bool)
    for start, end, _ in list_parts(parts_dir):
        a, b = max(start, lo), min(end, hi)
        if a < b:
            done[a - lo : b - lo] = True
    return done


def _predict_share(
    plan: _Plan, parts_dir: Path, share: tuple[int, int], show: bool
) -> tuple[int, int, float]:
    """Predict the rows of ``share`` (lo, hi) that have no part yet; (predicted, resumed, seconds)."""
    from tqdm.auto import tqdm

    opts, (lo, hi) = plan.opts, share
    done = _done(parts_dir, share)
    ranges = pending_ranges(lo, hi, done, opts.batch_size)
    n_resumed = int(done.sum())
    heat_dir = Path(opts.heatmaps) if opts.heatmaps else None
    if heat_dir is not None:
        heat_dir.mkdir(parents=True, exist_ok=True)
    crop_pct = plan.data_config["crop_pct"]
    model_crop = (plan.data_config["input_size"][-1], crop_pct)
    display_pct = crop_pct if heat_dir else None
    decoder = BatchDecoder(plan.items, ranges, plan.pixels, opts.fits, display_pct, model_crop)
    loader = {"num_workers": opts.num_workers, "prefetch": opts.prefetch}
    n_processed = 0
    t_run = time.perf_counter()
    bar = tqdm(total=hi - lo, initial=n_resumed, unit="img", desc="galaxy-attn predict", disable=not show)
    try:
        want_maps = heat_dir is not None or opts.maps
        for batch, result in predicted_batches(decoder, plan.engine, want_maps, **loader):
            done_now = commit_batch(batch, result, plan.engine, plan.schema, parts_dir, heat_dir)
            n_processed += done_now
            bar.update(done_now)
    finally:
        bar.close()
    return n_processed, n_resumed, time.perf_counter() - t_run


def _merge(plan: _Plan, parts_dir: Path, out: Path) -> None:
    """The maps sidecar (before the catalog: a finished catalog always has its maps), the catalog."""
    parts = list_parts(parts_dir)
    check_complete(parts, plan.rows)
    if plan.opts.maps:
        attrs = {k: plan.meta[k] for k in ("model", "weights_sha256", "run_fingerprint")}
        ranges = [(a, b) for a, b, _ in parts]
        merge_maps(ranges, parts_dir, maps_path(out), {**attrs, "catalogue": out.name})
    merge_parts(parts, out, plan.schema, plan.meta)
    shutil.rmtree(parts_dir, ignore_errors=True)


def _all_processes(state: Any, counts: tuple[int, int, float]) -> tuple[int, int, float]:
    """(predicted, resumed, seconds) over all processes: the sums and the longest time."""
    if state.num_processes == 1:
        return counts
    from accelerate.utils import gather_object

    every = gather_object([counts])
    return sum(c[0] for c in every), sum(c[1] for c in every), max(c[2] for c in every)


def _check_same_run(out: Path, plan: _Plan) -> None:
    old = read_meta(out)
    if old is None or old.get("run_fingerprint") != plan.meta["run_fingerprint"]:
        raise FileExistsError(
            f"{out} exists and was made by a different run (other inputs, model or options). "
            "Choose another --out or pass --overwrite."
        )


def run_predict(
    inputs: Sequence[str | os.PathLike],
    model: str | os.PathLike | nn.Module | LoadedModel,
    out: str | os.PathLike,
    options: PredictOptions | None = None,
    **overrides: Any,
) -> PredictSummary:
    """Write the catalog of ``inputs`` to ``out``, resuming a partial run (package doc).

    Args:
        inputs: image files, folders, astroNN HDF5 files and FITS files.
        model: a timm name with tag, a model folder, ``hf-hub:ORG/NAME``, a module or a loaded model.
        out: the catalog file, ``.parquet`` or ``.csv``.
        options: the run's options (default: :class:`.options.PredictOptions`'s defaults).
        **overrides: fields of :class:`.options.PredictOptions` that replace those of ``options``.

    Returns:
        The :class:`.options.PredictSummary` of the run, its counts over all processes (on the processes
        other than the main one of a launch without the catalog's rows and errors).
    """
    opts, out = PredictOptions.resolve(options, overrides), Path(out)
    _check_out(opts, out)
    state, dev = _process_state(opts.device)
    choice = choose_precision(dev, opts.precision, opts.channels_last)
    announce(choice)  # the run records (and resumes with) what was chosen
    opts = dataclasses.replace(opts, precision=choice.precision, channels_last=choice.channels_last)
    t0 = time.perf_counter()
    loaded = (
        model
        if isinstance(model, LoadedModel)
        else load_model(model, allow_random_weights=opts.allow_random_weights)
    )
    items = collect_inputs(inputs, fits_bands=opts.fits.bands)
    rows = split_block(0, len(items), *opts.shard) if opts.shard else (0, len(items))
    opts = dataclasses.replace(opts, mirror_label_swaps=_resolve_swaps(loaded, opts))
    plan = _plan(loaded, opts, items, rows, dev, out)
    is_main = state.is_main_process
    if out.exists() and not opts.overwrite:
        _check_same_run(out, plan)
        summary = PredictSummary.of_catalog(out, 0, rows[1] - rows[0], time.perf_counter() - t0)
        return dataclasses.replace(summary, is_main_process=is_main)
    if is_main:
        parts_dir = prepare_parts_dir(out, plan.meta, opts.overwrite, outputs=(maps_path(out),))
    else:
        parts_dir = parts_dir_of(out)
    state.wait_for_everyone()
    share = split_block(*rows, state.process_index, state.num_processes)
    counts = _predict_share(plan, parts_dir, share, opts.progress and is_main)
    n_processed, n_resumed, seconds = _all_processes(state, counts)  # also the barrier before the merge
    if not is_main:
        rate = n_processed / max(seconds, 1e-9)
        return PredictSummary(None, 0, 0, n_processed, n_resumed, seconds, rate, {}, False)
    _merge(plan, parts_dir, out)
    return PredictSummary.of_catalog(out, n_processed, n_resumed, seconds)
