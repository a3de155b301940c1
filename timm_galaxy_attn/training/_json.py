"""JSON of a run folder (configs, states, metrics): numpy scalars, tuples, sets and paths as plain JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from timm_galaxy_attn._io import atomic_write

__all__ = ["dumps", "write_json"]


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj: Any) -> str:
    """``obj`` as indented JSON."""
    return json.dumps(obj, indent=2, default=_json_default)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path``, atomically.

    Args:
        path: The file.
        obj: Plain JSON, numpy scalars, tuples, sets and paths.
    """
    atomic_write(path, lambda tmp: tmp.write_text(dumps(obj) + "\n"))
