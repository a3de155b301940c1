"""Training and inference throughput of the galaxy attention CNNs and timm baselines on this machine.

Usage:
    python benchmarks/throughput.py                       # the full table (several minutes on 2 cores)
    python benchmarks/throughput.py --quick               # galaxy_attn_vgg at 32 px only
    python benchmarks/throughput.py --json benchmarks/results/throughput.json --markdown out.md

For each model, input size and precision (fp32; bf16 autocast + channels_last) it times training steps
(forward + backward + SGD step) and inference batches, counts FLOPs per image with
``torch.utils.flop_counter``, and reports the achieved FLOP/s as a fraction of the machine's matmul peak
for the same precision (a 4096x4096 ``torch.matmul``, measured in the same run before and after the
models, and again right before and after each model: a row's fraction is against the mean of the two
peaks around it, so that load from other processes affects both sides of the ratio alike). It also
measures what ``capture_attention`` costs. Rows marked "(auto)" are the precision that ``--precision auto``
(``timm_galaxy_attn.device.choose_precision``) picks on this machine; its reason is printed first.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from _common import count_flops, matmul_peak, write_json, write_text

import timm_galaxy_attn
from timm_galaxy_attn import capture_attention
from timm_galaxy_attn.device import choose_precision

DEFAULT_MODELS = ("galaxy_attn_vgg", "galaxy_attn_vgg_small", "resnet18", "vgg16_bn")


def time_it(
    fn: Callable[[], None], images_per_call: int, warmup: int, min_calls: int, min_time: float
) -> float:
    """Images per second of ``fn`` after ``warmup`` calls, over at least ``min_calls`` and ``min_time``."""
    for _ in range(warmup):
        fn()
    calls = 0
    start = time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_time:
        fn()
        calls += 1
    return calls * images_per_call / (time.perf_counter() - start)


def build(name: str, precision: str, num_classes: int = 10) -> torch.nn.Module:
    model = timm.create_model(name, num_classes=num_classes)
    if precision == "bf16":
        model = model.to(memory_format=torch.channels_last)
    return model


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def bench_model(name: str, size: int, precision: str, batch_size: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    model = build(name, precision)
    flops_train = count_flops(model, size, train=True)
    flops_infer = count_flops(model, size, train=False)
    memory_format = torch.channels_last if precision == "bf16" else torch.contiguous_format
    x = torch.randn(batch_size, 3, size, size).to(memory_format=memory_format)
    y = torch.randint(0, 10, (batch_size,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def train_step() -> None:
        with autocast(precision):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer_step() -> None:
        with torch.inference_mode(), autocast(precision):
            model(x)

    model.train()
    train_ips = time_it(train_step, batch_size, args.warmup, args.min_steps, args.min_time)
    model.eval()
    infer_ips = time_it(infer_step, batch_size, args.warmup, args.min_steps, args.min_time)
    return dict(
        model=name,
        image_size=size,
        precision=precision if precision == "fp32" else "bf16+channels_last",
        batch_size=batch_size,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        gflop_train_per_image=flops_train / 1e9,
        gflop_infer_per_image=flops_infer / 1e9,
        train_images_per_s=train_ips,
        infer_images_per_s=infer_ips,
        train_tflops=train_ips * flops_train / 1e12,
        infer_tflops=infer_ips * flops_infer / 1e12,
    )


def bench_capture(size: int, batch_size: int, args: argparse.Namespace) -> dict:
    """Inference images/s of galaxy_attn_vgg (bf16 + channels_last) with and without capture_attention."""
    torch.manual_seed(0)
    model = build("galaxy_attn_vgg", "bf16").eval()
    x = torch.randn(batch_size, 3, size, size).to(memory_format=torch.channels_last)

    def plain() -> None:
        with torch.inference_mode(), autocast("bf16"):
            model(x)

    def captured() -> None:
        with torch.inference_mode(), autocast("bf16"), capture_attention(model) as maps:
            model(x)
        assert len(maps) == 3

    # Interleave the two so that load from other processes hits both alike.
    plain_ips, captured_ips = [], []
    for _ in range(args.capture_rounds):
        plain_ips.append(time_it(plain, batch_size, 1, args.min_steps, args.min_time / 2))
        captured_ips.append(time_it(captured, batch_size, 1, args.min_steps, args.min_time / 2))
    p, c = max(plain_ips), max(captured_ips)
    return dict(
        image_size=size,
        batch_size=batch_size,
        plain_images_per_s=p,
        captured_images_per_s=c,
        overhead=1 - c / p,
    )


def to_markdown(rows: list[dict], peaks: dict, capture: dict) -> str:
    lines = [
        f"Matmul peak (4096x4096): bf16 {peaks['bf16'] / 1e12:.3f} TFLOP/s, fp32 {peaks['fp32'] / 1e12:.3f} "
        "TFLOP/s.",
        "",
        "| model | px | precision | params (M) | GFLOP/img train | train img/s | train % peak | infer img/s "
        "| infer % peak |",
        # % peak: achieved FLOP/s over the matmul peak measured around that row.
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = " (auto)" if r.get("auto") else ""  # what --precision auto picks on this machine
        lines.append(
            f"| {r['model']} | {r['image_size']} | {r['precision']}{mark} | {r['params_m']:.2f} | "
            f"{r['gflop_train_per_image']:.2f} | {r['train_images_per_s']:.1f} | "
            f"{100 * r['train_fraction_of_peak']:.0f}% | {r['infer_images_per_s']:.1f} | "
            f"{100 * r['infer_fraction_of_peak']:.0f}% |"
        )
    lines += [
        "",
        f"capture_attention at {capture['image_size']} px (galaxy_attn_vgg, bf16 inference, batch "
        f"{capture['batch_size']}): {capture['plain_images_per_s']:.1f} -> "
        f"{capture['captured_images_per_s']:.1f} img/s, overhead {100 * capture['overhead']:.1f}%.",
    ]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (oneDNN builds kernels)")
    parser.add_argument("--min-steps", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=4.0, help="seconds per measurement (at least)")
    parser.add_argument("--capture-rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="galaxy_attn_vgg at 32 px, bf16 only")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/throughput.json"))
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    if args.quick:
        args.models, args.sizes, args.precisions = ["galaxy_attn_vgg"], [32], ["bf16"]
    return args


def _peaks() -> dict[str, float]:
    """The local matmul peak (FLOP/s) in bf16 and fp32."""
    return {p: matmul_peak(torch.bfloat16 if p == "bf16" else torch.float32) for p in ("bf16", "fp32")}


def bench_rows(args: argparse.Namespace, auto_precision: str) -> list[dict]:
    """One row per model, input size and precision, each beside the matmul peak measured around it."""
    rows = []
    for name in args.models:
        for size in args.sizes:
            for precision in args.precisions:
                dtype = torch.bfloat16 if precision == "bf16" else torch.float32
                before = matmul_peak(dtype, min_time=1.0)
                row = bench_model(name, size, precision, args.batch_size, args)
                row["local_peak_flops"] = (before + matmul_peak(dtype, min_time=1.0)) / 2
                row["auto"] = precision == auto_precision
                print(
                    f"{name:24s} {size:4d}px {precision:5s} train {row['train_images_per_s']:8.1f} img/s  "
                    f"infer {row['infer_images_per_s']:8.1f} img/s",
                    flush=True,
                )
                rows.append(row)
    return rows


def main() -> None:
    args = parse_args()
    print(
        f"torch {torch.__version__}, timm {timm.__version__}, "
        f"timm_galaxy_attn {timm_galaxy_attn.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}",
        flush=True,
    )
    auto = choose_precision("cpu")
    print(auto.line(), flush=True)
    peaks_before = _peaks()
    rows = bench_rows(args, auto.precision)
    capture = bench_capture(32, args.batch_size, args)
    peaks_after = _peaks()
    peaks = {p: max(peaks_before[p], peaks_after[p]) for p in peaks_before}
    for row in rows:
        row["train_fraction_of_peak"] = row["train_tflops"] * 1e12 / row["local_peak_flops"]
        row["infer_fraction_of_peak"] = row["infer_tflops"] * 1e12 / row["local_peak_flops"]
    table = to_markdown(rows, peaks, capture)
    print()
    print(table)
    result = dict(
        torch=torch.__version__,
        timm=timm.__version__,
        threads=torch.get_num_threads(),
        matmul_peak_flops=peaks,
        matmul_peak_before=peaks_before,
        matmul_peak_after=peaks_after,
        rows=rows,
        auto_precision=auto.line(),
        capture_attention=capture,
        command=" ".join(["python", "benchmarks/throughput.py", *sys.argv[1:]]),
    )
    write_json(args.json, result)
    if args.markdown:
        write_text(args.markdown, table + "\n")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
