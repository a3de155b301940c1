"""One catalogue run (``galaxy-attn predict``): list, decode, predict and commit batch by batch, merge.

Under ``accelerate launch`` each process takes a contiguous share of the input indices, writes its own
parts, and the main process merges after a barrier: the catalogue equals the one-process catalogue row for
row. An existing ``out`` of the same run is returned as it is; of another run it is an error.
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
from ..device import PRECISIONS, announce, choose_precision
from ..labels import MIRROR_LABEL_SWAPS
from .batches import BatchDecoder
from .embed import EMBEDDING_OF, check_embedding
from .engine import Engine, predicted_batches
from .geometry import ModelPixels
from .heatmaps import write_heatmaps
from .inputs import InputList, collect_inputs
from .maps import maps_path, merge_maps, write_maps_part
from .maps import part_path as maps_part_path
from .model import LoadedModel, load_model
from .options import PredictOptions, PredictSummary
from .parts import (
    list_parts,
    merge_parts,
    parts_dir_of,
    pending_ranges,
    prepare_parts_dir,
    read_meta,
    write_part,
)
from .table import batch_table, catalogue_schema

__all__ = ["commit_batch", "run_predict"]

_FORMAT_VERSION = 2  # 2: the warning column


@dataclasses.dataclass
class _Plan:
    """A run ready to go: its inputs, model engine, pixels, schema and metadata (with the fingerprint)."""

    items: InputList
    opts: PredictOptions
    data_config: dict[str, Any]
    pixels: ModelPixels
    engine: Engine
    schema: Any
    meta: dict[str, Any]


def _check_options(opts: PredictOptions, out: Path) -> None:
    if opts.tta not in ("none", "d4"):
        raise ValueError(f"tta={opts.tta!r} is not supported; choose 'none' or 'd4'.")
    if opts.precision not in PRECISIONS:
        raise ValueError(f"precision={opts.precision!r} is not supported; choose one of {PRECISIONS}.")
    if opts.compile and (opts.maps or opts.heatmaps):
        raise ValueError(
            "--compile cannot give attention maps: the compiled model skips the hooks that --maps and "
            "--heatmaps read. Drop --compile, or the map options."
        )
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ValueError(f"--out {out} must end in .parquet or .csv.")
    if opts.embeddings and out.suffix.lower() != ".parquet":
        raise ValueError(
            f"--out {out}: embeddings are stored as a list column, which CSV cannot hold; "
            "write a .parquet catalogue."
        )


def _distributed_state(device: str | None):
    """(process index, process count, barrier, device) from accelerate when launched with it."""
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if launched:
        from accelerate import PartialState

        state = PartialState(cpu=device == "cpu")
        return state.process_index, state.num_processes, state.wait_for_everyone, state.device
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return 0, 1, lambda: None, dev


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


def _plan(loaded: LoadedModel, opts: PredictOptions, items: InputList, dev: torch.device, out: Path) -> _Plan:
    from timm.data import resolve_model_data_config

    data_config = dict(resolve_model_data_config(loaded.model))
    if opts.image_size:
        data_config["input_size"] = (3, opts.image_size, opts.image_size)
    pixels = ModelPixels(data_config, jpeg_draft=opts.jpeg_draft)
    dim = check_embedding(loaded.model, tuple(data_config["input_size"])) if opts.embeddings else None
    engine = Engine(loaded, opts, dev, data_config["mean"], data_config["std"])
    schema = catalogue_schema(engine.columns, opts.tta == "d4", opts.heatmaps is not None, dim)
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
    if dim:  # only then: the fingerprints of catalogues without embeddings stay as they were
        view = "the identity view (probabilities: the D4 mean)" if opts.tta == "d4" else "the image"
        meta["embedding"] = {"dim": dim, "of": EMBEDDING_OF, "view": view, "dtype": "float32"}
    meta["run_fingerprint"] = sha256_json(meta)
    return _Plan(items, opts, data_config, pixels, engine, schema, meta)


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
            maps_part_path(parts_dir, start, end), indices, valid, result["maps"] if result else []
        )
    table = batch_table(batch["rows"], result, engine.loaded.label_names, engine.columns, schema)
    write_part(parts_dir, start, end, table)
    return end - start


def _predict_share(
    plan: _Plan, parts_dir: Path, share: tuple[int, int], batch_size: int, loader: dict[str, Any], show: bool
) -> tuple[int, int, float]:
    """Predict the rows of ``share`` (lo, hi) that have no part yet; (predicted, resumed, seconds)."""
    from tqdm.auto import tqdm

    lo, hi = share
    done = np.zeros(len(plan.items), dtype=bool)
    for start, end, _ in list_parts(parts_dir):
        done[start:end] = True
    ranges = pending_ranges(lo, hi, done, batch_size)
    n_resumed = int(done[lo:hi].sum())
    heat_dir = Path(plan.opts.heatmaps) if plan.opts.heatmaps else None
    if heat_dir is not None:
        heat_dir.mkdir(parents=True, exist_ok=True)
    crop_pct = plan.data_config["crop_pct"]
    model_crop = (plan.data_config["input_size"][-1], crop_pct)
    display_pct = crop_pct if heat_dir else None
    decoder = BatchDecoder(plan.items, ranges, plan.pixels, plan.opts.fits, display_pct, model_crop)
    n_processed = 0
    t_run = time.perf_counter()
    bar = tqdm(total=hi - lo, initial=n_resumed, unit="img", desc="galaxy-attn predict", disable=not show)
    try:
        want_maps = heat_dir is not None or plan.opts.maps
        for batch, result in predicted_batches(decoder, plan.engine, want_maps, **loader):
            done_now = commit_batch(batch, result, plan.engine, plan.schema, parts_dir, heat_dir)
            n_processed += done_now
            bar.update(done_now)
    finally:
        bar.close()
    return n_processed, n_resumed, time.perf_counter() - t_run


def _merge(plan: _Plan, parts_dir: Path, out: Path) -> None:
    """The maps sidecar (before the catalogue: a finished catalogue always has its maps), the catalogue."""
    n = len(plan.items)
    parts = list_parts(parts_dir)
    if plan.opts.maps:
        attrs = {k: plan.meta[k] for k in ("model", "weights_sha256", "run_fingerprint")}
        ranges = [(a, b) for a, b, _ in parts]
        merge_maps(ranges, parts_dir, n, maps_path(out), {**attrs, "catalogue": out.name})
    merge_parts(parts, n, out, plan.schema, plan.meta)
    shutil.rmtree(parts_dir, ignore_errors=True)


def run_predict(
    inputs: Sequence[str | os.PathLike],
    model: str | os.PathLike | nn.Module | LoadedModel,
    out: str | os.PathLike,
    *,
    options: PredictOptions | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    prefetch: int = 2,
    device: str | None = None,
    allow_random_weights: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> PredictSummary:
    """Write the catalogue of ``inputs`` to ``out`` (.parquet/.csv), resuming a partial run (package doc)."""
    opts, out = options or PredictOptions(), Path(out)
    _check_options(opts, out)
    rank, world, barrier, dev = _distributed_state(device)
    is_main = rank == 0
    choice = choose_precision(dev, opts.precision, opts.channels_last)
    announce(choice)  # the run records (and resumes with) what was chosen
    opts = dataclasses.replace(opts, precision=choice.precision, channels_last=choice.channels_last)
    t0 = time.perf_counter()
    loaded = (
        model
        if isinstance(model, LoadedModel)
        else load_model(model, allow_random_weights=allow_random_weights)
    )
    items = collect_inputs(inputs, fits_bands=opts.fits.bands)
    opts = dataclasses.replace(opts, mirror_label_swaps=_resolve_swaps(loaded, opts))
    plan = _plan(loaded, opts, items, dev, out)
    if out.exists() and not overwrite:
        old = read_meta(out)
        if old is None or old.get("run_fingerprint") != plan.meta["run_fingerprint"]:
            raise FileExistsError(
                f"{out} exists and was made by a different run (other inputs, model or options). "
                "Choose another --out or pass --overwrite."
            )
        summary = PredictSummary.of_catalogue(out, 0, len(items), time.perf_counter() - t0)
        return dataclasses.replace(summary, is_main_process=is_main)
    parts_dir = prepare_parts_dir(out, plan.meta, overwrite) if is_main else parts_dir_of(out)
    barrier()
    n = len(items)
    share = (n * rank // world, n * (rank + 1) // world)
    loader = {"num_workers": num_workers, "prefetch": prefetch}
    n_processed, n_resumed, seconds = _predict_share(
        plan, parts_dir, share, batch_size, loader, progress and is_main
    )
    barrier()
    if not is_main:
        rate = n_processed / max(seconds, 1e-9)
        return PredictSummary(None, 0, 0, n_processed, n_resumed, seconds, rate, {}, False)
    _merge(plan, parts_dir, out)
    return PredictSummary.of_catalogue(out, n_processed, n_resumed, seconds)
