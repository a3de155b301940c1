"""ONNX Runtime on the CPU against eager PyTorch: the same model, batch and thread count, in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/export.py [--batch-size 16] [--seconds 3] [--json PATH]

For each model: ``timm_galaxy_attn.export`` writes the ONNX file (dynamo exporter; its parity check runs
on real images: 16 gz1_sdss JPEGs from ../shared/data and the ten Galaxy10 DECaLS PNGs, max |logit -
eager| printed), then inference images/s are timed for eager fp32, eager in the precision that
``--precision auto`` picks on this machine, ``torch.compile`` (inductor) in both, and onnxruntime fp32
(CPUExecutionProvider, intra-op threads = torch's). They are interleaved over ``--rounds`` (best of each) so
that load from other processes hits all alike; ratios are against eager fp32. ``--no-compile`` leaves the
compiled rows out (inductor needs a C++ compiler; its first call takes tens of seconds, reported as
``compile_s``). Prints a markdown table, writes JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import timm_galaxy_attn  # noqa: E402, F401
from timm_galaxy_attn._io import atomic_write  # noqa: E402
from timm_galaxy_attn.catalog import load_model  # noqa: E402
from timm_galaxy_attn.device import choose_precision  # noqa: E402
from timm_galaxy_attn.export import export_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DEFAULT_MODELS = ("galaxy_attn_vgg_tiny_s4.gz1_sdss", "galaxy_attn_vgg_small")


def gz1_jpegs(folder: Path, n: int = 16) -> Path:
    """Write the first ``n`` gz1_sdss cutouts (JPEG bytes as published) into ``folder``."""
    import pyarrow.parquet as pq

    first = next(pq.ParquetFile(SHARED / "gz1_sdss" / "data.parquet").iter_batches(n, columns=["image"]))
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(first.column("image").to_pylist()):
        (folder / f"gz1_{i:02d}.jpg").write_bytes(image["bytes"])
    return folder


def images_per_s(fn: Callable[[], object], batch: int, seconds: float) -> float:
    fn()  # oneDNN / onnxruntime build their kernels on the first call
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += batch
    return n / (time.perf_counter() - t0)


def parity(spec: str, label: str, images: Path, tmp: Path) -> tuple[dict, Path, tuple[int, int, int]]:
    """Export ``spec`` to ONNX with its check on ``images``; the parity row, the file and the input size."""
    onnx_path = tmp / f"{spec}.onnx"
    result = export_model(spec, "onnx", onnx_path, images=[images], allow_random_weights=True)
    print(result.text(), flush=True)
    row = dict(model=spec, images=label, n=result.n_images, max_abs_diff=result.max_abs_diff)
    return row, onnx_path, result.input_size


def timings(spec: str, onnx_path: Path, input_size: tuple[int, int, int], args) -> list[dict]:
    """Best images/s of eager fp32, eager auto and onnxruntime, interleaved over ``args.rounds``."""
    import onnxruntime as ort

    model = load_model(spec, allow_random_weights=True).model.eval()
    auto_model = copy.deepcopy(model)
    x = torch.randn(args.batch_size, *input_size)
    auto = choose_precision("cpu")
    x_auto = x
    if auto.channels_last:
        auto_model = auto_model.to(memory_format=torch.channels_last)
        x_auto = x.contiguous(memory_format=torch.channels_last)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    x_np = x.numpy()
    compile_s: dict[str, float] = {}

    def in_auto(net: torch.nn.Module) -> Callable[[], object]:
        def run() -> object:
            with auto.autocast("cpu"):
                return net(x_auto)

        return run

    label = f"auto ({auto.precision}{' + channels_last' if auto.channels_last else ''})"
    runs = {
        "eager fp32": lambda: model(x),
        f"eager {label}": in_auto(auto_model),
        "onnxruntime fp32": lambda: session.run(None, {"images": x_np}),
    }
    if args.compile:
        compiled, compiled_auto = torch.compile(model), torch.compile(auto_model)
        runs["torch.compile fp32"] = lambda: compiled(x)
        runs[f"torch.compile {label}"] = in_auto(compiled_auto)
        with torch.inference_mode():
            for name in ("torch.compile fp32", f"torch.compile {label}"):
                t0 = time.perf_counter()
                runs[name]()
                compile_s[name] = time.perf_counter() - t0
    best = dict.fromkeys(runs, 0.0)
    with torch.inference_mode():
        for _ in range(args.rounds):
            for name, fn in runs.items():
                best[name] = max(best[name], images_per_s(fn, args.batch_size, args.seconds))
    base = best["eager fp32"]
    return [
        dict(model=spec, runtime=k, images_per_s=v, ratio=v / base, **_compile_time(compile_s, k))
        for k, v in best.items()
    ]


def _compile_time(compile_s: dict[str, float], name: str) -> dict[str, float]:
    return {"compile_s": compile_s[name]} if name in compile_s else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="no torch.compile rows")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "export.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    parities, rows = [], []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sets = {
            "gz1_sdss JPEGs": gz1_jpegs(tmp / "gz1"),
            "Galaxy10 DECaLS PNGs": SHARED / "galaxy10_decals_examples",
        }
        for spec in args.models:
            for label, images in sets.items():
                row, onnx_path, input_size = parity(spec, label, images, tmp)
                parities.append(row)
            rows += timings(spec, onnx_path, input_size, args)
    cpu = platform.processor() or platform.machine()
    print(f"\nbatch {args.batch_size}, {torch.get_num_threads()} threads, torch {torch.__version__}, {cpu}\n")
    print("| model | runtime | images/s | x eager fp32 |\n|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['runtime']} | {r['images_per_s']:.1f} | {r['ratio']:.2f} |")
    print("\n| model | check images | max abs logit diff |\n|---|---|---:|")
    for p in parities:
        print(f"| {p['model']} | {p['n']} {p['images']} | {p['max_abs_diff']:.2e} |")
    result = dict(
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        batch_size=args.batch_size,
        auto_precision=choose_precision("cpu").line(),
        rows=rows,
        parity=parities,
    )
    atomic_write(args.json, lambda t: t.write_text(json.dumps(result, indent=2) + "\n"))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
