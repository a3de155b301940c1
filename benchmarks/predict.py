"""Catalogue throughput: `galaxy-attn predict` against the bare model's forward, in the same run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/predict.py [--n 999] [--rounds 3] [--json PATH]

Model: the shipped galaxy_attn_vgg_tiny_s4.gz1_sdss (128 px, the central half of a 423 px SDSS JPEG).
Inputs: --n real SDSS JPEGs of the gz1_sdss parquet (--data), written to a temporary folder. Rows, all in
the precision ``device.choose_precision(..., "auto")`` picks: the bare model (normalised tensors already
in memory, forward + softmax only), ``predict`` (decode, crop, forward, rows, parquet parts, merge),
``predict --maps``, ``predict --heatmaps`` (n/4 images) and ``predict --tta d4`` (n/8 images: 8 forwards
each). The rows are interleaved (bare, predict, bare, --maps, ...) for --rounds rounds and each row keeps
its best round, since the machine may be shared; the ratio is to the best bare round. Also measured: how
much the JPEG draft decode (1/2 scale) moves the probabilities, on enlarged copies of 200 of the JPEGs
(on the 423 px originals it never applies to this model).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from _common import lscpu_facts  # noqa: E402

from timm_galaxy_attn._io import atomic_write  # noqa: E402
from timm_galaxy_attn.catalog import load_model, predict  # noqa: E402
from timm_galaxy_attn.device import choose_precision  # noqa: E402
from timm_galaxy_attn.pretrained import DEFAULT_TAG  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data/gz1_sdss/data.parquet")


def cpu_facts() -> dict[str, object]:
    """lscpu's model name and whether the CPU has the bf16 / AMX instructions."""
    facts = lscpu_facts(("avx512_bf16", "amx_bf16", "amx_tile", "avx512f"))
    return {"cpu_model": facts["cpu_model"], "cpus": facts["cpus"], **facts["flags"]}


def write_jpegs(path: Path, n: int, folder: Path) -> list[Path]:
    """The first ``n`` images of the parquet's ``image`` column (JPEG bytes) as files."""
    column = pq.read_table(path, columns=["image"]).column("image").slice(0, n).to_pylist()
    files = []
    for i, cell in enumerate(column):
        file = folder / f"{i:05d}.jpg"
        file.write_bytes(cell["bytes"] if isinstance(cell, dict) else cell)
        files.append(file)
    return files


def bare_throughput(model, choice, n: int, batch: int, size: int) -> float:
    """Images/s of softmax(model(x)) on a normalised batch already in memory, for ``n`` images."""
    x = torch.randn(batch, 3, size, size)
    if choice.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        with choice.autocast("cpu"):
            model(x)
        done, t0 = 0, time.perf_counter()
        while done < n:
            with choice.autocast("cpu"):
                model(x).float().softmax(1)
            done += batch
    return done / (time.perf_counter() - t0)


def tool_throughput(files: list[Path], loaded, tmp: Path, **kw) -> float:
    out = tmp / f"cat_{time.perf_counter_ns()}.parquet"
    t0 = time.perf_counter()
    summary = predict(files, loaded, out=out, progress=False, output="none", **kw)
    seconds = time.perf_counter() - t0
    assert summary.n_rows == len(files) and summary.n_errors == 0, summary.text()
    return len(files) / seconds


def jpeg_decoder() -> str:
    """Which library decodes RGB JPEGs at full size in the catalogue (simplejpeg when installed, else PIL)."""
    from importlib.metadata import version

    from timm_galaxy_attn.catalog import decode

    return f"simplejpeg {version('simplejpeg')}" if decode.simplejpeg is not None else "PIL"


def stage_costs(files: list[Path], loaded, model, choice, batch: int, size: int) -> dict[str, float]:
    """Per-image seconds on one thread of decoding (JPEG to the model's pixels) and of the forward, and the
    ceiling they set: with every core busy, no overlap beats cores / (decode + forward) images/s."""
    from timm.data import resolve_model_data_config

    from timm_galaxy_attn.catalog.decode import open_image
    from timm_galaxy_attn.catalog.geometry import ModelPixels

    pixels = ModelPixels(dict(resolve_model_data_config(loaded.model)))
    cores = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        for file in files:
            pixels(*open_image(str(file)))
        decode = (time.perf_counter() - t0) / len(files)
        forward = 1 / bare_throughput(model, choice, len(files), batch, size)
    finally:
        torch.set_num_threads(cores)
    return {"decode_s": decode, "forward_s": forward, "cores": cores, "ceiling": cores / (decode + forward)}


def stage_costs_in_run(files: list[Path], loaded, tmp: Path, batch: int) -> dict[str, float]:
    """CPU seconds per image of decoding and of the forward inside one ``predict`` run (the pipelines
    running together), from each thread's CPU clock around ``BatchDecoder.__getitem__`` and ``Engine.run``."""
    from timm_galaxy_attn.catalog import batches, engine

    spent = {"decode_s": 0.0, "forward_s": 0.0}
    lock = threading.Lock()

    def clocked(key: str, fn):
        def wrapper(*args, **kwargs):
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                with lock:
                    spent[key] += time.thread_time() - t0

        return wrapper

    originals = batches.BatchDecoder.__getitem__, engine.Engine.run
    batches.BatchDecoder.__getitem__ = clocked("decode_s", originals[0])
    engine.Engine.run = clocked("forward_s", originals[1])
    try:
        tool_throughput(files, loaded, tmp, batch_size=batch, device="cpu")
    finally:
        batches.BatchDecoder.__getitem__, engine.Engine.run = originals
    return {k: v / len(files) for k, v in spent.items()}


def draft_check(files: list[Path], loaded, folder: Path, factor: int = 2) -> dict[str, object]:
    """Probabilities with and without the JPEG draft decode, on the JPEGs enlarged ``factor`` times.

    For the shipped model the draft never applies to 423 px SDSS JPEGs (the 212 px crop is resized to
    128 px: a 1/2 scale decode would leave 106 px), so the check uses larger JPEGs: each image enlarged
    (bicubic) and saved again (quality 95), where a 1/2 scale decode still leaves the crop 212 px.
    """
    from PIL import Image

    folder.mkdir()
    big = []
    for file in files:
        with Image.open(file) as im:
            path = folder / file.name
            size = (im.width * factor, im.height * factor)
            im.resize(size, Image.Resampling.BICUBIC).save(path, quality=95)
            big.append(path)
    kw = dict(progress=False, precision="fp32", device="cpu")
    t0 = time.perf_counter()
    full = predict(big, loaded, jpeg_draft=False, **kw)
    t1 = time.perf_counter()
    draft = predict(big, loaded, jpeg_draft=True, **kw)
    t2 = time.perf_counter()
    cols = [c for c in full.columns if c.startswith("prob_")]
    diff = np.abs(full[cols].to_numpy() - draft[cols].to_numpy())
    return {
        "inputs": f"{len(big)} SDSS JPEGs enlarged {factor}x ({big[0].name}: {factor * 423} px), quality 95",
        "max_abs_prob_change": float(diff.max()),
        "mean_abs_prob_change": float(diff.mean()),
        "top_class_agreement": float((full["pred_id"] == draft["pred_id"]).mean()),
        "images_per_s_full_decode": len(big) / (t1 - t0),
        "images_per_s_draft_decode": len(big) / (t2 - t1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=999, help="images per predict row")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data", default=str(DATA), help="gz1_sdss parquet with JPEG bytes in 'image'")
    parser.add_argument(
        "--json",
        default=str(ROOT / "benchmarks" / "results" / "predict.json"),
        help="where the JSON goes (benchmarks/speed.py keeps it inside its own)",
    )
    parser.add_argument("--shared", action="store_true", help="record that other jobs shared the machine")
    args = parser.parse_args()
    loaded = load_model(DEFAULT_TAG)
    size = loaded.pretrained_cfg["input_size"][-1]
    choice = choose_precision("cpu", "auto")
    model = loaded.model.eval()
    if choice.channels_last:
        model = model.to(memory_format=torch.channels_last)
    common = dict(batch_size=args.batch_size, device="cpu")
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "jpg").mkdir()
        files = write_jpegs(Path(args.data), args.n, tmp / "jpg")
        modes = {
            "predict": (files, {}),
            "predict --maps": (files, {"maps": True}),
            "predict --heatmaps": (files[: max(1, args.n // 4)], {"heatmaps": tmp / "png"}),
            "predict --tta d4": (files[: max(1, args.n // 8)], {"tta": "d4"}),
        }
        tool_throughput(files[:64], loaded, tmp, **common)  # warm-up: imports, first allocations
        for r in range(args.rounds):
            for mode, (inputs, kw) in modes.items():
                bare = bare_throughput(model, choice, args.n, args.batch_size, size)
                best["bare model (forward only)"] = max(best.get("bare model (forward only)", 0.0), bare)
                speed = tool_throughput(inputs, loaded, tmp, **common, **kw)
                best[mode] = max(best.get(mode, 0.0), speed)
                print(f"round {r + 1}: bare {bare:.1f}, {mode} {speed:.1f} images/s", flush=True)
        costs = stage_costs(files, loaded, model, choice, args.batch_size, size)
        costs["in_run"] = stage_costs_in_run(files, loaded, tmp, args.batch_size)
        best["ceiling: cores / (decode + forward), one thread each"] = costs["ceiling"]
        check = draft_check(files[:200], loaded, tmp / "big")
    report(args, best, {m: len(v[0]) for m, v in modes.items()}, choice, size, check, costs)


def report(args, best: dict, n_of: dict[str, int], choice, size: int, check: dict, costs: dict) -> None:
    """Print the markdown table and write the JSON."""
    bare = best["bare model (forward only)"]
    n_of = {"bare model (forward only)": args.n, **n_of}
    n_of = {m: n_of.get(m, args.n) for m in best}
    rows = [{"mode": m, "n_images": n_of[m], "images_per_s": v, "ratio": v / bare} for m, v in best.items()]
    facts = cpu_facts()
    print(
        f"\n{DEFAULT_TAG} at {size} px, batch {args.batch_size}, {args.n} real SDSS JPEGs (423 px), "
        f"{choice.line()}; {facts['cpu_model']}, {facts['cpus']} CPUs"
        f"{', SHARED with other jobs' * args.shared}: best of {args.rounds} interleaved rounds\n"
    )
    print("| mode | images | images/s | x bare model |\n|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['mode']} | {row['n_images']} | {row['images_per_s']:.1f} | {row['ratio']:.2f} |")
    print(f"\nJPEG draft decode: {check}\nPer-image seconds (alone, and inside a run): {costs}")
    result = {
        "model": DEFAULT_TAG,
        "image_size": size,
        "batch_size": args.batch_size,
        "inputs": f"{args.n} real SDSS JPEGs from {args.data}",
        "precision": choice.precision,
        "channels_last": choice.channels_last,
        "precision_reason": choice.reason,
        **facts,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "jpeg_decoder": jpeg_decoder(),
        "machine_shared": args.shared,
        "note": f"best of {args.rounds} interleaved rounds"
        + (", machine shared with other jobs" * args.shared),
        "rows": rows,
        "jpeg_draft_check": check,
        "stage_costs_1_thread": costs,
    }
    atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(result, indent=2) + "\n"))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
