"""File-system helpers shared by the package: atomic writes, atomic folder swaps and SHA-256 digests.

Everything the package writes (catalogues and their parts, heatmaps and figures, model folders, downloads,
dataset caches) goes through a temporary name beside the target and ``os.replace``, so a crash never leaves
a half-written file under the final name. Temporary files are named ``.<name>.tmp-<random>``
(:data:`TEMP_INFIX`): a caller that resumes work can recognise and delete those a killed run left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["TEMP_INFIX", "atomic_write", "replace_dir", "sha256_file", "sha256_json"]

TEMP_INFIX = ".tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then move it onto ``path``.

    Parent folders are created. The file gets the usual permissions (``0o666`` less the umask). On any
    error the temporary file is removed and the error propagates; ``path`` is untouched. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TEMP_INFIX}")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Move the freshly built folder ``src`` onto ``dst``, replacing ``dst`` with as short a gap as possible.

    ``src`` and everything in it first get the usual permissions (``mkdtemp`` makes 0700 folders and some
    writers, e.g. ``safetensors``, 0600 files). An existing ``dst`` is renamed aside, then deleted once
    ``src`` is in place; if that last move fails, the old ``dst`` is put back.
    """
    src, dst = Path(src), Path(dst)
    mask = _umask()
    for root, _dirs, files in os.walk(src):
        os.chmod(root, 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)
    if not dst.exists():
        os.replace(src, dst)
        return dst
    old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent))
    os.rmdir(old)
    os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        os.replace(old, dst)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return dst


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    """SHA-256 hex digest of ``obj`` as canonical JSON (sorted keys; non-JSON values through ``str``)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
