"""Per-channel mean and std of the real SDSS sample (gz1_sdss), centre crop as in the ``.gz1_sdss`` tag.

Usage: python benchmarks/data_stats.py [PATH_TO/data.parquet]

The statistics use no labels, so computing them over all images leaks nothing about the test split.
They are the ``mean``/``std`` of every pretrained tag in timm_galaxy_attn/model.py.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "gz1_sdss" / "data.parquet"
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    table = pq.read_table(path, columns=["image"])
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for cell in table.column("image").to_pylist():
        img = Image.open(io.BytesIO(cell["bytes"])).convert("RGB")
        w, h = img.size
        crop = img.crop((w // 4, h // 4, w // 4 + w // 2, h // 4 + h // 2))  # crop_pct 0.5
        x = np.asarray(crop, dtype=np.float64).reshape(-1, 3) / 255.0
        total += x.sum(0)
        total_sq += (x**2).sum(0)
        count += x.shape[0]
    mean = total / count
    std = np.sqrt(total_sq / count - mean**2)
    print(f"images: {table.num_rows}")
    print(f"mean = ({', '.join(f'{v:.4f}' for v in mean)})")
    print(f"std  = ({', '.join(f'{v:.4f}' for v in std)})")


if __name__ == "__main__":
    main()
