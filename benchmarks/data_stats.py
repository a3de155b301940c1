"""Per-channel mean and std of the gz1_sdss **train** split (split seed 0), central half as in ``.gz1_sdss``.

    python benchmarks/data_stats.py        # -> benchmarks/results/data_stats.json

The statistics use no labels, but they are taken over the training images only (validation and test are
not looked at), as a referee expects of anything fitted to data. They are the ``mean``/``std`` of every
pretrained config in timm_galaxy_attn/pretrained/__init__.py (``GALAXY_MEAN``, ``GALAXY_STD``); the JSON also
keeps the statistics over all 5,665 images, which the configs used before, for comparison.
"""

from __future__ import annotations

import numpy as np
from _common import write_json
from accuracy_rows import DATASET, RESULTS, SPLIT_SEED

CROP_PCT = 0.5  # data.SOURCE_CROP_PCT["gz1_sdss"]: the central half


def channel_sums(images) -> tuple[np.ndarray, np.ndarray, int]:
    """(sum, sum of squares, pixel count) per RGB channel of the central crops of PIL ``images``."""
    total, total_sq, count = np.zeros(3), np.zeros(3), 0
    for img in images:
        img = img.convert("RGB")
        w, h = img.size
        cw, ch = round(w * CROP_PCT), round(h * CROP_PCT)
        left, top = (w - cw) // 2, (h - ch) // 2
        x = np.asarray(img.crop((left, top, left + cw, top + ch)), dtype=np.float64).reshape(-1, 3) / 255.0
        total += x.sum(0)
        total_sq += (x**2).sum(0)
        count += x.shape[0]
    return total, total_sq, count


def mean_std(sums: list[tuple[np.ndarray, np.ndarray, int]]) -> dict[str, list[float]]:
    total = sum(s[0] for s in sums)
    total_sq = sum(s[1] for s in sums)
    count = sum(s[2] for s in sums)
    mean = total / count
    return {
        "mean": [round(float(v), 4) for v in mean],
        "std": [round(float(v), 4) for v in np.sqrt(total_sq / count - mean**2)],
    }


def main() -> None:
    from timm_galaxy_attn.data import load_galaxy_dataset

    dsdict = load_galaxy_dataset(DATASET, seed=SPLIT_SEED)
    sums = {split: channel_sums(dsdict[split]["image"]) for split in ("train", "validation", "test")}
    result = {
        "dataset": DATASET,
        "split_seed": SPLIT_SEED,
        "crop_pct": CROP_PCT,
        "n_images": {split: len(dsdict[split]) for split in sums},
        "train": mean_std([sums["train"]]),
        "all_images": mean_std(list(sums.values())),
    }
    write_json(RESULTS / "data_stats.json", result)
    train = result["train"]
    print(f"train ({result['n_images']['train']} images): mean {train['mean']} std {train['std']}")
    print(f"all images: mean {result['all_images']['mean']} std {result['all_images']['std']}")


if __name__ == "__main__":
    main()
