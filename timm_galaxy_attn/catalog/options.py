"""What a catalog run takes (:class:`PredictOptions`, the one place of its options and their defaults: the
command line, :func:`.api.predict` and :func:`.run.run_predict` all build it) and what it reports
(:class:`PredictSummary`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

from ..attention import check_choice
from ..device import PRECISIONS
from ..tta import TTA_MODES
from .fits import FitsOptions

__all__ = ["FitsOptions", "PredictOptions", "PredictSummary", "parse_shard", "split_block"]


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with N >= 1 and 0 <= K < N; else a ValueError that names the fix."""
    try:
        index, count = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a shard K/N; give e.g. 0/4 for the first of 4 (K counts from 0)."
        ) from None
    return _checked_shard(index, count)


def _checked_shard(index: int, count: int) -> tuple[int, int]:
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"{index}/{count} is not a shard K/N: N must be at least 1 and K from 0 to N - 1.")
    return int(index), int(count)


def split_block(lo: int, hi: int, index: int, count: int) -> tuple[int, int]:
    """The ``index``-th of ``count`` contiguous blocks of ``lo .. hi``, the first ``(hi - lo) % count``
    blocks one longer: the rule of accelerate's ``split_between_processes``, kept here because that one
    needs the indices as a list (10^8 of them for a survey)."""
    size, extra = divmod(hi - lo, count)
    start = lo + index * size + min(index, extra)
    return start, start + size + (1 if index < extra else 0)


@dataclasses.dataclass
class PredictOptions:
    """The options of a catalog run (``galaxy-attn predict`` / ``embed``, :func:`.api.predict`).

    The fields from ``tta`` to ``fits`` decide the numbers: they are recorded in the catalog's metadata and
    fingerprint, and a resumed run must match them. ``shard`` picks the rows (recorded too). The rest only
    say how the run goes: any batch size, worker or process count gives the same rows.

    Attributes:
        tta: test-time augmentation, one of :data:`..tta.TTA_MODES`; ``"d4"``: the mean over the 8
            rotations/flips (with ``std_<class>`` and ``tta_agreement``).
        image_size: model input size (default: the model's ``pretrained_cfg``).
        precision: one of :data:`..device.PRECISIONS`; ``"auto"``: bf16 autocast where the device runs it
            natively, else fp32 (fp16 on GPUs) (:func:`..device.choose_precision`).
        channels_last: channels_last memory format (None: where it helps).
        heatmaps: a folder for one attention heatmap PNG per galaxy.
        maps: store the three attention maps per galaxy in ``<out>.maps.h5`` (:mod:`.maps`).
        embeddings: add the column ``embedding``, the classifier's input (:mod:`.embed`; parquet only).
        jpeg_draft: decode JPEGs at 1/2-1/8 scale where the crop keeps its pixels (faster; the pixels are
            no longer timm's exactly).
        compile: run the model through ``torch.compile`` (not with ``maps`` or ``heatmaps``: the compiled
            model skips the attention hooks).
        mirror_label_swaps: class ids that swap under a mirror, for D4 (default: the model's dataset's).
        fits: how FITS cubes and band files become RGB.
        shard: ``(K, N)`` or ``"K/N"``: only the K-th (from 0) of N contiguous, near-equal blocks of the
            listed inputs (:func:`split_block`, in the listing's deterministic order), so N independent jobs
            (e.g. a SLURM array) together cover every input exactly once; ``index`` stays the position in
            the whole listing, so the N catalogs read together (one parquet dataset) are the whole one.
        batch_size: inputs per batch (and per committed part).
        num_workers: decoding processes (0: on the CPU each inference thread decodes its own batches; on
            a GPU one decoding thread).
        prefetch: decoded batches kept ready per producer.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ... (default: cuda when available; accelerate's under
            ``accelerate launch``).
        allow_random_weights: run with random weights when the model has none (smoke tests only).
        overwrite: replace an ``out`` made by a different run.
        progress: show a progress bar.
    """

    tta: str = "none"
    image_size: int | None = None
    precision: str = "auto"
    channels_last: bool | None = None
    heatmaps: str | os.PathLike | None = None
    maps: bool = False
    embeddings: bool = False
    jpeg_draft: bool = False
    compile: bool = False
    mirror_label_swaps: dict[int, int] | None = None
    fits: FitsOptions = dataclasses.field(default_factory=FitsOptions)
    shard: tuple[int, int] | str | None = None
    batch_size: int = 32
    num_workers: int = 0
    prefetch: int = 2
    device: str | None = None
    allow_random_weights: bool = False
    overwrite: bool = False
    progress: bool = True

    @classmethod
    def resolve(cls, options: PredictOptions | None, overrides: dict[str, Any]) -> PredictOptions:
        """``options`` (default: the defaults) with the fields in ``overrides`` replaced; an unknown name
        is a TypeError that lists the known ones."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise TypeError(f"Unknown option(s) {', '.join(unknown)}; the options are: {', '.join(names)}.")
        return dataclasses.replace(options or cls(), **overrides)

    def __post_init__(self) -> None:
        check_choice("tta", self.tta, TTA_MODES)
        check_choice("precision", self.precision, PRECISIONS)
        if self.heatmaps is not None:
            self.heatmaps = os.fspath(self.heatmaps)
        if self.fits is None:
            self.fits = FitsOptions()
        if isinstance(self.shard, str):
            self.shard = parse_shard(self.shard)
        elif self.shard is not None:
            self.shard = _checked_shard(*self.shard)
        for name, least in (("batch_size", 1), ("num_workers", 0), ("prefetch", 1)):
            if getattr(self, name) < least:
                raise ValueError(f"{name}={getattr(self, name)} is too small; give at least {least}.")
        if self.compile and (self.maps or self.heatmaps):
            raise ValueError(
                "--compile cannot give attention maps: the compiled model skips the hooks that --maps and "
                "--heatmaps read. Drop --compile, or the map options."
            )


@dataclasses.dataclass
class PredictSummary:
    """What a run did: rows in the catalog, failed rows and why, speed."""

    out: str | None
    n_rows: int
    n_errors: int
    n_processed: int
    n_resumed: int
    seconds: float
    images_per_s: float
    errors: dict[str, int]
    is_main_process: bool = True

    @classmethod
    def of_catalog(cls, out: Path, n_processed: int, n_resumed: int, seconds: float) -> PredictSummary:
        """The summary of the finished catalog ``out`` (its error column counted)."""
        if out.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(out, columns=["error"])
        else:
            import pyarrow.csv as pcsv

            table = pcsv.read_csv(out, convert_options=pcsv.ConvertOptions(include_columns=["error"]))
        errors = Counter(e for e in table.column("error").to_pylist() if e)
        return cls(
            out=str(out),
            n_rows=table.num_rows,
            n_errors=sum(errors.values()),
            n_processed=n_processed,
            n_resumed=n_resumed,
            seconds=seconds,
            images_per_s=n_processed / seconds if seconds > 0 else math.nan,
            errors=dict(errors),
        )

    def text(self) -> str:
        """The run in a few lines: rows, speed, and the ten most frequent errors."""
        lines = [
            f"{self.n_rows} rows in {self.out} ({self.n_processed} predicted now, {self.n_resumed} already "
            f"written; {self.images_per_s:.1f} images/s); {self.n_errors} failed."
        ]
        for message, count in sorted(self.errors.items(), key=lambda kv: -kv[1])[:10]:
            lines.append(f"  {count} x {message}")
        return "\n".join(lines)
