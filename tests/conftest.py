"""Shared test set-up: offline Hugging Face libraries, deterministic torch, paths to the real data."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

# Before any Hugging Face import: a cache miss must fail at once instead of retrying the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
# The library finds the real samples through this variable (or an explicit path); subprocesses inherit it.
os.environ.setdefault("GALAXY_ATTN_DATA_DIR", str(SHARED_DATA))


def load_script(relative_path: str, module_name: str) -> ModuleType:
    """Import a script of the repository (e.g. ``training/train.py``) as a module named ``module_name``.

    As ``python <script>`` does, the script's folder goes first on ``sys.path``, so the script's imports of
    its sibling modules (``from hub_common import ...``) work.
    """
    folder = str((REPO_ROOT / relative_path).parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(module_name, REPO_ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    spec.loader.exec_module(module)
    return module


def tiny_args(train_images: int, batch_size: int, per_class: int = 10, *extra: str) -> list[str]:
    """The arguments of a tiny run: the synthetic set at 32 px, ``train_images`` training images."""
    return [
        "--dataset", "synthetic", "--synthetic-per-class", str(per_class), "--max-train-samples",
        str(train_images), "--image-size", "32", "--batch-size", str(batch_size), *extra,
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real images next to the repository (``../shared/data``)."""
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(
            f"{SHARED_DATA} is missing: the tests expect the project's shared/ folder beside the repository."
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def decals_examples(shared_data: Path) -> Path:
    """Ten real Galaxy10 DECaLS galaxies, one per class (PNG files + labels.csv)."""
    return shared_data / "galaxy10_decals_examples"


@pytest.fixture(scope="module")
def dataset_cache(tmp_path_factory: pytest.TempPathFactory):
    """A fresh dataset cache (``GALAXY_ATTN_CACHE``) for the tests of one module; the old value after."""
    cache = tmp_path_factory.mktemp("galaxy_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GALAXY_ATTN_CACHE", str(cache))
        yield cache
