"""A training run (joint GZ1 + Galaxy Zoo 2 votes, or its GZ1-only control) against shipped weights.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pretrain_gz.py \\
        [--run runs/pretrain_gz/tiny_s4_joint_seed0] [--shipped TAG] [--split test]

Scores the best epoch of a ``training/train.py --joint`` run (``checkpoints/best.safetensors``: it works
while the run is still going, and records which epoch it holds) and the shipped weights on a gz1_sdss split
(split seed 0, fractions 0.1 / 0.1): accuracy, macro-F1, balanced accuracy with 95% bootstrap intervals,
per-class precision / recall / F1, and the paired bootstrap difference new - shipped (1000 resamples, seed
0). ``--split validation`` (the default) is the split both were selected on, so its numbers flatter both;
the ship decision is taken there, then ``--split test`` scores the decision once. Writes
``benchmarks/results/pretrain_gz/{validation,test}.{json,md}`` with the command, machine, seed and sizes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import timm
import torch
from _common import lscpu_facts, write_report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_RUN = ROOT / "runs" / "pretrain_gz" / "tiny_s4_joint_seed0"
DEFAULT_OUT = HERE / "results" / "pretrain_gz"
SHIPPED = "galaxy_attn_vgg_tiny_s4.gz1_sdss"
METRICS = ("accuracy", "macro_f1", "balanced_accuracy")
NOTES = {
    "validation": "Both models were selected on this validation split (best epoch by macro-F1): its numbers "
    "are optimistic for both. Deciding to ship is taken here; the test split is then scored once.",
    "test": "The test split, scored once after the decision taken on validation; neither model was selected "
    "on it.",
}


def joint_model(run: Path) -> tuple[torch.nn.Module, dict[str, Any], dict[str, Any]]:
    """The run's network (built as training built it, vote head included) with its best-epoch weights
    (loaded strictly), facts about the run, and the data config it trained at."""
    from timm_galaxy_attn.training.config import TrainConfig
    from timm_galaxy_attn.training.data import resolve_data_config
    from timm_galaxy_attn.training.models import create_model

    cfg = json.loads((run / "train_config.json").read_text())
    best = run / "checkpoints" / "best.safetensors"
    if not best.is_file():
        raise SystemExit(f"{best} does not exist yet: wait for the run's first epoch to finish.")
    train_cfg = TrainConfig.from_mapping(cfg)
    model = create_model(train_cfg, train_cfg.dataset, num_classes=6)
    model.load_state_dict(safetensors.torch.load_file(str(best)))
    with safetensors.safe_open(str(best), "pt") as f:
        epoch = int(f.metadata()["epoch"])
    history = json.loads(sorted((run / "checkpoints").glob("step_*/trainer_state.json"))[-1].read_text())
    facts = {"run": str(run), "command": cfg["command"], "best_epoch": epoch, "epochs": cfg["epochs"]}
    facts["epochs_done"] = history["epoch"]
    facts["val_macro_f1_by_epoch"] = [round(h["val_macro_f1"], 4) for h in history["history"]]
    facts["wall_time_s"] = history.get("wall_time_s")
    return model.eval(), facts, resolve_data_config(train_cfg.dataset, train_cfg)


@torch.no_grad()
def split_logits(
    model: torch.nn.Module, split: str, data_config: dict[str, Any], batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of a gz1_sdss split at ``data_config``."""
    from timm_galaxy_attn.data import load_galaxy_dataset, normalize_batch, prepare_tensors

    images = load_galaxy_dataset("gz1_sdss", seed=0, val_fraction=0.1, test_fraction=0.1)[split]
    x, y = prepare_tensors(images, data_config)
    logits = [
        model(normalize_batch(x[i : i + batch_size], data_config)) for i in range(0, len(x), batch_size)
    ]
    return torch.cat(logits).double().numpy(), y.numpy().astype(np.int64)


def score(logits: np.ndarray, labels: np.ndarray, names: list[str], n_boot: int) -> dict[str, Any]:
    """Metrics with 95% bootstrap intervals and the per-class precision / recall / F1."""
    from timm_galaxy_attn.metrics import bootstrap_intervals, compute_classification_metrics

    preds = logits.argmax(1)
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    m = compute_classification_metrics(labels, preds, probs, label_names=names)
    ci = bootstrap_intervals(labels, preds, n_boot=n_boot, seed=0, num_classes=len(names))
    out: dict[str, Any] = {k: float(m[k]) for k in METRICS}
    out["ci95"] = {k: list(ci[k]) for k in METRICS}
    out["per_class"] = m["per_class"]
    return out


def markdown(result: dict[str, Any]) -> str:
    """The results table."""
    new, old, diff = result["new"], result["shipped"], result["difference_new_minus_shipped"]
    run, tag = Path(result["joint_run"]["run"]).name, result["shipped_tag"]
    lines = [
        f"# The run `{run}` vs the shipped `{tag}` (gz1_sdss {result['split_name']})",
        "",
        f"New: `{result['joint_run']['command']}`, best epoch {result['joint_run']['best_epoch']} "
        f"({result['joint_run']['epochs_done']} of {result['joint_run']['epochs']} epochs done). "
        f"Shipped: `{tag}`. n = {result['n']} {result['split_name']} galaxies; machine "
        f"{result['machine']['cpu_model']}.",
        "",
        "| metric | new (the run) | shipped | new - shipped (paired 95% CI) |",
        "|---|---|---|---|",
    ]
    for k in METRICS:
        a, b, d = new, old, diff[k]
        lines.append(
            f"| {k} | {a[k]:.3f} [{a['ci95'][k][0]:.3f}, {a['ci95'][k][1]:.3f}] | {b[k]:.3f} "
            f"[{b['ci95'][k][0]:.3f}, {b['ci95'][k][1]:.3f}] | {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}] |"
        )
    lines += ["", "| class | n | new P / R / F1 | shipped P / R / F1 |", "|---|---|---|---|"]
    for name, a in new["per_class"].items():
        b = old["per_class"][name]
        lines.append(
            f"| {name} | {a['support']} | {a['precision']:.2f} / {a['recall']:.2f} / {a['f1']:.2f} | "
            f"{b['precision']:.2f} / {b['recall']:.2f} / {b['f1']:.2f} |"
        )
    lines += ["", result["note"], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from timm_galaxy_attn.labels import GZ1_SDSS_CLASSES
    from timm_galaxy_attn.metrics import paired_bootstrap_difference

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=DEFAULT_RUN, help="the --joint run folder")
    parser.add_argument("--shipped", default=SHIPPED, help="the shipped weights' tag")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument(
        "--split", choices=("validation", "test"), default="validation", help="gz1_sdss split"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    names = list(GZ1_SDSS_CLASSES)
    new_model, facts, data_config = joint_model(args.run)
    new_logits, labels = split_logits(new_model, args.split, data_config)
    shipped = timm.create_model(args.shipped, pretrained=True).eval()
    old_logits, old_labels = split_logits(shipped, args.split, timm.data.resolve_model_data_config(shipped))
    if not np.array_equal(labels, old_labels):
        raise SystemExit(f"The two models saw different {args.split} labels; check the data configs.")
    diff = paired_bootstrap_difference(
        labels, new_logits.argmax(1), old_logits.argmax(1), n_boot=args.n_boot, seed=0, num_classes=6
    )
    result = {
        "command": "benchmarks/pretrain_gz.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": {
            **lscpu_facts(("avx2", "avx512f", "avx512_bf16", "amx_bf16")),
            "torch": torch.__version__,
        },
        "torch_threads": torch.get_num_threads(),
        "seed": 0,
        "split": f"gz1_sdss {args.split} (split seed 0, val 0.1, test 0.1)",
        "split_name": args.split,
        "n": int(len(labels)),
        "class_counts": np.bincount(labels, minlength=6).tolist(),
        "joint_run": facts,
        "shipped_tag": args.shipped,
        "new": score(new_logits, labels, names, args.n_boot),
        "shipped": score(old_logits, labels, names, args.n_boot),
        "difference_new_minus_shipped": {k: list(diff[k]) for k in METRICS},
        "bootstrap": f"{args.n_boot} resamples, seed 0, percentile 95%; the difference is paired",
        "note": NOTES[args.split],
    }
    write_report(args.out, args.split, result, markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
