"""Fine-tuning on a small real set: our trained weights against training from scratch, several seeds.

    OMP_NUM_THREADS=1 python benchmarks/finetune.py                 # gz_decals_rings, 4 conditions x 5 seeds
    python benchmarks/finetune.py --report-only                     # rebuild results.md / results.json
    python benchmarks/finetune.py --quick --dataset X.parquet ...   # the pipeline end to end in seconds

Every run is ``training/train.py`` (called in this process, one after the other) on the same split of
the same set (``--split-seed``: grouped by ``--group-column`` and by sky position, stratified, 60/20/20 by
default) with the same recipe and the same budget in epochs (so in optimizer steps). The conditions differ
only in where the weights start and what trains:

- ``scratch``: the same architecture (``--scratch-model``, default the tag's architecture), random weights;
- ``finetune``: ``--pretrained`` from ``--model`` (a fresh classifier), every parameter at the recipe's lr;
- ``finetune_lr0.1``: the same with ``--backbone-lr-scale 0.1`` (pretrained non-head parameters 10x slower);
- ``frozen``: ``--freeze-backbone`` (the classifier and the attention estimators train, nothing else).

The best epoch is chosen on validation macro-F1 inside each run and test is scored once. Per run: accuracy,
balanced accuracy and macro-F1 with 95% bootstrap intervals (``metrics.bootstrap_intervals``, through
``accuracy_scores.score_predictions``) and ROC-AUC (bootstrap over test images). Per condition: mean +- sd
over seeds. Paired: each pretrained condition minus ``scratch`` on the same seed and test images
(``metrics.paired_bootstrap_difference``), and the mean difference over seeds with its t interval.

Kept in ``--results-dir`` (default ``benchmarks/results/finetune``): ``runs.json`` (per run: the test labels
and probabilities, validation scores, schedule, timing, command), ``results.json`` and ``results.md``. Run
folders (checkpoints, model folders) go to ``--runs-dir`` (``runs/benchmarks/finetune``, ignored by git).
Runs already in ``runs.json`` are skipped, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import runpy
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import lscpu_facts, write_json
from accuracy_scores import softmax
from finetune_conditions import CONDITIONS, ROOT, BenchmarkError, Condition, relative_paths
from finetune_report import report

TRAIN_SCRIPT = ROOT / "training" / "train.py"
DEFAULT_DATASET = ROOT.parent / "shared" / "data" / "gz_decals_rings" / "data.parquet"
DEFAULT_MODEL = "galaxy_attn_vgg_tiny_s4.gz1_sdss"
DEFAULT_RESULTS = ROOT / "benchmarks" / "results" / "finetune"
DEFAULT_RUNS = ROOT / "runs" / "benchmarks" / "finetune"


def run_training(argv: list[str], log_path: Path) -> None:
    """training/train.py's main(argv) in this process with a fresh accelerate state, its output into
    ``log_path``."""
    from accelerate.state import AcceleratorState, GradientState

    from timm_galaxy_attn.training import TrainingError

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            code = runpy.run_path(str(TRAIN_SCRIPT))["main"](argv)
        except TrainingError as err:
            print(f"error: {err}")
            code = 2
    if code != 0:
        tail = log_path.read_text()[-2000:]
        raise BenchmarkError(f"train.py {' '.join(argv)} failed (exit {code}):\n{tail}")


def train_argv(
    args: argparse.Namespace, cond: Condition, seed: int, out: Path, data_config: dict[str, Any]
) -> list[str]:
    """The train.py command line of one run; scratch runs get the pretrained data config as flags."""
    model = args.model if cond.pretrained else args.scratch_model
    argv = ["--dataset", str(args.dataset), "--model", model]
    if cond.pretrained:
        argv.append("--pretrained")
    else:
        argv += [
            "--image-size",
            str(data_config["input_size"][-1]),
            "--crop-pct",
            str(data_config["crop_pct"]),
        ]
        argv += ["--mean", *map(str, data_config["mean"]), "--std", *map(str, data_config["std"])]
    argv += [
        *cond.extra,
        "--epochs",
        str(args.epochs),
        "--seed",
        str(seed),
        "--split-seed",
        str(args.split_seed),
    ]
    argv += ["--val-fraction", str(args.val_fraction), "--test-fraction", str(args.test_fraction)]
    if args.group_column:
        argv += ["--group-column", args.group_column]
    argv += ["--num-heatmaps", "0", "--output-dir", str(out)]
    if (out / "train_config.json").is_file():
        argv.append("--resume")
    return argv


def check_same_network(args: argparse.Namespace) -> dict[str, Any]:
    """``--scratch-model`` must be the architecture of ``--model`` (same parameter names and shapes).

    Returns the pretrained weights' data config: the scratch runs get the same input."""
    import timm

    from timm_galaxy_attn.training import TrainConfig, finetune_data_config, load_pretrained

    cfg = TrainConfig(model=args.model, pretrained=True, image_size=None)  # the weights' own input
    pretrained = load_pretrained(cfg)
    scratch = timm.create_model(args.scratch_model, pretrained=False, num_classes=pretrained.num_classes)
    shapes = [{k: tuple(v.shape) for k, v in m.state_dict().items()} for m in (pretrained, scratch)]
    if shapes[0] != shapes[1]:
        raise BenchmarkError(
            f"--scratch-model {args.scratch_model!r} is not the architecture of --model {args.model!r}; give "
            "the registered name of the pretrained network (e.g. galaxy_attn_vgg_tiny_s4)."
        )
    return finetune_data_config(pretrained, cfg)


def weights_sha256(model_name: str) -> str | None:
    """SHA-256 of the pretrained weights file: a tag's packaged file or a folder's model.safetensors."""
    import hashlib

    import timm

    if model_name.startswith("local-dir:"):
        path = Path(model_name.removeprefix("local-dir:")) / "model.safetensors"
    else:
        cfg = timm.models.get_pretrained_cfg(model_name)
        path = Path(cfg.file) if cfg is not None and cfg.file else None
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_record(cond: Condition, seed: int, out: Path, argv: list[str]) -> dict[str, Any]:
    """What runs.json keeps of one finished run (no weights): test labels and probabilities, schedule."""
    metrics = json.loads((out / "metrics.json").read_text())
    with np.load(out / "predictions.npz") as f:
        labels, logits = f["test_labels"], f["test_logits"]
    steps_per_epoch = math.ceil(metrics["n"]["train"] / metrics["config"]["batch_size"])
    return {
        "condition": cond.name,
        "seed": seed,
        "label_names": metrics["label_names"],
        "epochs": metrics["epochs"],
        "optimizer_steps": metrics["epochs"] * steps_per_epoch,
        "batch_size": metrics["config"]["batch_size"],
        "best_epoch": metrics["best_epoch"],
        "n": metrics["n"],
        "train_time_s": metrics["train_time_s"],
        "wall_time_s": metrics["wall_time_s"],
        "images_per_s": metrics["images_per_s"],
        "trainable_params": (metrics.get("finetune") or {}).get("trainable_params", metrics["num_params"]),
        "num_params": metrics["num_params"],
        "data_config": metrics["data_config"],
        "validation": {k: metrics["validation"][k] for k in ("accuracy", "balanced_accuracy", "macro_f1")},
        "test_stored": {k: metrics["test"][k] for k in ("accuracy", "balanced_accuracy", "macro_f1")},
        "test_labels": labels.astype(int).tolist(),
        "test_probs": np.round(softmax(logits), 6).tolist(),
        "command": relative_paths("train.py " + " ".join(argv)),
    }


def machine() -> dict[str, Any]:
    """CPU model (lscpu), core count, torch threads: where the times were measured."""
    import torch

    model = lscpu_facts(())["cpu_model"]
    return {
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--dataset", type=Path, default=DEFAULT_DATASET, help="parquet file or folder (image + label)"
    )
    p.add_argument("--group-column", default="iauname", help="split group key ('' for none)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="the pretrained weights: a tag or local-dir:FOLDER")
    p.add_argument("--scratch-model", default=None, help="architecture for 'scratch' (default: --model's)")
    p.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="training seeds (default 0-4)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run, every condition (default 20)")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument(
        "--results-dir", type=Path, default=None, help=f"default {DEFAULT_RESULTS.relative_to(ROOT)}"
    )
    p.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS, help="run folders (ignored by git)")
    p.add_argument("--n-boot", type=int, default=None, help="bootstrap resamples (default 1000)")
    p.add_argument("--quick", action="store_true", help="1 epoch, seed 0, 200 resamples: the pipeline only")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from runs.json")
    p.add_argument(
        "--machine-note", default="", help="a sentence about the machine's load, kept in the report"
    )
    args = p.parse_args(argv)
    args.seeds = args.seeds or ([0] if args.quick else [0, 1, 2, 3, 4])
    args.epochs = args.epochs or (1 if args.quick else 20)
    args.n_boot = args.n_boot or (200 if args.quick else 1000)
    args.results_dir = args.results_dir or (
        DEFAULT_RESULTS.with_name("finetune_quick") if args.quick else DEFAULT_RESULTS
    )
    args.scratch_model = args.scratch_model or args.model.split(".")[0]
    return args


def setup_record(args: argparse.Namespace, first: dict[str, Any]) -> dict[str, Any]:
    """The shared setup of every run (written once into runs.json; a rerun must match it)."""
    return {
        "dataset": relative_paths(str(args.dataset)),
        "model": args.model,
        "scratch_model": args.scratch_model,
        "group_column": args.group_column or None,
        "split_seed": args.split_seed,
        "val_fraction": args.val_fraction,
        "test_fraction": args.test_fraction,
        "epochs": args.epochs,
        "optimizer_steps": first["optimizer_steps"],
        "batch_size": first["batch_size"],
        "n": first["n"],
        "label_names": first["label_names"],
        "data_config": first["data_config"],
        "machine": machine(),
        "machine_note": args.machine_note,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        report(args.results_dir, args.n_boot)
        return 0
    data_config = check_same_network(args)
    path = args.results_dir / "runs.json"
    stored = json.loads(path.read_text()) if path.is_file() else {"setup": None, "runs": []}
    done = {(r["condition"], r["seed"]) for r in stored["runs"]}
    for seed in args.seeds:  # seed-major: an interrupted benchmark still has every condition on its seeds
        for name in args.conditions:
            if (name, seed) in done:
                print(f"[{name} seed {seed}] stored: skipped")
                continue
            out = args.runs_dir / args.results_dir.name / name / f"seed{seed}"
            argv_run = train_argv(args, CONDITIONS[name], seed, out, data_config)
            t0 = time.time()
            sha = weights_sha256(args.model) if CONDITIONS[name].pretrained else None
            if not (out / "metrics.json").is_file():
                run_training(argv_run, out.with_suffix(".log"))
            record = {**run_record(CONDITIONS[name], seed, out, argv_run), "weights_sha256": sha}
            setup = setup_record(args, record)
            if stored["setup"] is not None and _shared(stored["setup"]) != _shared(setup):
                raise BenchmarkError(f"{path} holds runs of another setup; use another --results-dir.")
            stored["setup"] = stored["setup"] or setup
            stored["runs"].append(record)
            write_json(path, stored)
            acc = record["test_stored"]["accuracy"]
            print(f"[{name} seed {seed}] {time.time() - t0:.0f} s; test accuracy {acc:.3f}", flush=True)
    report(args.results_dir, args.n_boot)
    return 0


def _shared(setup: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in setup.items() if k not in ("machine", "machine_note")}


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
