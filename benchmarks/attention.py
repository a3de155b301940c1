"""What the three attention estimators look at, measured (synthetic masks, real galaxies, across epochs).

    python benchmarks/attention.py --model galaxy_attn_vgg_tiny_s4.gz1_sdss \\
        --epochs-run runs/benchmarks/accuracy/ours_tiny_128s4/seed0 --parts synthetic real epochs overfit \\
        --overfit-model galaxy_attn_vgg_tiny_s4 --overfit-run runs/benchmarks/attention/overfit_tiny128s4

(a) ``synthetic``: a galaxy_attn_vgg_small trained on the synthetic set (``training/train.py --dataset
    synthetic``; trained by this script into ``--synthetic-run`` unless that folder holds a finished run)
    looks at fresh synthetic galaxies (another generator seed) whose class-defining structure is known
    (``make_synthetic_galaxies(...).masks``). Reported: the share of each estimator's attention mass inside
    the mask, and the same share for three null maps: uniform, brightness-proportional and a centred Gaussian.
(b) ``real``: the shipped model on real gz1_sdss validation galaxies: per image, Spearman rank correlation and
    top-20% IoU of each map with the brightness map and with the centre prior (and, for scale, the two nulls
    with each other). Is an estimator more than a brightness detector?
(c) ``epochs``: one training run's checkpoints, one per epoch (kept by the synthetic run here and by
    benchmarks/accuracy.py for its "ours" and "paper" rows), re-scored on held-out galaxies (real validation
    images, or fresh synthetic ones for a synthetic run): normalised entropy of each map (1 = uniform,
    "blank") and the largest single-position mass, beside the run's train / validation accuracy. The paper
    (figures 2-3) saw the first estimator go blank once the network overfits.
(d) ``overfit``: the same measures on a run made to overfit on purpose: our recipe on a few hundred real
    training galaxies (``--max-train-samples``) for many epochs (trained by this script into
    ``--overfit-run`` unless that folder holds a finished run). Does the first estimator go blank once the
    training accuracy leaves the validation accuracy behind?

Maps are compared at the estimator's own resolution: images, masks and priors are area-averaged down to it.
Softmax maps sum to 1; sigmoid maps are divided by their sum first. Writes ``results.json`` and
``results.md`` under ``--out`` and the pictures under ``docs/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import write_report
from attention_measures import (  # noqa: F401  (area_resize ... centre_prior: faithfulness.py uses them from here)
    BLANK_ENTROPY,
    PEAKED_MASS,
    area_resize,
    as_distribution,
    brightness,
    centre_prior,
    describe,
    mass_inside,
    normalised_entropy,
    null_maps,
    peak_mass,
    spearman,
    top_iou,
)
from attention_report import markdown

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


# ----------------------------------------------------------------------------------------------------------
# Model plumbing
# ----------------------------------------------------------------------------------------------------------


def load(spec: str | Path):
    """(model in eval mode, its data config) from a model folder or a timm name with pretrained weights."""
    import timm

    from timm_galaxy_attn.catalog import load_model

    model = load_model(spec).model.eval()
    return model, timm.data.resolve_data_config(model=model)


@torch.no_grad()
def attention_maps(model, x_uint8: torch.Tensor, data_config: dict[str, Any], batch: int = 128):
    """(logits (N, K), [3 maps (N, h_i, w_i)]) for uint8 images (N, 3, S, S), fp32."""
    import timm_galaxy_attn
    from timm_galaxy_attn.data import normalize_batch

    logits, maps = [], [[], [], []]
    with timm_galaxy_attn.capture_attention(model) as captured:
        for i in range(0, len(x_uint8), batch):
            logits.append(model(normalize_batch(x_uint8[i : i + batch], data_config)).float())
            for j in range(3):
                maps[j].append(captured[j].cpu())
    return torch.cat(logits).numpy(), [torch.cat(m).numpy() for m in maps]


def class_sample(labels: np.ndarray, per_class: int, num_classes: int) -> list[int]:
    """The first ``per_class`` indices of each class (fewer when a class has fewer)."""
    out: list[int] = []
    for c in range(num_classes):
        out.extend(np.flatnonzero(labels == c)[:per_class].tolist())
    return out


def save_picture(
    images: Any,
    labels: np.ndarray,
    logits: np.ndarray,
    maps: Sequence[np.ndarray],
    names: Sequence[str],
    per_class: int,
    path: Path,
    title: str,
) -> str:
    """The attention grid of the first ``per_class`` galaxies of each class, titled true / predicted class,
    at ``path``; returns the path relative to the repository."""
    from timm_galaxy_attn.viz import prediction_titles, save_attention_grid

    idx = class_sample(labels, per_class, len(names))
    titles = prediction_titles(labels[idx], logits[idx].argmax(1), names)
    per_image = [[m[i] for m in maps] for i in idx]
    save_attention_grid([images[i] for i in idx], per_image, path, titles=titles, title=title)
    return str(path.relative_to(ROOT))


# ----------------------------------------------------------------------------------------------------------
# (a) synthetic
# ----------------------------------------------------------------------------------------------------------


def _train(run_dir: Path, what: str, args: Sequence[str]) -> None:
    """training/train.py with ``args`` into ``run_dir``, every epoch's checkpoint kept; resumes a cut run and
    does nothing for a finished one."""
    if (run_dir / "metrics.json").is_file():
        return
    cmd = [sys.executable, str(ROOT / "training" / "train.py"), *args]
    cmd += ["--keep-checkpoints", "1000", "--output-dir", str(run_dir)]
    if (run_dir / "train_config.json").is_file():
        cmd.append("--resume")
    print(f"training the {what} model:", " ".join(cmd[1:]), flush=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def train_synthetic(run_dir: Path, epochs: int, per_class: int) -> None:
    """A small galaxy_attn_vgg_small run on the synthetic set through training/train.py (resumable)."""
    args = [
        "--dataset",
        "synthetic",
        "--synthetic-per-class",
        str(per_class),
        "--model",
        "galaxy_attn_vgg_small",
    ]
    _train(
        run_dir, "synthetic", [*args, "--image-size", "32", "--epochs", str(epochs), "--num-heatmaps", "10"]
    )


def train_overfit(
    run_dir: Path,
    epochs: int,
    train_samples: int,
    image_size: int = 128,
    stem_stride: int = 4,
    model: str = "galaxy_attn_vgg_small",
    recipe: str = "default",
) -> None:
    """``model`` with ``recipe`` (ours by default, or ``'paper'``) on ``train_samples`` real gz1_sdss training
    images for ``epochs`` epochs (the benchmark's split), every epoch's checkpoint kept (resumable). Pass the
    shipped row's model and input (128 px, stem stride 4)."""
    args = [
        *("--dataset", "gz1_sdss", "--split-seed", "0", "--max-train-samples", str(train_samples)),
        *("--model", model, "--recipe", recipe, "--image-size", str(image_size)),
        *("--stem-stride", str(stem_stride), "--epochs", str(epochs)),
    ]
    _train(run_dir, "overfitting", args)


def part_synthetic(run_dir: Path, n_per_class: int, seed: int, picture: Path | None) -> dict[str, Any]:
    from timm_galaxy_attn.data import make_synthetic_galaxies

    model, data_config = load(run_dir / "model")
    size = int(data_config["input_size"][-1])
    syn = make_synthetic_galaxies(n_per_class, size, seed=seed)
    x = torch.from_numpy(syn.images).permute(0, 3, 1, 2).contiguous()
    logits, maps = attention_maps(model, x, data_config)
    run_metrics = json.loads((run_dir / "metrics.json").read_text())
    out: dict[str, Any] = {
        "run": str(run_dir),
        "run_test_accuracy": run_metrics["test"]["accuracy"],
        "images": int(len(x)),
        "generator_seed": seed,
        "accuracy_on_these": float((logits.argmax(1) == syn.labels).mean()),
        "mask_area_fraction": describe(syn.masks.reshape(len(x), -1).mean(1)),
        "estimators": {},
    }
    for j, m in enumerate(maps):
        nulls = null_maps(syn.images, m.shape[1:])
        share = mass_inside(m, syn.masks)
        entry = {"map_size": list(m.shape[1:]), "attention": describe(share)}
        for name, null in nulls.items():
            null_share = mass_inside(null, syn.masks)
            entry[name] = describe(null_share)
            entry[f"beats_{name}"] = float((share > null_share).mean())
        out["estimators"][f"attn{j + 1}"] = entry
    if picture is not None:
        title = "synthetic galaxies: image, attention 1-3"
        out["picture"] = save_picture(
            syn.images, syn.labels, logits, maps, syn.class_names, 1, picture, title
        )
    return out


# ----------------------------------------------------------------------------------------------------------
# (b) real galaxies
# ----------------------------------------------------------------------------------------------------------


def real_validation(data_config: dict[str, Any], limit: int | None):
    from timm_galaxy_attn.data import load_galaxy_dataset, prepare_tensors

    ds = load_galaxy_dataset("gz1_sdss", seed=0)["validation"]
    names = list(ds.features["label"].names)
    x, y = prepare_tensors(ds, data_config)
    if limit is not None and limit < len(y):
        x, y = x[:limit], y[:limit]
    return x, y.numpy(), names


def part_real(
    model_spec: str | Path, limit: int | None, picture: Path | None, per_class: int = 2
) -> dict[str, Any]:
    model, data_config = load(model_spec)
    x, y, names = real_validation(data_config, limit)
    logits, maps = attention_maps(model, x, data_config)
    hwc = x.permute(0, 2, 3, 1).numpy()
    out: dict[str, Any] = {"model": str(model_spec), "images": int(len(y)), "estimators": {}}
    for j, m in enumerate(maps):
        nulls = null_maps(hwc, m.shape[1:])
        entry: dict[str, Any] = {"map_size": list(m.shape[1:])}
        for name in ("brightness", "centre"):
            entry[f"spearman_{name}"] = describe(spearman(m, nulls[name]))
            entry[f"iou_top20_{name}"] = describe(top_iou(m, nulls[name]))
        entry["normalised_entropy"] = describe(normalised_entropy(m))
        out["estimators"][f"attn{j + 1}"] = entry
    size = maps[0].shape[1:]
    nulls = null_maps(hwc, size)
    out["brightness_vs_centre"] = {
        "map_size": list(size),
        "spearman": describe(spearman(nulls["brightness"], nulls["centre"])),
        "iou_top20": describe(top_iou(nulls["brightness"], nulls["centre"])),
    }
    rng = np.random.default_rng(0)
    rand = rng.random((len(y), *size))
    out["random_map_iou_top20_with_brightness"] = describe(top_iou(rand, nulls["brightness"]))
    if picture is not None:
        title = "gz1_sdss validation galaxies: image, attention 1-3"
        out["picture"] = save_picture(x, y, logits, maps, names, per_class, picture, title)
    return out


# ----------------------------------------------------------------------------------------------------------
# (c) across epochs
# ----------------------------------------------------------------------------------------------------------


def run_model(run_dir: Path, last_checkpoint: Path) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(model, data config, metrics) of a finished run; of a run still training, the model built from its
    train_config.json (a named dataset's tag) and the history of its last checkpoint."""
    if (run_dir / "metrics.json").is_file():
        model, data_config = load(run_dir / "model")
        return model, data_config, json.loads((run_dir / "metrics.json").read_text())
    import timm

    import timm_galaxy_attn  # noqa: F401  (registers the models)

    cfg = json.loads((run_dir / "train_config.json").read_text())
    state = json.loads((last_checkpoint / "trainer_state.json").read_text())
    opts = ("stem_stride", "compatibility", "normalize", "attn_position")
    kwargs = {k: cfg[k] for k in opts if cfg.get(k) is not None}
    model = timm.create_model(f"{cfg['model']}.{cfg['dataset']}", pretrained=False, **kwargs).eval()
    data_config = timm.data.resolve_data_config(model=model)
    if cfg.get("image_size"):
        data_config["input_size"] = (3, cfg["image_size"], cfg["image_size"])
    metrics = {"dataset": cfg["dataset"], "history": state["history"], "best_epoch": state["best_epoch"]}
    return model, data_config, {**metrics, "unfinished_at_epoch": state["epoch"]}


def part_epochs(run_dir: Path, limit: int | None) -> dict[str, Any]:
    import safetensors.torch

    ckpts = sorted(p for p in (run_dir / "checkpoints").glob("step_*") if p.is_dir() and "." not in p.name)
    if not ckpts:
        raise SystemExit(
            f"{run_dir}/checkpoints holds no step_* checkpoint; train with --keep-checkpoints N."
        )
    model, data_config, metrics = run_model(run_dir, ckpts[-1])
    history = {h["epoch"]: h for h in metrics["history"]}
    if metrics["dataset"] == "synthetic":  # fresh galaxies of another generator seed
        from timm_galaxy_attn.data import make_synthetic_galaxies

        syn = make_synthetic_galaxies(limit or 30, int(data_config["input_size"][-1]), seed=1234)
        x = torch.from_numpy(syn.images).permute(0, 3, 1, 2).contiguous()
    else:
        x, _, _ = real_validation(data_config, limit)
    rows = []
    for ck in ckpts:
        state = json.loads((ck / "trainer_state.json").read_text())
        if state.get("step_in_epoch"):
            continue  # a mid-epoch checkpoint
        model.load_state_dict(safetensors.torch.load_file(str(ck / "model.safetensors")))
        model.eval()
        _, maps = attention_maps(model, x, data_config)
        h = history.get(state["epoch"], {})
        row = {
            "epoch": state["epoch"],
            "train_accuracy": h.get("train_accuracy"),
            "val_accuracy": h.get("val_accuracy"),
            "val_macro_f1": h.get("val_macro_f1"),
        }
        for j, m in enumerate(maps):
            ent, peak = normalised_entropy(m), peak_mass(m)
            row[f"attn{j + 1}_entropy"] = float(ent.mean())
            row[f"attn{j + 1}_peak"] = float(peak.mean())
            row[f"attn{j + 1}_blank_share"] = float(((ent > BLANK_ENTROPY) | (peak > PEAKED_MASS)).mean())
        rows.append(row)
    run = Path(run_dir).resolve()
    return {
        "run": str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run),
        "dataset": metrics["dataset"],
        "images": int(len(x)),
        "best_epoch": metrics["best_epoch"],
        "finished": (run_dir / "metrics.json").is_file(),
        "epochs": rows,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", choices=("synthetic", "real", "epochs", "overfit"), default=None)
    p.add_argument("--model", default=None, help="(b) shipped model folder or timm name with weights")
    p.add_argument(
        "--synthetic-run", type=Path, default=ROOT / "runs" / "benchmarks" / "attention" / "synthetic_small32"
    )
    p.add_argument("--synthetic-epochs", type=int, default=8)
    p.add_argument("--synthetic-train-per-class", type=int, default=80)
    p.add_argument("--synthetic-per-class", type=int, default=30, help="(a) fresh galaxies per class")
    p.add_argument(
        "--epochs-run", type=Path, default=None, help="(c) a run folder with per-epoch checkpoints"
    )
    p.add_argument(
        "--overfit-run", type=Path, default=ROOT / "runs" / "benchmarks" / "attention" / "overfit_small128s4"
    )
    p.add_argument("--overfit-epochs", type=int, default=40)
    p.add_argument("--overfit-train-samples", type=int, default=500, help="(d) real training images used")
    p.add_argument("--overfit-image-size", type=int, default=128, help="(d) input size")
    p.add_argument("--overfit-stem-stride", type=int, default=4, choices=(1, 2, 4), help="(d) stem stride")
    p.add_argument("--overfit-model", default="galaxy_attn_vgg_small", help="(d) the shipped row's model")
    p.add_argument("--limit", type=int, default=None, help="use at most this many validation images")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "attention")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    parts = args.parts or [
        p
        for p, ok in (
            ("synthetic", True),
            ("real", args.model is not None),
            ("epochs", args.epochs_run is not None),
        )
        if ok
    ]
    path = args.out / "results.json"
    res: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    if "synthetic" in parts:
        train_synthetic(args.synthetic_run, args.synthetic_epochs, args.synthetic_train_per_class)
        res["synthetic"] = part_synthetic(
            args.synthetic_run, args.synthetic_per_class, seed=1234, picture=DOCS / "attention_synthetic.png"
        )
    if "real" in parts:
        if args.model is None:
            raise SystemExit("--parts real needs --model (the shipped folder, e.g. hub/<name>)")
        res["real"] = part_real(args.model, args.limit, picture=DOCS / "attention_gz1_sdss.png")
    if "epochs" in parts:
        if args.epochs_run is None:
            raise SystemExit("--parts epochs needs --epochs-run RUN_DIR")
        res["epochs"] = part_epochs(args.epochs_run, args.limit)
    if "overfit" in parts:
        train_overfit(
            args.overfit_run,
            args.overfit_epochs,
            args.overfit_train_samples,
            args.overfit_image_size,
            args.overfit_stem_stride,
            args.overfit_model,
        )
        res["overfit"] = part_epochs(args.overfit_run, args.limit)
    write_report(args.out, "results", res, markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
