"""``predict()``: the notebook face of ``galaxy-attn predict``, returning the catalog as a table."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn as nn

from ..attention import check_choice
from .model import LoadedModel
from .options import PredictOptions
from .run import run_predict

__all__ = ["OUTPUTS", "predict"]

OUTPUTS = ("pandas", "arrow", "none")


def _result(catalog: Path, output: str):
    """The catalog file as ``output`` asks: a pyarrow Table ("arrow") or a DataFrame ("pandas")."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table = pcsv.read_csv(catalog) if catalog.suffix.lower() == ".csv" else pq.read_table(catalog)
    return table if output == "arrow" else table.to_pandas()


def predict(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    model: str | os.PathLike | nn.Module | LoadedModel,
    *,
    out: str | os.PathLike | None = None,
    output: str = "pandas",
    options: PredictOptions | None = None,
    **overrides: Any,
):
    """Classify the galaxies in ``inputs`` and return the catalog as a table (``galaxy-attn predict``).

    Rows whose input was broken carry an ``error``. The options are those of
    :class:`~timm_galaxy_attn.catalog.PredictOptions`, given as keywords (``tta="d4"``, ``batch_size=64``,
    ``maps=True``, ``embeddings=True``, ``shard="0/4"`` ...) or as ``options``.

    Args:
        inputs: an image file, folder, astroNN HDF5 or FITS file, or a sequence of them.
        model: a timm name with tag, a model folder, ``hf-hub:ORG/NAME``, a module or a loaded model.
        out: the catalog file (.parquet/.csv), which keeps it on disk and makes the run resumable (and
            keeps the ``maps`` sidecar); default: a temporary folder.
        output: ``"pandas"`` (a DataFrame), ``"arrow"`` (a pyarrow.Table, with the run's metadata in its
            schema) or ``"none"`` (the :class:`~timm_galaxy_attn.catalog.PredictSummary`).
        options: the run's options (default: their defaults).
        **overrides: fields of :class:`~timm_galaxy_attn.catalog.PredictOptions` replacing those of
            ``options``.

    Returns:
        The catalog as ``output`` asks; None on the processes other than the main one of a launch.

    Example::

        from timm_galaxy_attn import predict
        df = predict("cutouts/", model="galaxy_attn_vgg_tiny_s4.gz_sdss", tta="d4")
    """
    check_choice("output", output, OUTPUTS)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    with tempfile.TemporaryDirectory(prefix="galaxy-attn-") as tmp:
        target = Path(out) if out is not None else Path(tmp) / "catalog.parquet"
        summary = run_predict(list(inputs), model, target, options, **overrides)
        if output == "none":
            return summary
        if not summary.is_main_process:
            return None
        return _result(target, output)
