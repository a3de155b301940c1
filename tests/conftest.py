"""Shared test set-up: offline Hugging Face libraries, deterministic torch, paths to the real data."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

# Before any Hugging Face import: a cache miss must fail at once instead of retrying the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
N_IMAGES = 10  # the images of cli_setup
KILL_AFTER = Path(__file__).with_name("kill_after.py")  # SIGKILLs a run after N committed batches
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


# ----------------------------------------------------------------- the catalog on one or several processes
@pytest.fixture(scope="module")
def cli_setup(tmp_path_factory):
    """(root, a saved galaxy_attn_vgg_small folder, N_IMAGES random PNGs of which g04.png is broken)."""
    import timm
    from PIL import Image

    from timm_galaxy_attn.hf import save_pretrained_folder

    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = timm.create_model("galaxy_attn_vgg_small")  # Galaxy10 DECaLS' class names
    with torch.no_grad():
        model.fc.weight.mul_(50)
    folder = save_pretrained_folder(model, root / "model")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(images / f"g{i:02d}.png")
    (images / "g04.png").write_bytes(b"\x89PNG broken")
    return root, folder, images


def run_predict_process(args: list[str], kill_after: int | None = None, launcher: list[str] | None = None):
    """``galaxy-attn predict ARGS`` in a subprocess (``launcher``: e.g. ``accelerate launch ...``);
    ``kill_after``: each process SIGKILLs itself after committing that many batches."""
    cmd = launcher or [sys.executable]
    if kill_after is None:
        cmd = [*cmd, "-m", "timm_galaxy_attn", "predict", *args]
    else:
        cmd = [*cmd, str(KILL_AFTER), str(kill_after), "--", "predict", *args]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=240)


def assert_same_catalog(a, b) -> None:
    """Same rows in the same order: exact for ids, labels and errors; floats to 1e-6 (batching may differ)."""
    assert a.schema == b.schema and a.num_rows == b.num_rows
    for name in a.column_names:
        x, y = a.column(name).to_pandas(), b.column(name).to_pandas()
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x.to_numpy(), y.to_numpy(), atol=1e-6, err_msg=name)
        else:
            assert x.equals(y), name


def accelerate_launcher(num_processes: int = 2) -> list[str]:
    """``accelerate launch`` of ``num_processes`` CPU processes (gloo), from this interpreter's venv."""
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    return [
        accelerate, "launch", "--multi_gpu", "--num_processes", str(num_processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
    ]  # fmt: skip
