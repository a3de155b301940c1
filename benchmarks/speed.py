"""Speed on this machine, in one command: training and inference per precision, the catalogue against the
bare model, eager against torch.compile and ONNX Runtime, and the default training precision where bf16 is
emulated.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/speed.py [--out benchmarks/results/speed] [--quick]

It runs the other benchmark scripts, each in its own process (so each gets the machine to itself), and
gathers their JSON into one table, ``<out>/<cpu>.md`` and ``.json``, with the CPU model and its flags:

1. ``throughput.py``: training and inference images/s in fp32 and bf16 (+ channels_last), the row that
   ``--precision auto`` picks marked, each as a fraction of this machine's matmul peak in its precision;
   for ``galaxy_attn_vgg`` at 32 px (the paper's network) and ``galaxy_attn_vgg_tiny_s4`` at 128 px (shipped).
2. ``predict.py``: ``galaxy-attn predict`` with the shipped model on real SDSS JPEGs against the bare
   forward (plain, ``--maps``, ``--heatmaps``, ``--tta d4``), in one run; as this machine is and held to
   AVX2 (below).
3. ``export.py``: eager, ``torch.compile`` (from an empty inductor cache: its first call is the compile
   time a new user waits) and ONNX Runtime, fp32 and the auto precision.
4. ``training/train.py`` itself (the README's main job, shortened to one epoch): the default
   ``--mixed-precision auto`` against ``--mixed-precision no``, interleaved, best of two each; as this
   machine is and held to AVX2.

"Held to AVX2": oneDNN and ATen's kernels limited to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``,
``ATEN_CPU_CAPABILITY=avx2``), which makes bf16 emulated and fp32 as slow as on an AVX2-only CPU of the same
clock: an emulation of that class of machine (the matmul peaks of both settings are recorded beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import lscpu_facts

from timm_galaxy_attn._io import atomic_write

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8")
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
SETTINGS = (("native", None), ("held to AVX2", AVX2_ENV))
TRAIN_ARGS = (
    "--dataset synthetic --synthetic-per-class 40 --model galaxy_attn_vgg_small --image-size 32 --epochs 1"
)


def machine() -> dict[str, object]:
    """lscpu's model name, core count and the instruction sets that decide the precision."""
    return {**lscpu_facts(FLAGS), "torch": torch.__version__, "python": platform.python_version()}


def run(args: list[str], env: dict[str, str] | None = None) -> None:
    """Run a benchmark script, its output passed through; a failure stops everything."""
    print(f"\n$ {' '.join(args)}", flush=True)
    subprocess.run(args, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, check=True)


def matmul_peaks(env: dict[str, str] | None = None) -> dict[str, float]:
    """fp32 and bf16 matmul GFLOP/s (``_common.matmul_peak``, 1024 x 1024, one second each) in a fresh
    process under ``env`` (oneDNN reads its ISA limit when it loads)."""
    code = (
        "import json, torch\n"
        "from _common import matmul_peak\n"
        "dtypes = {'fp32': torch.float32, 'bf16': torch.bfloat16}\n"
        "print(json.dumps({k: matmul_peak(d, 1024, 1.0) / 1e9 for k, d in dtypes.items()}))\n"
    )
    env = {**os.environ, **(env or {})}
    done = subprocess.run([PY, "-c", code], cwd=HERE, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_speed(tmp: Path, mixed_precision: str, env: dict[str, str] | None) -> dict[str, object]:
    """One shortened main-job run: train images/s from its metrics.json, and the precision it announced."""
    out = tmp / f"train_{time.perf_counter_ns()}"
    args = [PY, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu", "training/train.py"]
    args += [*TRAIN_ARGS.split(), "--mixed-precision", mixed_precision, "--output-dir", str(out)]
    done = subprocess.run(
        args,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"training failed ({' '.join(args)}):\n{done.stderr[-3000:]}")
    chosen = re.search(r"training precision (\w+)", done.stdout + done.stderr)
    metrics = json.loads((out / "metrics.json").read_text())
    return {"precision": chosen.group(1) if chosen else "?", "images_per_s": metrics["images_per_s"]}


def training_check(tmp: Path, rounds: int) -> list[dict[str, object]]:
    """Default (auto) against fp32 training, as this machine is and with oneDNN held to AVX2."""
    rows = []
    for setting, env in SETTINGS:
        best: dict[str, dict] = {}
        for _ in range(rounds):
            for value in ("no", "auto"):
                got = train_speed(tmp, value, env)
                print(f"train {setting} --mixed-precision {value}: {got}", flush=True)
                if got["images_per_s"] > best.get(value, {}).get("images_per_s", 0.0):
                    best[value] = got
        ratio = best["auto"]["images_per_s"] / best["no"]["images_per_s"]
        rows.append({"setting": setting, "matmul_gflops": matmul_peaks(env), **_pair(best), "ratio": ratio})
    return rows


def _pair(best: dict[str, dict]) -> dict[str, object]:
    return {
        "auto_precision": best["auto"]["precision"],
        "auto_images_per_s": best["auto"]["images_per_s"],
        "fp32_images_per_s": best["no"]["images_per_s"],
    }


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _costs(c: dict) -> str:
    """CPU ms per image of decoding and the forward, alone on one thread and inside the run."""
    alone, run_ = f"{1e3 * c['decode_s']:.2f} + {1e3 * c['forward_s']:.2f}", c.get("in_run", {})
    inside = f"{1e3 * run_['decode_s']:.2f} + {1e3 * run_['forward_s']:.2f}" if run_ else "not measured"
    return f"decode + forward CPU ms per image, one thread alone {alone}, inside the run {inside}"


def markdown(result: dict) -> str:
    """The four tables, with the machine they ran on."""
    m = result["machine"]
    flags = ", ".join(f for f, on in m["flags"].items() if on) or "none of " + ", ".join(FLAGS)
    lines = [
        f"# Speed on {m['cpu_model']} ({m['cpus']} CPUs; {flags}), torch {m['torch']}",
        "",
        f"`{result['command']}`, {result['date']}, {result['minutes']:.0f} min. {result['auto']}",
        "",
        "## Training and inference per precision ((auto): what `--precision auto` picks here)",
        "",
        "% peak: the direct-convolution FLOP count per second over a matmul's FLOP/s in the same precision "
        "(over 100%: the convolution kernels do fewer operations than the direct count).",
        "",
        "| model | px | precision | train img/s | train % peak | infer img/s | infer % peak |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in result["throughput"]:
        mark = " (auto)" if r.get("auto") else ""
        lines.append(
            f"| {r['model']} | {r['image_size']} | {r['precision']}{mark} | {r['train_images_per_s']:.1f} | "
            f"{_pct(r['train_fraction_of_peak'])} | {r['infer_images_per_s']:.1f} | "
            f"{_pct(r['infer_fraction_of_peak'])} |"
        )
    lines += ["", "## The catalogue against the bare forward, in one run", ""]
    lines += ["| setting | mode | images | images/s | x bare forward |", "|---|---|---:|---:|---:|"]
    for setting, part in result["predict"].items():
        for r in part["rows"]:
            lines.append(
                f"| {setting} ({part['setup']}) | {r['mode']} | {r['n_images']} | {r['images_per_s']:.1f} | "
                f"{r['ratio']:.2f} |"
            )
    lines.append("")
    for setting, part in result["predict"].items():
        if "costs" in part:
            lines.append(f"- {setting}: {_costs(part['costs'])}")
    lines += ["", "## Runtimes (inference, batch 16)", ""]
    lines += ["| model | runtime | images/s | x eager fp32 | first call (s) |", "|---|---|---:|---:|---:|"]
    for r in result["runtimes"]:
        first = f"{r['compile_s']:.0f}" if "compile_s" in r else ""
        lines.append(
            f"| {r['model']} | {r['runtime']} | {r['images_per_s']:.1f} | {r['ratio']:.2f} | {first} |"
        )
    lines += ["", f"## The default training precision (`{TRAIN_ARGS}`)", ""]
    lines += [
        "| setting | matmul fp32 / bf16 GFLOP/s | auto picks | auto img/s | `no` (fp32) img/s | auto / no |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in result["training"]:
        mm = r["matmul_gflops"]
        lines.append(
            f"| {r['setting']} | {mm['fp32']:.0f} / {mm['bf16']:.1f} | {r['auto_precision']} | "
            f"{r['auto_images_per_s']:.1f} | {r['fp32_images_per_s']:.1f} | {r['ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


def _script(tmp: Path, raw: dict, name: str, args: list[str], env: dict[str, str] | None = None) -> dict:
    """Run benchmarks/<script> with ``--json`` into ``tmp``; keep its whole JSON in ``raw[name]``."""
    path = tmp / f"{name}.json"
    run([PY, *args, "--json", str(path)], env)
    raw[name] = json.loads(path.read_text())
    return raw[name]


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    """Run the four parts; their rows, and each script's whole JSON under ``raw``."""
    raw: dict[str, dict] = {}
    quick = ["--min-time", "2", "--capture-rounds", "1"] if args.quick else []
    throughput = []
    for model, size in (("galaxy_attn_vgg", 32), ("galaxy_attn_vgg_tiny_s4", 128)):
        cmd = ["benchmarks/throughput.py", "--models", model, "--sizes", str(size), *quick]
        throughput += _script(tmp, raw, f"throughput_{model}_{size}", cmd)["rows"]
    predict = {}
    for setting, env in SETTINGS:
        n = "200" if args.quick or env else "999"
        cmd = ["benchmarks/predict.py", "--n", n, "--rounds", "2"]
        got = _script(tmp, raw, f"predict_{slug(setting)}", cmd, env)
        setup = ", ".join([got["inputs"].split(" from ")[0], got["model"], got["precision"]])
        predict[setting] = {"setup": setup, "rows": got["rows"], "costs": got["stage_costs_1_thread"]}
    cmd = ["benchmarks/export.py", "--models", "galaxy_attn_vgg_tiny_s4.gz1_sdss"]
    cold = {"TORCHINDUCTOR_CACHE_DIR": str(tmp / "inductor")}  # compile from an empty cache
    runtimes = _script(tmp, raw, "export", cmd, cold)["rows"]
    training = training_check(tmp, rounds=1 if args.quick else 2)
    return {
        "throughput": throughput,
        "predict": predict,
        "runtimes": runtimes,
        "training": training,
        "raw": raw,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "speed")
    parser.add_argument(
        "--quick", action="store_true", help="shorter timings, 200 images, one training round"
    )
    args = parser.parse_args()
    from timm_galaxy_attn.device import choose_precision

    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        parts = measure(args, Path(tmp))
    result = {
        "machine": machine(),
        "command": " ".join(["python", "benchmarks/speed.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "minutes": (time.time() - t0) / 60,
        "auto": choose_precision("cpu").line(),
        **parts,
    }
    text = markdown(result)
    name = slug(f"{result['machine']['cpu_model']}_{result['machine']['cpus']}cpu")
    atomic_write(args.out / f"{name}.json", lambda p: p.write_text(json.dumps(result, indent=2) + "\n"))
    atomic_write(args.out / f"{name}.md", lambda p: p.write_text(text))
    print("\n" + text + f"\nwrote {args.out / name}.md and .json")


if __name__ == "__main__":
    main()
