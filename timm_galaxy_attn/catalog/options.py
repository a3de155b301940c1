"""What a catalogue run takes (:class:`PredictOptions`) and what it reports (:class:`PredictSummary`)."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from pathlib import Path

from .fits import FitsOptions

__all__ = ["FitsOptions", "PredictOptions", "PredictSummary"]


@dataclasses.dataclass
class PredictOptions:
    """Everything that decides the numbers of a catalogue (and so must match when resuming)."""

    tta: str = "none"
    image_size: int | None = None
    precision: str = "auto"  # auto: bf16 where the device runs it natively (device.choose_precision)
    channels_last: bool | None = None  # None: where it helps
    heatmaps: str | None = None
    mirror_label_swaps: dict[int, int] | None = None
    fits: FitsOptions = dataclasses.field(default_factory=FitsOptions)
    maps: bool = False  # the attention maps as arrays, in <out>.maps.h5 (catalog.maps)
    jpeg_draft: bool = False  # JPEGs decoded at 1/2^k scale where the crop keeps its pixels (catalog.decode)
    compile: bool = False  # torch.compile the model (not with maps or heatmaps: it skips the attention hooks)
    embeddings: bool = False  # the classifier's input per galaxy, column ``embedding`` (parquet only)


@dataclasses.dataclass
class PredictSummary:
    """What a run did: rows in the catalogue, failed rows and why, speed."""

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
    def of_catalogue(cls, out: Path, n_processed: int, n_resumed: int, seconds: float) -> PredictSummary:
        """The summary of the finished catalogue ``out`` (its error column counted)."""
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
        lines = [
            f"{self.n_rows} rows in {self.out} ({self.n_processed} predicted now, {self.n_resumed} already "
            f"written; {self.images_per_s:.1f} images/s); {self.n_errors} failed."
        ]
        for message, count in sorted(self.errors.items(), key=lambda kv: -kv[1])[:10]:
            lines.append(f"  {count} x {message}")
        return "\n".join(lines)
