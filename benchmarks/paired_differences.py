"""Paired test differences between stored accuracy rows, for pairs the accuracy report does not hold.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/paired_differences.py [--pairs A:B ...] [--out FILE]

``benchmarks/accuracy.py --report-only`` stores the paired differences of its verdict row only (today
``ours_tiny_128s4_sampler``); docs/results.md also reads those of ``ours_tiny_128s4``, the row it replaced.
This script computes ``A`` minus ``B`` (seed 0, test, accuracy / balanced accuracy / macro-F1) with the same
paired 95% bootstrap (1000 resamples, seed 0) from the runs' stored logits under
``benchmarks/results/accuracy/<row>/seed0/predictions.npz``, and writes
``benchmarks/results/paired_differences.json``: ``{"pairs": {"A-B": {metric: [diff, lo, hi]}}}``. It reads
the accuracy results and writes nothing there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from _common import write_json
from accuracy_scores import paired_difference

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "accuracy"
DEFAULT_OUT = HERE / "results" / "paired_differences.json"
OURS = "ours_tiny_128s4"
DEFAULT_PAIRS = tuple(
    f"{OURS}:{peer}" for peer in ("paper_vgg_32", "resnet18_64", "efficientnet_b0_64", "vgg16_bn_64")
)


def seed0_run(rows: dict[str, Any], name: str, results_dir: Path) -> dict[str, Any]:
    """Row ``name``'s first stored run, its folder taken under ``results_dir`` (the stored path may be
    another checkout's)."""
    run = rows[name]["runs"][0]
    return {**run, "folder": str(results_dir / name / f"seed{run['seed']}")}


def compute(pairs: list[str], results_dir: Path = RESULTS) -> dict[str, Any]:
    """``{"source": ..., "pairs": {"A-B": {metric: [diff, lo, hi]}}}`` for each ``A:B`` in ``pairs``."""
    rows = json.loads((results_dir / "results.json").read_text())["rows"]
    out: dict[str, Any] = {}
    for pair in pairs:
        a, b = pair.split(":")
        out[f"{a}-{b}"] = paired_difference(seed0_run(rows, a, results_dir), seed0_run(rows, b, results_dir))
    return {
        "source": "benchmarks/results/accuracy (seed 0 test logits)",
        "method": "paired bootstrap, 1000 resamples, seed 0; [difference, 2.5%, 97.5%], fractions",
        "pairs": out,
    }


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS), help="A:B row names")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results file (JSON)")
    args = parser.parse_args(argv)
    result = compute(args.pairs)
    for name, diff in result["pairs"].items():
        print(name, {k: [round(100 * x, 1) for x in v] for k, v in diff.items()})
    path = write_json(args.out, result)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
