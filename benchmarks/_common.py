"""Helpers the benchmark scripts share: FLOP counting and atomic result files.

Imported as a sibling module (``from _common import ...``): ``python benchmarks/<script>.py`` puts this folder
on ``sys.path``, and so does the tests' ``load_script``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from timm_galaxy_attn._io import atomic_write


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
