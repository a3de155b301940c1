"""The README's main job, timed: its first command's training part, exactly, and what it reached.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/main_job.py [--note "shared with a training run"]

Runs ``accelerate launch --num_processes 1 --cpu training/train.py --dataset synthetic --synthetic-per-class
200 --model galaxy_attn_vgg_small --image-size 32 --epochs 6`` (the venv's ``accelerate``) into a temporary
``--output-dir`` and stores ``benchmarks/results/main_job/<machine-slug>.json``: the wall time of the whole
command (start-up included), the run's test accuracy and macro-F1 (its metrics.json), the precision it picked
(``--mixed-precision auto``), its best epoch and its own wall time, and the machine (lscpu model name, CPU
count, the flags that decide the precision), the load averages before and after, ``--threads`` (sets
``OMP_NUM_THREADS``; on a machine shared with other jobs one thread avoids OpenMP barrier stalls) and
``--note`` (say there whether the machine was shared).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import lscpu_facts, write_json

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
TRAIN_ARGS = (
    "training/train.py --dataset synthetic --synthetic-per-class 200 --model galaxy_attn_vgg_small"
    " --image-size 32 --epochs 6"
)
LAUNCH_ARGS = "--num_processes 1 --cpu"


def machine_slug(cpu_model: str, cpus: int | None) -> str:
    """A file name for a machine: its CPU model in lower case, words joined by ``_``, and its CPU count."""
    words = re.sub(r"\((r|tm)\)|cpu|processor|@.*$", " ", cpu_model.lower())
    slug = "_".join(re.findall(r"[a-z0-9]+", words)[:4]) or "unknown"
    return f"{slug}_{cpus}cpu"


def command(output_dir: Path) -> list[str]:
    """The README's training command with ``output_dir``, through this interpreter's venv ``accelerate``."""
    accelerate = str(Path(sys.executable).parent / "accelerate")
    return [
        accelerate,
        "launch",
        *LAUNCH_ARGS.split(),
        *shlex.split(TRAIN_ARGS),
        "--output-dir",
        str(output_dir),
    ]


def run_job(threads: int | None) -> tuple[float, dict[str, Any], dict[str, list[float]]]:
    """Run the main job once in a temporary folder (``OMP_NUM_THREADS=threads`` if given): its wall time
    (s), its metrics.json and the machine's load averages (1, 5, 15 min) before and after."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    with tempfile.TemporaryDirectory(prefix="main_job_") as tmp:
        out = Path(tmp) / "synthetic"
        load = {"before": [round(x, 2) for x in os.getloadavg()]}
        start = time.perf_counter()
        subprocess.run(command(out), cwd=ROOT, env=env, check=True)
        wall = time.perf_counter() - start
        load["after"] = [round(x, 2) for x in os.getloadavg()]
        return wall, json.loads((out / "metrics.json").read_text()), load


def record(
    wall: float, metrics: dict[str, Any], load: dict[str, list[float]], threads: int | None, note: str
) -> dict[str, Any]:
    """The result file's content: the command, the machine and its load, the time, the metrics, the
    precision."""
    test = metrics["test"]
    return {
        "command": f"accelerate launch {LAUNCH_ARGS} {TRAIN_ARGS} --output-dir <tmp>",
        "machine": {**lscpu_facts(FLAGS), "torch": torch.__version__},
        "omp_num_threads": threads,
        "note": note,
        "load_average_1_5_15min": load,
        "wall_time_s": round(wall, 1),
        "run_wall_time_s": round(float(metrics["wall_time_s"]), 1),
        "train_time_s": round(float(metrics["train_time_s"]), 1),
        "mixed_precision": metrics["mixed_precision"],
        "best_epoch": metrics["best_epoch"],
        "epochs": metrics["epochs"],
        "n": metrics["n"],
        "test_accuracy": test["accuracy"],
        "test_macro_f1": test["macro_f1"],
        "validation_macro_f1": metrics["validation"]["macro_f1"],
    }


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--note", default="", help="how the machine was during the run (shared, idle, ...)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "main_job", help="results folder")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the run (default: torch's own)")
    args = parser.parse_args(argv)
    wall, metrics, load = run_job(args.threads)
    result = record(wall, metrics, load, args.threads, args.note)
    machine = result["machine"]
    path = write_json(args.out / f"{machine_slug(machine['cpu_model'], machine['cpus'])}.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
