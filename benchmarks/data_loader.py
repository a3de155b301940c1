"""Data-path speed: load_galaxy_dataset cold vs cached, the uint8 loader vs training, synthetic rendering.

    python benchmarks/data_loader.py [--json benchmarks/results/data_loader.json] [--train-steps 4]

Measures, in one run on this machine:
- ``load_galaxy_dataset("gz1_sdss")`` into an empty cache (cold: decode+hash+split+save) and again (cached);
- ``prepare_tensors`` of the train split at 32 px with galaxy_attn_vgg's data config (decode once);
- the fast path's images/s: a DataLoader with 2 workers, each yielding whole batches of the uint8
  tensors passed through ``BatchAugment`` (any-angle rotation, mirror with label swap, shift, jitter);
- the training images/s of galaxy_attn_vgg at 32 px, bf16 autocast + channels_last, forward+backward+step
  on the same batches (the ratio loader/training must be >= 5);
- ``make_synthetic_galaxies`` for 10k 64x64 images.
Prints a markdown table and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import timm  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

import timm_galaxy_attn  # noqa: E402, F401
from timm_galaxy_attn._io import atomic_write  # noqa: E402
from timm_galaxy_attn.data import BatchAugment, load_galaxy_dataset, make_synthetic_galaxies, prepare_tensors  # noqa: E402
from timm_galaxy_attn.labels import MIRROR_LABEL_SWAPS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class AugmentedBatches(Dataset):
    """Item i = batch i of a seeded permutation, augmented in the worker (one generator per item)."""

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, augment: BatchAugment, batch_size: int, seed: int = 0
    ):
        self.x, self.y, self.augment, self.seed = x, y, augment, seed
        self.batches = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).split(batch_size)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        idx = self.batches[i]
        return self.augment(
            self.x[idx], self.y[idx], generator=torch.Generator().manual_seed(self.seed * 100003 + i)
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "data_loader.json"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="loader epochs over gz1_sdss train")
    parser.add_argument("--train-steps", type=int, default=4)
    parser.add_argument("--model", default="galaxy_attn_vgg")
    return parser.parse_args()


def time_loading(model_name: str, res: dict) -> tuple[torch.nn.Module, dict, torch.Tensor, torch.Tensor]:
    """load_galaxy_dataset cold and cached, then prepare_tensors of the train split at 32 px."""
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        dd = load_galaxy_dataset("gz1_sdss", cache_dir=cache)
        res["gz1_cold_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        dd = load_galaxy_dataset("gz1_sdss", cache_dir=cache)
        res["gz1_cached_s"] = time.perf_counter() - t0

        model = timm.create_model(model_name, num_classes=6)
        cfg = timm.data.resolve_model_data_config(model)
        t0 = time.perf_counter()
        x, y = prepare_tensors(dd["train"], cfg, image_size=32)
        res["prepare_tensors_s"] = time.perf_counter() - t0
        res["prepare_tensors_images"] = len(x)
    return model, cfg, x, y


def time_loader(loader: DataLoader, epochs: int, res: dict) -> None:
    """Images/s of the uint8 + BatchAugment loader over ``epochs`` epochs (workers already started)."""
    next(iter(loader))  # start the workers
    t0, n = time.perf_counter(), 0
    for _ in range(epochs):
        for xb, _yb in loader:
            n += len(xb)
    res["loader_images_per_s"] = n / (time.perf_counter() - t0)
    res["loader_workers"] = 2


def time_training(model: torch.nn.Module, loader: DataLoader, steps: int, res: dict) -> None:
    """Training images/s (bf16 autocast, channels_last, SGD) on the loader's batches, after one warm-up."""
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = iter(loader)

    def step() -> int:
        xb, yb = next(batches)
        xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return len(xb)

    step()  # warm-up
    t0, n = time.perf_counter(), 0
    for _ in range(steps):
        n += step()
    res["train_images_per_s"] = n / (time.perf_counter() - t0)
    res["loader_over_train"] = res["loader_images_per_s"] / res["train_images_per_s"]


def table(res: dict, args: argparse.Namespace) -> str:
    """The markdown table of the measurements."""
    rows = [
        ("load_galaxy_dataset('gz1_sdss'), cold (5,665 images)", f"{res['gz1_cold_s']:.2f} s"),
        ("load_galaxy_dataset('gz1_sdss'), cached", f"{res['gz1_cached_s'] * 1000:.1f} ms"),
        (
            f"prepare_tensors train split at 32 px ({res['prepare_tensors_images']} images)",
            f"{res['prepare_tensors_s']:.2f} s",
        ),
        ("loader: uint8 tensors + BatchAugment, 2 workers", f"{res['loader_images_per_s']:.0f} images/s"),
        (
            f"training {args.model} 32 px bf16 channels_last, batch {args.batch_size}",
            f"{res['train_images_per_s']:.1f} images/s",
        ),
        ("loader / training", f"{res['loader_over_train']:.1f}x"),
        ("make_synthetic_galaxies 10k x 64x64", f"{res['synthetic_10k_64px_s']:.2f} s"),
    ]
    return "| measurement | value |\n|---|---|\n" + "\n".join(f"| {name} | {value} |" for name, value in rows)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(max(1, (os.cpu_count() or 2)))
    res: dict[str, float | int | str] = {"machine_cpus": os.cpu_count() or 0, "model": args.model}
    model, cfg, x, y = time_loading(args.model, res)
    augment = BatchAugment(cfg, rotate="any", flip=True, mirror_label_swap=MIRROR_LABEL_SWAPS["gz1_sdss"])
    loader = DataLoader(
        AugmentedBatches(x, y, augment, args.batch_size),
        batch_size=None,
        shuffle=False,
        num_workers=2,
        persistent_workers=True,
    )
    time_loader(loader, args.epochs, res)
    time_training(model, loader, args.train_steps, res)
    t0 = time.perf_counter()
    make_synthetic_galaxies(1000, 64, seed=0)
    res["synthetic_10k_64px_s"] = time.perf_counter() - t0
    print(table(res, args))
    out = atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(res, indent=2) + "\n"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
