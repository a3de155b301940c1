"""What benchmarks/accuracy.py needs torch and the model for: the rows' models and FLOPs, the decoded split,
D4 TTA, the epochs a budget buys, and training, re-scoring and storing one run."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _common import count_flops, write_json
from accuracy_rows import DATASET, ROOT, SPLIT_SEED, TRAIN_SCRIPT, BenchmarkError, Row


def recipe_of(name: str) -> dict[str, Any]:
    from timm_galaxy_attn.training import RECIPES  # the one definition of the recipes (train.py's)

    return RECIPES[name]


def build_model(row: Row, num_classes: int):
    import timm

    import timm_galaxy_attn  # noqa: F401 - registers galaxy_attn_vgg*

    return timm.create_model(row.model, pretrained=False, num_classes=num_classes, **row.model_kwargs())


def forward_gflops(row: Row, num_classes: int) -> float:
    """Forward GFLOPs of one image at the row's input size (torch's FlopCounterMode: 2 per multiply-add)."""
    return count_flops(build_model(row, num_classes).eval(), row.image_size, train=False) / 1e9


@dataclasses.dataclass
class SplitData:
    """The decoded gz1_sdss split, kept per data config (decoding is the slow part)."""

    dsdict: Any
    cache: dict[str, Any] = dataclasses.field(default_factory=dict)

    def tensors(self, split: str, data_config: dict[str, Any]):
        from timm_galaxy_attn.data import prepare_tensors

        key = json.dumps([split, data_config], sort_keys=True, default=str)
        if key not in self.cache:
            self.cache[key] = prepare_tensors(self.dsdict[split], data_config)
        return self.cache[key]


def load_split() -> SplitData:
    from timm_galaxy_attn.data import load_galaxy_dataset

    return SplitData(load_galaxy_dataset(DATASET, seed=SPLIT_SEED))


def plain_and_d4_probs(
    model,
    x_uint8,
    data_config: dict[str, Any],
    mirror_swaps: dict[int, int],
    bf16: bool,
    batch: int = 128,
    channels_last: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(plain logits, D4-averaged probabilities) of uint8 images; mirrored views get the label swap undone."""
    import torch

    from timm_galaxy_attn.data import normalize_batch
    from timm_galaxy_attn.tta import d4_probs, mirror_permutation

    perm = mirror_permutation(model.num_classes, mirror_swaps)
    fmt = torch.channels_last if channels_last else torch.contiguous_format  # as in training: same numbers
    model = model.eval().to(memory_format=fmt)
    view_logits: list[torch.Tensor] = []  # the current batch's, in d4_views order (identity first)

    def probs_of(view: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            view_logits.append(model(view.contiguous(memory_format=fmt)).float())
        return view_logits[-1].double().softmax(1)

    plain, mean = [], []
    with torch.inference_mode():
        for i in range(0, len(x_uint8), batch):
            view_logits.clear()
            x = normalize_batch(x_uint8[i : i + batch], data_config)
            mean.append(d4_probs(probs_of, x, perm).mean(0))
            plain.append(view_logits[0])
    return torch.cat(plain).numpy(), torch.cat(mean).numpy()


def plan_epochs(budget_minutes: float, images_per_s: float, n_train: int) -> tuple[int, int | None]:
    """(epochs, max_train_samples or None) that spend ``budget_minutes`` at ``images_per_s``."""
    images = budget_minutes * 60 * images_per_s
    if images >= n_train:
        return max(1, int(math.floor(images / n_train + 0.5))), None  # nearest whole epoch
    return 1, max(int(images), 64)


def train_command(row: Row, seed: int, plan: dict[str, Any], run_dir: Path) -> list[str]:
    """The train.py command of ``row`` with ``seed`` on ``plan``'s schedule (``--resume`` when cut)."""
    cmd = [sys.executable, str(TRAIN_SCRIPT), "--dataset", DATASET, "--split-seed", str(SPLIT_SEED)]
    cmd += [
        "--seed",
        str(seed),
        "--epochs",
        str(plan["epochs"]),
        *row.train_args(),
        "--output-dir",
        str(run_dir),
    ]
    if plan["max_train_samples"]:
        cmd += ["--max-train-samples", str(plan["max_train_samples"])]
    if row.recipe == "default":  # the recipe's 1-epoch warmup would take a short budget's whole run
        cmd += ["--warmup-epochs", f"{min(1.0, plan['epochs'] / 10):g}"]
    if row.role in ("ours", "paper"):  # keep every epoch's checkpoint: attention across epochs
        cmd += ["--keep-checkpoints", "1000"]
    if (run_dir / "train_config.json").is_file():
        cmd.append("--resume")
    return cmd


def train_row(row: Row, seed: int, cmd: list[str], plan: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Run ``cmd`` (logged to ``<run_dir>.log``) unless the run finished already; its metrics.json."""
    if plan.get("schedule_of"):
        speed = f"the schedule of {plan['schedule_of']}"
    elif plan["calibrated_images_per_s"] is None:
        speed = "a fixed schedule"
    else:
        speed = f"{plan['calibrated_images_per_s']:.0f} img/s calibrated"
    print(
        f"[{row.name} seed {seed}] {speed} -> {plan['epochs']} epoch(s)"
        f"{' of ' + str(plan['max_train_samples']) + ' images' if plan['max_train_samples'] else ''}; "
        f"log: {run_dir}.log",
        flush=True,
    )
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1")
    returncode = 0
    if not (run_dir / "metrics.json").is_file():  # else trained already: only the scoring is left
        with open(f"{run_dir}.log", "a") as log:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
        returncode = proc.returncode
    if returncode != 0 or not (run_dir / "metrics.json").is_file():
        tail = Path(f"{run_dir}.log").read_text()[-2000:]
        raise BenchmarkError(f"{row.name} seed {seed}: train.py failed (exit {returncode}):\n{tail}")
    return json.loads((run_dir / "metrics.json").read_text())


def tta_predictions(
    run_dir: Path, metrics: dict[str, Any], data: SplitData
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The run's stored logits and labels, and D4 TTA probabilities of the test split from its reloaded
    model (checked: same labels as the benchmark's split, plain logits as the run's up to bf16 rounding)."""
    from timm_galaxy_attn.catalog import load_model
    from timm_galaxy_attn.labels import MIRROR_LABEL_SWAPS

    loaded = load_model(run_dir / "model")
    data_config = metrics["data_config"]
    bf16 = metrics["mixed_precision"] == "bf16"
    swaps = MIRROR_LABEL_SWAPS.get(DATASET, {})
    with np.load(run_dir / "predictions.npz") as f:
        pred = {k: f[k] for k in ("val_logits", "val_labels", "test_logits", "test_labels")}
    tta: dict[str, np.ndarray] = {}
    for split, short in (("test", "test"),):  # D4 on test only: 8 forward passes per image are not free
        x, y = data.tensors(split, data_config)
        if not np.array_equal(y.numpy(), pred[f"{short}_labels"]):
            raise BenchmarkError(
                f"{run_dir}: {split} labels differ from the benchmark's split; rerun the row."
            )
        channels_last = bool(metrics.get("config", {}).get("channels_last"))
        plain, probs = plain_and_d4_probs(
            loaded.model, x, data_config, swaps, bf16, channels_last=channels_last
        )
        ref = pred[f"{short}_logits"]
        drift = float(np.abs(plain - ref).max())
        if drift > 0.05 * float(np.abs(ref).max()) + 0.1:  # bf16 rounding only
            raise BenchmarkError(
                f"{run_dir}: reloaded model's {split} logits differ by {drift:.3f} from the run's."
            )
        tta[f"{short}_tta_probs"] = probs.astype(np.float32)
    return pred, tta


def store_result(
    dest: Path, run_dir: Path, predictions: dict[str, np.ndarray], bench: dict[str, Any]
) -> None:
    """``dest``: the run's metrics.json, ``predictions`` as predictions.npz and ``bench`` as bench.json,
    built aside and swapped in whole."""
    from timm_galaxy_attn._io import replace_dir

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        shutil.copy2(run_dir / "metrics.json", tmp / "metrics.json")
        np.savez_compressed(tmp / "predictions.npz", **predictions)
        write_json(tmp / "bench.json", bench)
        replace_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
