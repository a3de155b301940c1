"""Are the attention maps faithful? Referees' tests on the shipped model, and the paper's overfitting claim.

    python benchmarks/faithfulness.py --model galaxy_attn_vgg_tiny_s4.gz1_sdss   # or a model folder

(1) ``deletion``: deletion / insertion AUC (Petsiuk et al. 2018) of attn1-3 (upsampled bilinearly to the
    input), Grad-CAM at conv 13, a random map (32x32 cells), the brightness map and a centred Gaussian, on
    gz1_sdss validation galaxies (split seed 0). Score: softmax probability of the class predicted on the
    intact image. Removed pixels take the per-image, per-band median (the sky level).
(2) ``randomisation``: cascading re-initialisation (Adebayo et al. 2018), classifier first, then the
    estimators, then block 6 to block 1, once per seed (``SEEDS``); |Spearman| of each map with the trained
    model's map, per seed. ``road``: ROAD (Rong et al. 2022; noisy linear imputation, MoRF and LeRF) for the
    maps of (1), faithfulness_road.py.
(3) ``pointing``: pointing game (Zhang et al. 2016) and mass inside the mask on synthetic galaxies with known
    class-defining masks, model of benchmarks/attention.py part (a).
(4) ``decision``: each attended vector replaced by the uniform average of its local features: logit change of
    the predicted class, prediction flips and accuracy, per true class.
(5) ``paper``: ``training/train.py --recipe paper`` (SGD, no augmentation) on 500 training galaxies, tiny
    network at 128 px; per-epoch blank share of each estimator (benchmarks/attention.py part (c)).
Grad-CAM is written here (faithfulness_lib.grad_cam: a forward hook and autograd.grad). Every mean comes
with a 95% bootstrap interval over images. Writes faithfulness.json / .md under ``--out``, the PNGs and
the generated block of docs/faithfulness.md (faithfulness_findings.py) in ``--docs``; ``--report-only``
rewrites the tables, the figures from the curves and that block from the stored JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attention as att  # sibling scripts: python benchmarks/<script>.py puts this folder on sys.path
import faithfulness_io as fio
import faithfulness_lib as lib
import faithfulness_road as road
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ESTIMATORS = ("attn1", "attn2", "attn3")
RANDOM_CELLS = 32  # the random baseline map: uniform noise on a 32x32 grid (attn1's), upsampled like attn1
CASCADE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("classifier (fc)", ("fc",)),
    ("estimators (u of attn1-3, projector)", ("attn1", "attn2", "attn3", "projector")),
    ("block 6 + dense (g)", ("stages.5", "dense")),
    ("block 5 (conv 11-13)", ("stages.4",)),
    ("block 4 (conv 8-10)", ("stages.3",)),
    ("block 3 (conv 5-7)", ("stages.2",)),
    ("block 2 (conv 3-4)", ("stages.1",)),
    ("block 1 (conv 1-2)", ("stages.0",)),
)
SEEDS = (0, 1, 2, 3, 4)  # re-initialisation seeds of the cascade


def _rel(path: Path) -> str:
    """``path`` relative to the repository when inside it (for the report)."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def predictor(model: torch.nn.Module, data_config: dict[str, Any], batch: int = 128) -> Callable:
    """uint8 (N, 3, S, S) -> softmax probabilities (N, K), fp32, in batches."""
    from timm_galaxy_attn.data import normalize_batch

    @torch.no_grad()
    def predict(x: torch.Tensor) -> torch.Tensor:
        chunks = [model(normalize_batch(x[i : i + batch], data_config)) for i in range(0, len(x), batch)]
        return torch.cat(chunks).float().softmax(-1)

    return predict


def explain(model, x: torch.Tensor, data_config: dict[str, Any], classes: torch.Tensor | None = None):
    """(logits, {attn1..3, gradcam, gradcam10: (N, h, w) maps}) for ``classes`` (default: the predicted ones).
    Grad-CAM at conv 13 (block 5's output, the last conv stage that reaches the logits) and at conv 10
    (block 4's output, the stage whose attended vector carries the decision)."""
    from timm_galaxy_attn.data import normalize_batch

    logits, maps = att.attention_maps(model, x, data_config)
    cls = torch.as_tensor(logits.argmax(1) if classes is None else classes)
    out = dict(zip(ESTIMATORS, maps, strict=True))
    xn = normalize_batch(x, data_config)
    out["gradcam"] = lib.grad_cam(model, model.stages[4], xn, cls)
    out["gradcam10"] = lib.grad_cam(model, model.stages[3], xn, cls)
    return logits, out


def baselines(x: torch.Tensor, seed: int = 0) -> dict[str, np.ndarray]:
    """Random (32x32 cells), brightness (mean of the bands, full resolution) and centred-Gaussian maps."""
    n, size = len(x), x.shape[-1]
    hwc = x.permute(0, 2, 3, 1).numpy()
    return {
        "random": np.random.default_rng(seed).random((n, RANDOM_CELLS, RANDOM_CELLS)),
        "brightness": att.brightness(hwc),
        "centre": att.centre_prior(n, (size, size)),
    }


def part_deletion(model, data_config: dict[str, Any], x: torch.Tensor, steps: int) -> dict[str, Any]:
    from timm_galaxy_attn.data import normalize_batch

    logits, maps = explain(model, x, data_config)
    maps.update(baselines(x))
    classes = torch.as_tensor(logits.argmax(1))
    predict, sky = predictor(model, data_config), lib.sky_baseline(x)
    out: dict[str, Any] = {"images": len(x), "steps": steps, "maps": {}, "paired": {}}
    aucs = {}
    for name, m in maps.items():
        dele, ins = lib.perturbation_curves(predict, x, m, classes, sky, steps)
        aucs[name] = (lib.curve_auc(dele), lib.curve_auc(ins))
        out["maps"][name] = {
            "map_size": list(m.shape[1:]),
            "deletion_auc": lib.bootstrap_mean(aucs[name][0]),
            "insertion_auc": lib.bootstrap_mean(aucs[name][1]),
            "deletion_curve": dele.mean(0).tolist(),
            "insertion_curve": ins.mean(0).tolist(),
        }
    for name in (*ESTIMATORS, "gradcam", "gradcam10"):
        for ref in ("random", "brightness", "centre", "gradcam"):
            if ref != name:
                out["paired"][f"{name}-{ref}"] = {
                    kind: lib.bootstrap_mean(aucs[name][k] - aucs[ref][k])
                    for k, kind in enumerate(("deletion", "insertion"))
                }
    out["sky_probability"] = lib.bootstrap_mean(predict(sky).gather(1, classes.view(-1, 1)).numpy())
    # Why conv 13 and not block 6: with 'pc' + softmax, g (block 6) cancels, so its Grad-CAM is all zeros.
    xn = normalize_batch(x[:16], data_config)
    out["gradcam_block6_max"] = float(lib.grad_cam(model, model.stages[5], xn, classes[:16]).max())
    return out


def part_randomisation(
    model, data_config: dict[str, Any], x: torch.Tensor, seeds: Sequence[int] = SEEDS, n_steps: int = 99
) -> dict[str, Any]:
    """The cascade (its first ``n_steps`` steps) once per re-initialisation seed: per step and map, the
    per-seed mean |Spearman| of the map with the trained model's map (bootstrap interval over images) and
    the signed mean."""
    cascade = CASCADE[:n_steps]
    logits, trained = explain(model, x, data_config)
    classes = logits.argmax(1)  # Grad-CAM keeps the trained model's predicted class at every step
    steps: list[dict[str, Any]] = [{"step": name, "same_prediction": []} for name, _ in cascade]
    for seed in seeds:
        for row, (_, randomised) in zip(steps, lib.cascade(model, cascade, seed), strict=True):
            new_logits, maps = explain(randomised, x, data_config, classes)
            row["same_prediction"].append(float((new_logits.argmax(1) == classes).mean()))
            for key, m in maps.items():
                rho = np.asarray(att.spearman(trained[key], m), dtype=np.float64)
                cell = row.setdefault(key, {"abs": [], "signed": []})
                cell["abs"].append(lib.bootstrap_mean(np.abs(rho)))
                cell["signed"].append(float(rho.mean()))
    return {"images": len(x), "seeds": list(seeds), "measure": "|Spearman| per image", "steps": steps}


def part_road(model, data_config: dict[str, Any], x: torch.Tensor, fractions: Sequence[float]) -> dict:
    """ROAD (noisy linear imputation) MoRF / LeRF for the deletion part's maps (faithfulness_road)."""
    logits, maps = explain(model, x, data_config)
    maps.update(baselines(x))
    predict = road.float_predictor(model, data_config)
    refs = ("random", "brightness", "centre", "gradcam")
    explainers = (*ESTIMATORS, "gradcam")
    maps = {k: maps[k] for k in (*explainers, "random", "brightness", "centre")}
    return road.part_road(predict, x, maps, torch.as_tensor(logits.argmax(1)), explainers, refs, fractions)


def part_pointing(run_dir: Path, n_per_class: int, seed: int, tolerance: int = 1) -> dict[str, Any]:
    from timm_galaxy_attn.data import make_synthetic_galaxies

    model, data_config = att.load(run_dir / "model")
    syn = make_synthetic_galaxies(n_per_class, int(data_config["input_size"][-1]), seed=seed)
    x = torch.from_numpy(syn.images).permute(0, 3, 1, 2).contiguous()
    logits, maps = explain(model, x, data_config)
    maps.update(baselines(x))
    out: dict[str, Any] = {
        "run": _rel(run_dir),
        "images": len(x),
        "generator_seed": seed,
        "tolerance_px": tolerance,
    }
    out["accuracy_on_these"] = float((logits.argmax(1) == syn.labels).mean())
    out["mask_area"] = lib.bootstrap_mean(syn.masks.reshape(len(x), -1).mean(1))
    out["maps"] = {
        name: {
            "map_size": list(m.shape[1:]),
            "pointing_hit_rate": lib.bootstrap_mean(lib.pointing_hits(m, syn.masks, tolerance)),
            "mass_inside_mask": lib.bootstrap_mean(att.mass_inside(m, syn.masks)),
        }
        for name, m in maps.items()
    }
    return out


@torch.no_grad()
def part_decision(
    model, data_config: dict[str, Any], x: torch.Tensor, y: np.ndarray, names
) -> dict[str, Any]:
    from timm_galaxy_attn.data import normalize_batch

    xn = normalize_batch(x, data_config)

    def run() -> np.ndarray:
        return torch.cat([model(xn[i : i + 128]) for i in range(0, len(xn), 128)]).float().numpy()

    base = run()
    pred = base.argmax(1)
    out: dict[str, Any] = {"images": len(x), "accuracy": float((pred == y).mean()), "ablations": {}}
    for label, which in [(e, (e,)) for e in ESTIMATORS] + [("all three", ESTIMATORS)]:
        with lib.uniform_attention(model, which):
            new = run()
        dlogit = new[np.arange(len(y)), pred] - base[np.arange(len(y)), pred]
        flips = new.argmax(1) != pred
        entry: dict[str, Any] = {
            "logit_change": lib.bootstrap_mean(dlogit),
            "flip_rate": lib.bootstrap_mean(flips),
            "accuracy_after": float((new.argmax(1) == y).mean()),
            "accuracy_change": lib.bootstrap_mean((new.argmax(1) == y).astype(float) - (pred == y)),
            "per_class": {},
        }
        for c, cname in enumerate(names):
            sel = y == c
            if sel.any():
                entry["per_class"][cname] = {
                    "n": int(sel.sum()),
                    "logit_change": float(dlogit[sel].mean()),
                    "flip_rate": float(flips[sel].mean()),
                    "accuracy": float((pred[sel] == c).mean()),
                    "accuracy_after": float((new.argmax(1)[sel] == c).mean()),
                }
        out["ablations"][label] = entry
    return out


def train_run(run_dir: Path, args: Sequence[str], in_process: bool = False) -> None:
    """training/train.py with ``args`` into ``run_dir``, every epoch kept (skipped when finished); in this
    process (no second start-up: for the quick run) or in a child process."""
    if (run_dir / "metrics.json").is_file():
        return
    argv = [*args, "--keep-checkpoints", "1000", "--output-dir", str(run_dir)]
    argv += ["--resume"] if (run_dir / "train_config.json").is_file() else []
    if in_process:
        runpy.run_path(str(ROOT / "training" / "train.py"))["main"](argv)
        return
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    cmd = [sys.executable, str(ROOT / "training" / "train.py"), *argv]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def part_paper(run_dir: Path, limit: int | None) -> dict[str, Any]:
    """Per-epoch blank shares (benchmarks/attention.py part (c)) beside the run's train / val accuracy."""
    res = att.part_epochs(run_dir, limit)
    res["recipe"] = json.loads((run_dir / "train_config.json").read_text())["recipe"]
    return res


def pictures(model, data_config, x: torch.Tensor, y: np.ndarray, names, docs: Path) -> list[str]:
    from PIL import Image

    from timm_galaxy_attn.viz import prediction_titles, save_map_grid

    idx = att.class_sample(y, 1, len(names))
    logits, maps = explain(model, x[idx], data_config)
    rows = [[maps[k][i] for k in (*ESTIMATORS, "gradcam", "gradcam10")] for i in range(len(idx))]
    titles = prediction_titles(y[idx], logits.argmax(1), names)
    labels = (
        "input",
        "attn 1 (conv7)",
        "attn 2 (conv10)",
        "attn 3 (conv13)",
        "Grad-CAM conv13",
        "Grad-CAM conv10",
    )
    grid = save_map_grid(x[idx], rows, docs / "faithfulness_maps.png", labels=labels, titles=titles)
    Image.open(grid).quantize(128, method=Image.Quantize.MEDIANCUT).save(grid, optimize=True)  # small PNG
    return [_rel(grid), _rel(docs / "faithfulness_curves.png")]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    runs = ROOT / "runs" / "benchmarks" / "attention"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parts = ("deletion", "randomisation", "road", "pointing", "decision", "paper", "pictures")
    p.add_argument("--parts", nargs="+", choices=parts, default=list(parts))
    p.add_argument("--model", default="galaxy_attn_vgg_tiny_s4.gz1_sdss", help="timm name or model folder")
    p.add_argument("--images", type=int, default=256, help="validation images for (1)")
    p.add_argument("--decision-images", type=int, default=None, help="validation images for (4); all")
    p.add_argument("--random-images", type=int, default=128, help="validation images for (2)")
    p.add_argument("--cascade-steps", type=int, default=len(CASCADE), help="(2) the first N cascade steps")
    p.add_argument("--road-images", type=int, default=64, help="validation images for ROAD")
    p.add_argument("--road-fractions", type=float, nargs="+", default=list(road.FRACTIONS))
    p.add_argument("--report-only", action="store_true", help="rewrite the tables and the doc from the JSON")
    p.add_argument("--steps", type=int, default=16, help="deletion / insertion steps")
    p.add_argument("--synthetic-run", type=Path, default=runs / "synthetic_small32", help="(3) its model")
    p.add_argument("--synthetic-per-class", type=int, default=30, help="(3) fresh galaxies per class")
    p.add_argument("--paper-run", type=Path, default=runs / "paper_tiny128s4")
    p.add_argument("--paper-epochs", type=int, default=100)
    p.add_argument("--paper-train-samples", type=int, default=500)
    p.add_argument("--paper-limit", type=int, default=200, help="(5) validation images re-scored per epoch")
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes and a 2-epoch synthetic run (a smoke test)"
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "attention")
    p.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.steps, args.synthetic_per_class, args.paper_limit = 8, 4, 2, 8
        args.random_images, args.road_images, args.road_fractions = 4, 3, [0.25, 0.75]
        args.synthetic_run = args.paper_run = args.out / "quick_run"
    return args


def _train_needed(args: argparse.Namespace) -> None:
    """Train the synthetic (3) and paper-recipe (5) runs that are not finished yet."""
    if args.quick:
        quick = ["--dataset", "synthetic", "--synthetic-per-class", "3", "--model", "galaxy_attn_vgg_small"]
        quick += ["--image-size", "32", "--recipe", "paper", "--epochs", "2", "--batch-size", "8"]
        train_run(args.paper_run, [*quick, "--num-heatmaps", "2"], in_process=True)
        return
    if "pointing" in args.parts:
        att.train_synthetic(args.synthetic_run, 8, 80)
    if "paper" in args.parts:
        att.train_overfit(
            args.paper_run,
            args.paper_epochs,
            args.paper_train_samples,
            128,
            4,
            "galaxy_attn_vgg_tiny_s4",
            "paper",
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        print(fio.write_results(args, {}))
        return 0
    _train_needed(args)
    res: dict[str, Any] = {}
    if {"deletion", "randomisation", "road", "decision", "pictures"} & set(args.parts):
        torch.manual_seed(0)
        model, dc = att.load(args.model)
        x, y, names, total = fio.validation(dc, fio.images_needed(args))
        res["model"], res["validation_images"] = str(args.model), total
        res["normalisation"] = {"mean": list(dc["mean"]), "std": list(dc["std"])}
    if "deletion" in args.parts:
        res["deletion"] = part_deletion(model, dc, x[: args.images], args.steps)
    if "randomisation" in args.parts:
        res["randomisation"] = part_randomisation(
            model, dc, x[: args.random_images], SEEDS, args.cascade_steps
        )
    if "road" in args.parts:
        res["road"] = part_road(model, dc, x[: args.road_images], args.road_fractions)
    if "pointing" in args.parts:
        res["pointing"] = part_pointing(args.synthetic_run, args.synthetic_per_class, seed=1234)
    if "decision" in args.parts:
        res["decision"] = part_decision(
            model, dc, x[: args.decision_images], y[: args.decision_images], names
        )
    if "paper" in args.parts:
        res["paper"] = part_paper(args.paper_run, args.paper_limit)
    if "pictures" in args.parts:
        res["pictures"] = pictures(model, dc, x, y, names, args.docs)
    real = [k for k in ("deletion", "randomisation", "road", "decision", "pictures") if k in res]
    res["provenance"] = {k: {"model": res["model"], **res["normalisation"]} for k in real}
    args.out.mkdir(parents=True, exist_ok=True)
    print(fio.write_results(args, res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
