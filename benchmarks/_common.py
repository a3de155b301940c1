"""Helpers the benchmark scripts share: the machine's facts, matmul peaks, FLOP counting, bootstrap intervals
and atomic result files.

Imported as a sibling module (``from _common import ...``): ``python benchmarks/<script>.py`` puts this folder
on ``sys.path``, and so does the tests' ``load_script``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from timm_galaxy_attn._io import atomic_write


def lscpu_facts(flags: tuple[str, ...]) -> dict[str, object]:
    """lscpu's model name (else the platform's), the CPU count and whether each of ``flags`` is set."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        text = ""
    fields = {
        k.strip(): v.strip() for k, v in (line.split(":", 1) for line in text.splitlines() if ":" in line)
    }
    present = set(fields.get("Flags", "").split())
    return {
        "cpu_model": fields.get("Model name", platform.processor() or "unknown"),
        "cpus": os.cpu_count(),
        "flags": {f: f in present for f in flags},
    }


def matmul_peak(dtype: torch.dtype, n: int = 4096, min_time: float = 2.0) -> float:
    """FLOP/s of an n x n matmul in ``dtype`` (best of repeated timings)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.matmul(a, b)
    best = 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < min_time:
        t = time.perf_counter()
        torch.matmul(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def count_flops(model: torch.nn.Module, size: int, train: bool) -> float:
    """FLOPs per image of one forward (or forward + backward when ``train``), counted at batch 2."""
    x = torch.randn(2, 3, size, size)
    with FlopCounterMode(display=False) as counter:
        if train:
            model(x).sum().backward()
        else:
            with torch.no_grad():
                model(x)
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


def write_text(path: Path, text: str) -> Path:
    """``text`` in ``path``, written atomically (parent folders created)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, obj: Any) -> Path:
    """``obj`` as indented JSON in ``path``, written atomically."""
    return write_text(path, json.dumps(obj, indent=2) + "\n")


def write_report(folder: Path, stem: str, result: Any, text: str) -> None:
    """A benchmark's results as ``folder/<stem>.json`` (first: a failing markdown write keeps them) and its
    table as ``folder/<stem>.md``."""
    write_json(folder / f"{stem}.json", result)
    write_text(folder / f"{stem}.md", text)


def percentile_interval(
    samples: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    n_resamples: int,
    seed: int = 0,
    confidence: float = 0.95,
    omit_nan: bool = False,
) -> np.ndarray:
    """Percentile bootstrap interval of ``statistic`` (``scipy.stats.bootstrap``, seeded).

    Args:
        samples: equal-length arrays whose observations (along the last axis) are resampled together
            (``paired=True``), e.g. per-galaxy values and their labels.
        statistic: ``statistic(*resampled, axis=-1)``, vectorised over the leading resample axis; it may
            return several statistics at once, stacked in front: shape (S, n_resamples).
        n_resamples: bootstrap resamples.
        seed: seed of the resampling generator.
        confidence: coverage of the interval.
        omit_nan: leave out resamples whose statistic is NaN (undefined there, e.g. a ROC-AUC of one
            class) instead of returning a NaN interval.

    Returns:
        ``[lo, hi]``, or (S, 2) for a statistic that returns S values.
    """
    import warnings

    from scipy.stats import DegenerateDataWarning, bootstrap

    with warnings.catch_warnings():
        if omit_nan:  # scipy warns of the NaN quantiles that are replaced below
            warnings.simplefilter("ignore", DegenerateDataWarning)
        res = bootstrap(
            tuple(samples),
            statistic,
            n_resamples=n_resamples,
            vectorized=True,
            paired=True,
            axis=-1,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    if omit_nan:  # scipy's quantiles have no NaN policy: the same percentiles over the defined resamples
        alpha = (1 - confidence) / 2
        return np.moveaxis(np.nanquantile(res.bootstrap_distribution, [alpha, 1 - alpha], axis=-1), 0, -1)
    return np.stack([res.confidence_interval.low, res.confidence_interval.high], axis=-1)
