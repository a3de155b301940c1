"""Catalogue throughput: `galaxy-attn predict` against the bare model's eval forward, in the same run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/predict.py [--n 256] [--image-size 64] [--json PATH]

Model: galaxy_attn_vgg_small (random weights: speed does not depend on them) at --image-size px. Inputs:
--n synthetic galaxies of that size written as PNG files and as one astroNN HDF5 file. For each
precision (fp32; bf16 autocast + channels_last) it times the bare model (normalised tensors already in
memory, forward only) and the full tool (decode, eval transform, forward, rows, parquet parts, merge):
plain, with --heatmaps and with --tta d4 (8 forwards per image). Prints a markdown table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import h5py  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import timm_galaxy_attn  # noqa: E402, F401
from timm_galaxy_attn._io import atomic_write  # noqa: E402
from timm_galaxy_attn.data import make_synthetic_galaxies  # noqa: E402
from timm_galaxy_attn.device import choose_precision  # noqa: E402
from timm_galaxy_attn.predict import predict  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def bare_throughput(
    model, size: int, batch: int, precision: str, channels_last: bool, seconds: float
) -> float:
    """Images/s of model(x) on a normalised batch already in memory."""
    x = torch.randn(batch, 3, size, size)
    m = model.eval()
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        if precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                m(x).float().softmax(1)
        else:
            m(x).softmax(1)

    with torch.inference_mode():
        step()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            step()
            n += batch
        return n / (time.perf_counter() - t0)


def tool_throughput(inputs, model, n: int, tmp: Path, **kw) -> float:
    out = tmp / f"cat_{time.perf_counter_ns()}.parquet"
    t0 = time.perf_counter()
    summary = predict(inputs, model, out=out, progress=False, output="none", **kw)
    seconds = time.perf_counter() - t0
    assert summary.n_rows == n and summary.n_errors == 0, summary.text()
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="images per run (TTA runs use n/4)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0, help="bare-model timing window")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "predict.json"))
    args = parser.parse_args()
    size, n = args.image_size, args.n
    torch.manual_seed(0)
    model = timm.create_model("galaxy_attn_vgg_small", pretrained_cfg_overlay=dict(crop_pct=1.0))
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        images = make_synthetic_galaxies(max(1, n // 10 + 1), size, seed=0).images[:n]
        png_dir = tmp / "png"
        png_dir.mkdir()
        for i, img in enumerate(images):
            Image.fromarray(img).save(png_dir / f"{i:05d}.png")
        with h5py.File(tmp / "g.h5", "w") as f:
            f["images"] = images
        tta_dir = tmp / "png_tta"
        tta_dir.mkdir()
        for i in range(n // 4):
            os.link(png_dir / f"{i:05d}.png", tta_dir / f"{i:05d}.png")
        auto = choose_precision("cpu")  # what --precision auto (the default) picks here
        for precision, channels_last in (("fp32", False), ("bf16", True)):
            label = "fp32" if precision == "fp32" else "bf16 + channels_last"
            if (precision, channels_last) == (auto.precision, auto.channels_last):
                label += " (auto)"
            bare = bare_throughput(model, size, args.batch_size, precision, channels_last, args.seconds)
            common = dict(
                image_size=size, batch_size=args.batch_size, precision=precision, channels_last=channels_last
            )
            runs = {
                "PNG folder": tool_throughput([png_dir], model, n, tmp, **common),
                "HDF5": tool_throughput([tmp / "g.h5"], model, n, tmp, **common),
                "PNG + heatmaps": tool_throughput([png_dir], model, n, tmp, heatmaps=tmp / "maps", **common),
                "PNG + TTA d4": tool_throughput([tta_dir], model, n // 4, tmp, tta="d4", **common),
            }
            rows.append(
                {"precision": label, "mode": "bare model (forward only)", "images_per_s": bare, "ratio": 1.0}
            )
            for mode, speed in runs.items():
                rows.append({"precision": label, "mode": mode, "images_per_s": speed, "ratio": speed / bare})
    print(
        f"\ngalaxy_attn_vgg_small at {size} px, batch {args.batch_size}, {n} images, torch "
        f"{torch.__version__}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()})\n"
    )
    print("| precision | mode | images/s | x bare model |")
    print("|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['precision']} | {r['mode']} | {r['images_per_s']:.1f} | {r['ratio']:.2f} |")
    result = {
        "model": "galaxy_attn_vgg_small",
        "image_size": size,
        "batch_size": args.batch_size,
        "n_images": n,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(result, indent=2) + "\n"))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
