"""``predict()``: the notebook face of ``galaxy-attn predict``, returning the catalogue as a table."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch.nn as nn

from .fits import FitsOptions
from .model import LoadedModel
from .options import PredictOptions
from .run import run_predict

__all__ = ["predict"]


def _result(catalogue: Path, output: str):
    """The catalogue file as ``output`` asks: a pyarrow Table ("arrow") or a DataFrame ("pandas")."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table = pcsv.read_csv(catalogue) if catalogue.suffix.lower() == ".csv" else pq.read_table(catalogue)
    if output == "arrow":
        return table
    if output == "pandas":
        return table.to_pandas()
    raise ValueError(f"output={output!r} is not supported; choose 'pandas', 'arrow' or 'none'.")


def predict(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    model: str | os.PathLike | nn.Module | LoadedModel,
    *,
    out: str | os.PathLike | None = None,
    tta: str = "none",
    heatmaps: str | os.PathLike | None = None,
    maps: bool = False,
    embeddings: bool = False,
    jpeg_draft: bool = False,
    compile: bool = False,
    image_size: int | None = None,
    batch_size: int = 32,
    precision: str = "auto",
    channels_last: bool | None = None,
    num_workers: int = 0,
    device: str | None = None,
    allow_random_weights: bool = False,
    mirror_label_swaps: dict[int, int] | None = None,
    fits: FitsOptions | None = None,
    overwrite: bool = False,
    progress: bool = True,
    output: str = "pandas",
):
    """Classify galaxies in ``inputs`` (files and folders) and return the catalogue as a table.

    The notebook face of ``galaxy-attn predict``: ``out`` (.parquet/.csv) keeps the catalogue on disk
    (and makes the run resumable); without it the catalogue is built in a temporary folder. ``output`` is
    ``"pandas"`` (DataFrame), ``"arrow"`` (pyarrow.Table, with the run's metadata in its schema) or
    ``"none"`` (return the :class:`.options.PredictSummary`). Rows whose input was broken carry an ``error``.
    ``maps=True`` stores the attention maps in ``<out>.maps.h5`` (give ``out`` to keep them);
    ``embeddings=True`` adds the column ``embedding``, the classifier's input (:mod:`.embed`; parquet only);
    JPEGs are decoded at full size (the timm transform's pixels exactly); ``jpeg_draft=True`` decodes large
    ones at 1/2-1/8 scale where the crop keeps the pixels the model reads (faster; probabilities move a bit).
    ``compile=True`` runs the model through ``torch.compile`` (not with maps or heatmaps).

    Example::

        from timm_galaxy_attn import predict
        df = predict("cutouts/", model="galaxy_attn_vgg_tiny_s4.gz1_sdss", tta="d4")
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    options = PredictOptions(
        tta=tta,
        image_size=image_size,
        precision=precision,
        channels_last=channels_last,
        heatmaps=str(heatmaps) if heatmaps is not None else None,
        maps=maps,
        embeddings=embeddings,
        jpeg_draft=jpeg_draft,
        compile=compile,
        mirror_label_swaps=mirror_label_swaps,
        fits=fits or FitsOptions(),
    )
    with tempfile.TemporaryDirectory(prefix="galaxy-attn-") as tmp:
        target = Path(out) if out is not None else Path(tmp) / "catalog.parquet"
        summary = run_predict(
            list(inputs),
            model,
            target,
            options=options,
            batch_size=batch_size,
            num_workers=num_workers,
            device=device,
            allow_random_weights=allow_random_weights,
            overwrite=overwrite,
            progress=progress,
        )
        if output == "none":
            return summary
        if not summary.is_main_process:
            return None
        return _result(target, output)
