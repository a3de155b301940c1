"""Helpers the benchmark scripts share: the machine's facts, matmul peaks, FLOP counting, atomic result files.

Imported as a sibling module (``from _common import ...``): ``python benchmarks/<script>.py`` puts this folder
on ``sys.path``, and so does the tests' ``load_script``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

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
