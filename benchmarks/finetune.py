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
``accuracy.score_predictions``) and ROC-AUC (bootstrap over test images). Per condition: mean +- sd over
seeds. Paired: each pretrained condition minus ``scratch`` on the same seed and test images
(``metrics.paired_bootstrap_difference``), and the mean difference over seeds with its t interval.

Kept in ``--results-dir`` (default ``benchmarks/results/finetune``): ``runs.json`` (per run: the test labels
and probabilities, validation scores, schedule, timing, command), ``results.json`` and ``results.md``. Run
folders (checkpoints, model folders) go to ``--runs-dir`` (``runs/benchmarks/finetune``, ignored by git).
Runs already in ``runs.json`` are skipped, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import score_predictions, softmax, write_json, write_text  # noqa: E402

sys.path.pop(0)

TRAIN_SCRIPT = ROOT / "training" / "train.py"
DEFAULT_DATASET = ROOT.parent / "shared" / "data" / "gz_decals_rings" / "data.parquet"
DEFAULT_MODEL = "galaxy_attn_vgg_tiny_s4.gz1_sdss"
DEFAULT_RESULTS = ROOT / "benchmarks" / "results" / "finetune"
DEFAULT_RUNS = ROOT / "runs" / "benchmarks" / "finetune"
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")
TITLES = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced acc.",
    "macro_f1": "macro-F1",
    "roc_auc": "ROC-AUC",
}


@dataclasses.dataclass(frozen=True)
class Condition:
    """One way to start and train: train.py arguments on top of the shared ones."""

    name: str
    note: str
    pretrained: bool
    extra: tuple[str, ...] = ()


CONDITIONS = {
    c.name: c
    for c in (
        Condition("scratch", "random initialisation, same architecture", False),
        Condition("finetune", "our weights, fresh head, all parameters at the recipe lr", True),
        Condition("finetune_lr0.1", "our weights, backbone lr x 0.1", True, ("--backbone-lr-scale", "0.1")),
        Condition(
            "frozen", "our weights, only head + attention estimators train", True, ("--freeze-backbone",)
        ),
    )
}


class BenchmarkError(RuntimeError):
    """An argument or stored result that cannot be used; the message says what to do."""


def load_train_module():
    """training/train.py as a module (its main runs a training in this process)."""
    spec = importlib.util.spec_from_file_location("galaxy_train_for_finetune", TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_training(train, argv: list[str], log_path: Path) -> None:
    """train.main(argv) with a fresh accelerate state, its output into ``log_path``."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            code = train.main(argv)
        except train.TrainingError as err:
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


def check_same_network(train, args: argparse.Namespace) -> dict[str, Any]:
    """``--scratch-model`` must be the architecture of ``--model`` (same parameter names and shapes).

    Returns the pretrained weights' data config: the scratch runs get the same input."""
    import timm

    pretrained = train.load_pretrained({"model": args.model, "pretrained": True, "drop_rate": None})
    scratch = timm.create_model(args.scratch_model, pretrained=False, num_classes=pretrained.num_classes)
    shapes = [{k: tuple(v.shape) for k, v in m.state_dict().items()} for m in (pretrained, scratch)]
    if shapes[0] != shapes[1]:
        raise BenchmarkError(
            f"--scratch-model {args.scratch_model!r} is not the architecture of --model {args.model!r}; give "
            "the registered name of the pretrained network (e.g. galaxy_attn_vgg_tiny_s4)."
        )
    return train.finetune_data_config(pretrained, {"image_size": None, "crop_pct": None})


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


def relative_paths(text: str) -> str:
    """Paths inside the repository relative to it, and the shared data as ``../shared``."""
    return text.replace(str(ROOT) + "/", "").replace(str(ROOT.parent) + "/", "../")


def machine() -> dict[str, Any]:
    """CPU model (lscpu), core count, torch threads: where the times were measured."""
    import torch

    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(
            line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or "unknown"
    return {
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


# ----------------------------------------------------------------------------------------------------------
# Scoring (from runs.json only: what --report-only uses)
# ----------------------------------------------------------------------------------------------------------


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """ROC-AUC of class 1's probability (two classes), else the macro one-vs-rest mean; NaN for one class."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    return float(
        roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=range(probs.shape[1]))
    )


def auc_interval(labels: np.ndarray, probs: np.ndarray, n_boot: int, seed: int = 0) -> list[float]:
    """95% percentile bootstrap interval of the ROC-AUC over resampled test images."""
    rng = np.random.default_rng(seed)
    draws = [roc_auc(labels[i], probs[i]) for i in rng.integers(0, len(labels), (n_boot, len(labels)))]
    lo, hi = np.nanquantile(np.array(draws), [0.025, 0.975])
    return [float(lo), float(hi)]


def score_run(record: dict[str, Any], n_boot: int) -> dict[str, Any]:
    """Test metrics of one stored run with their 95% intervals, checked against train.py's own numbers."""
    labels, probs = np.asarray(record["test_labels"]), np.asarray(record["test_probs"], dtype=np.float64)
    scored = score_predictions(labels, probs, record["label_names"], n_boot)
    for k, stored in record["test_stored"].items():
        if not math.isclose(scored[k], stored, abs_tol=1e-9):
            raise BenchmarkError(f"{record['condition']} seed {record['seed']}: {k} {scored[k]} != {stored}.")
    out = {k: scored[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")}
    ci = dict(scored["ci95"])
    out["roc_auc"], ci["roc_auc"] = roc_auc(labels, probs), auc_interval(labels, probs, n_boot)
    return {**out, "ci95": ci, "preds": probs.argmax(1)}


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else None)


def t_interval(diffs: Sequence[float]) -> list[float] | None:
    """95% t interval of the mean of per-seed differences (None with fewer than two seeds)."""
    from scipy.stats import t

    d = np.asarray(diffs, dtype=np.float64)
    if len(d) < 2:
        return None
    half = t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return [float(d.mean() - half), float(d.mean() + half)]


def paired(runs: dict[str, dict[int, dict]], scores: dict, name: str, n_boot: int) -> dict[str, Any] | None:
    """``name`` minus ``scratch`` on the seeds both have: per seed (paired bootstrap) and over seeds."""
    from timm_galaxy_attn.metrics import paired_bootstrap_difference

    seeds = sorted(set(runs.get(name, {})) & set(runs.get("scratch", {})))
    if not seeds:
        return None
    per_seed, over = {}, {}
    for s in seeds:
        labels = np.asarray(runs["scratch"][s]["test_labels"])
        k = len(runs["scratch"][s]["label_names"])
        a, b = scores[name][s]["preds"], scores["scratch"][s]["preds"]
        d = paired_bootstrap_difference(labels, a, b, n_boot=n_boot, num_classes=k)
        d["roc_auc"] = (scores[name][s]["roc_auc"] - scores["scratch"][s]["roc_auc"], None, None)
        per_seed[s] = {m: list(v) for m, v in d.items()}
    for m in METRICS:
        diffs = [per_seed[s][m][0] for s in seeds]
        over[m] = {"mean": mean_sd(diffs)[0], "sd": mean_sd(diffs)[1], "t95": t_interval(diffs)}
        over[m]["wins"] = int(sum(x > 0 for x in diffs))
    return {"seeds": seeds, "per_seed": per_seed, "over_seeds": over}


def summarize(stored: dict[str, Any], n_boot: int) -> dict[str, Any]:
    """Per-run scores, per-condition mean +- sd over seeds, and the paired comparisons with ``scratch``."""
    runs: dict[str, dict[int, dict]] = {}
    for r in stored["runs"]:
        runs.setdefault(r["condition"], {})[int(r["seed"])] = r
    order = sorted(runs, key=lambda c: (list(CONDITIONS).index(c) if c in CONDITIONS else len(CONDITIONS), c))
    scores = {c: {s: score_run(r, n_boot) for s, r in sorted(runs[c].items())} for c in order}
    conditions = {}
    for c, per_seed in scores.items():
        agg = {m: mean_sd([v[m] for v in per_seed.values()]) for m in METRICS}
        val = mean_sd([runs[c][s]["validation"]["macro_f1"] for s in per_seed])
        minutes = mean_sd([runs[c][s]["train_time_s"] / 60 for s in per_seed])
        conditions[c] = {
            "note": CONDITIONS[c].note if c in CONDITIONS else "",
            "seeds": sorted(per_seed),
            "mean_sd": {m: list(v) for m, v in agg.items()},
            "val_macro_f1": list(val),
            "train_minutes": list(minutes),
            "trainable_params": runs[c][min(per_seed)]["trainable_params"],
            "runs": {s: {k: v for k, v in sc.items() if k != "preds"} for s, sc in per_seed.items()},
            "best_epochs": [runs[c][s]["best_epoch"] for s in per_seed],
            "command_seed0": relative_paths(runs[c][min(per_seed)]["command"]),
        }
    comparisons = {c: paired(runs, scores, c, n_boot) for c in conditions if c != "scratch"}
    weights = sorted({r["weights_sha256"] for r in stored["runs"] if r.get("weights_sha256")})
    counts = np.bincount(stored["runs"][0]["test_labels"])
    setup = {**stored["setup"], "weights_sha256": weights, "balanced": bool(np.all(counts == counts[0]))}
    return {"setup": setup, "conditions": conditions, "paired_vs_scratch": comparisons}


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _ms(pair: Sequence[float | None]) -> str:
    return f"{_pct(pair[0])} +- {_pct(pair[1])}" if pair[1] is not None else _pct(pair[0])


def markdown(summary: dict[str, Any]) -> str:
    """results.md: the setup, the mean table, the per-run table and the paired comparisons."""
    st, conds = summary["setup"], summary["conditions"]
    mc = st["machine"]
    lines = [
        "# Fine-tuning: our weights vs training from scratch",
        "",
        f"Dataset `{st['dataset']}`: {st['n']['train']} / {st['n']['validation']} / {st['n']['test']} "
        f"train / validation / test images, classes {', '.join(st['label_names'])}; split seed "
        f"{st['split_seed']}, grouped (by `{st['group_column']}` and sky position) and stratified. "
        f"Pretrained: `{st['model']}`; from scratch: `{st['scratch_model']}` (the same network). Recipe "
        f"`default` of train.py, the same for every run; budget **{st['epochs']} epochs = "
        f"{st['optimizer_steps']} optimizer steps of batch {st['batch_size']}** per run. Input: "
        f"{st['data_config']['input_size'][-1]} px, crop {st['data_config']['crop_pct']} (the pretrained "
        "weights' data config, used for every condition). Best epoch on validation macro-F1; test scored "
        "once.",
        "",
        f"Machine: {mc['cpu']} ({mc['cpu_count']} cores), {mc['torch_threads']} torch thread(s), torch "
        f"{mc['torch']}. {st.get('machine_note', '')}",
        "",
        "Pretrained weights file (SHA-256; one value = every run started from the same weights): "
        + ", ".join(f"`{h[:16]}...`" for h in st["weights_sha256"]),
        "",
        "Mean +- sd over seeds (test, %)"
        + (
            ": the test classes are balanced, so balanced accuracy equals accuracy."
            if st.get("balanced")
            else ":"
        ),
        "",
        "| condition | seeds | " + " | ".join(TITLES[m] for m in METRICS) + " | val macro-F1 | trainable "
        "params | train min/run |",
        "|---|---|" + "---|" * (len(METRICS) + 3),
    ]
    for c, v in conds.items():
        cells = [_ms(v["mean_sd"][m]) for m in METRICS] + [_ms(v["val_macro_f1"])]
        cells += [f"{v['trainable_params']:,}", f"{v['train_minutes'][0]:.1f}"]
        lines.append(f"| {c} | {len(v['seeds'])} | " + " | ".join(cells) + " |")
    lines += ["", *(f"- `{c}`: {v['note']}" for c, v in conds.items()), ""]
    lines += ["Reproduce: `OMP_NUM_THREADS=1 python benchmarks/finetune.py`; its train.py runs (seed 0):", ""]
    lines += [f"    {v['command_seed0']}" for v in conds.values()] + [""]
    lines += _markdown_runs(conds) + _markdown_paired(summary["paired_vs_scratch"])
    return "\n".join(lines) + "\n"


def _markdown_runs(conds: dict[str, Any]) -> list[str]:
    lines = [
        "Per run (test, %, 95% bootstrap intervals):",
        "",
        "| condition | seed | best epoch | " + " | ".join(TITLES[m] for m in METRICS) + " |",
        "|---|---|---|" + "---|" * len(METRICS),
    ]
    for c, v in conds.items():
        for (s, r), best in zip(v["runs"].items(), v["best_epochs"], strict=True):
            cells = [f"{_pct(r[m])} [{_pct(r['ci95'][m][0])}, {_pct(r['ci95'][m][1])}]" for m in METRICS]
            lines.append(f"| {c} | {s} | {best} | " + " | ".join(cells) + " |")
    return lines + [""]


def _markdown_paired(comparisons: dict[str, Any]) -> list[str]:
    lines = [
        "Paired: condition minus `scratch`, same seed and test images. Per seed: the difference with its "
        "paired 95% bootstrap interval (accuracy, macro-F1). Over seeds: mean difference [95% t interval] "
        "and the number of seeds where the condition is ahead.",
        "",
        "| condition | per seed: accuracy | per seed: macro-F1 | over seeds: accuracy | over seeds: macro-F1 "
        "| over seeds: ROC-AUC |",
        "|---|---|---|---|---|---|",
    ]
    for c, cmp in comparisons.items():
        if cmp is None:
            continue
        per = [
            "; ".join(
                f"{s}: {_pct(cmp['per_seed'][s][m][0], True)} [{_pct(cmp['per_seed'][s][m][1], True)}, "
                f"{_pct(cmp['per_seed'][s][m][2], True)}]"
                for s in cmp["seeds"]
            )
            for m in ("accuracy", "macro_f1")
        ]
        over = []
        for m in ("accuracy", "macro_f1", "roc_auc"):
            o, t95 = cmp["over_seeds"][m], cmp["over_seeds"][m]["t95"]
            ci = f" [{_pct(t95[0], True)}, {_pct(t95[1], True)}]" if t95 else ""
            over.append(f"{_pct(o['mean'], True)}{ci}, ahead on {o['wins']}/{len(cmp['seeds'])}")
        lines.append(f"| {c} | " + " | ".join(per + over) + " |")
    return lines


def report(results_dir: Path, n_boot: int, quiet: bool = False) -> dict[str, Any]:
    """Rebuild results.json and results.md from runs.json."""
    path = results_dir / "runs.json"
    if not path.is_file():
        raise BenchmarkError(f"No {path}: run benchmarks/finetune.py (without --report-only) first.")
    summary = summarize(json.loads(path.read_text()), n_boot)
    write_json(results_dir / "results.json", summary)
    text = markdown(summary)
    write_text(results_dir / "results.md", text)
    if not quiet:
        print(text)
    return summary


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


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
    train = load_train_module()
    data_config = check_same_network(train, args)
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
                run_training(train, argv_run, out.with_suffix(".log"))
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
