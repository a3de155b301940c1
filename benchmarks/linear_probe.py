"""Linear probe on frozen embeddings: a logistic regression on each model's features, on a new real task.

    OMP_NUM_THREADS=1 python benchmarks/linear_probe.py                     # gz_decals_rings, 5 split seeds
    python benchmarks/linear_probe.py --models ref=galaxy_attn_vgg_tiny_s4.gz_sdss mine=local-dir:RUN/model

The sanity check Zoobot's users ask of pretrained weights. Each model embeds the 470 Galaxy Zoo DECaLS ring /
not-ring galaxies of ``../shared/data/gz_decals_rings`` once, frozen, at its own data config: the
classifier's input (``forward_head(pre_logits=True)``; for the attention networks the three attended
vectors). Floors: the same network with random weights, and raw pixels (the 128 px crop the tiny network
reads, averaged 4 x 4 to 32 px). Per split seed (the grouped, stratified 60 / 20 / 20 split of
``benchmarks/finetune.py``: by ``iauname`` and sky position), the features are standardised on train,
scikit-learn's ``LogisticRegression`` takes the ``C`` of ``C_GRID`` best on validation ROC-AUC, and test is
scored once: ROC-AUC (with a 95% bootstrap interval over test galaxies) and accuracy. Per model: mean +- sd
over the seeds; against the reference model (the first): the per-seed difference and its 95% t interval.

Writes ``results.json`` (per seed and model: test labels and probabilities too) and ``results.md`` into
``--out-dir`` (default ``benchmarks/results/linear_probe``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from _common import lscpu_facts, write_report
from finetune_report import auc_interval, mean_sd, roc_auc, t_interval

import timm_galaxy_attn  # noqa: F401  (registers the models)
from timm_galaxy_attn.data import load_galaxy_dataset, normalize_batch, prepare_tensors

HERE = Path(__file__).resolve().parent
DATASET = HERE.parent.parent / "shared" / "data" / "gz_decals_rings" / "data.parquet"
DEFAULT_MODELS = {
    "tiny_gz_sdss": "galaxy_attn_vgg_tiny_s4.gz_sdss",
    "tiny_gz1_sdss": "galaxy_attn_vgg_tiny_s4.gz1_sdss",
    "tiny_random_init": "galaxy_attn_vgg_tiny_s4",
}
PIXELS = "pixels_32px"
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
N_BOOT = 1000


def load_model(spec: str) -> torch.nn.Module:
    """A trained model (a tag, ``local-dir:``, ``hf-hub:``), or an untagged architecture with random weights
    (seed 0) and the shipped tiny network's data config."""
    if "." in spec or ":" in spec:
        return timm.create_model(spec, pretrained=True).eval()
    torch.manual_seed(0)
    reference = timm.create_model("galaxy_attn_vgg_tiny_s4.gz1_sdss", pretrained=False)
    return timm.create_model(spec, pretrained=False, pretrained_cfg=reference.pretrained_cfg).eval()


@torch.no_grad()
def embed(model: torch.nn.Module, dataset, batch_size: int = 128) -> np.ndarray:
    """The frozen pre-logits features of every image of ``dataset`` at the model's data config."""
    config = timm.data.resolve_model_data_config(model)
    x, _ = prepare_tensors(dataset, config)
    out = []
    for i in range(0, len(x), batch_size):
        features = model.forward_features(normalize_batch(x[i : i + batch_size], config))
        out.append(model.forward_head(features, pre_logits=True).float())
    return torch.cat(out).numpy().astype(np.float64)


def pixels(dataset) -> np.ndarray:
    """The 128 px crop of the tiny network's data config, in [0, 1], averaged 4 x 4 to 32 px."""
    config = timm.data.resolve_model_data_config(load_model("galaxy_attn_vgg_tiny_s4.gz1_sdss"))
    x, _ = prepare_tensors(dataset, config)
    return torch.nn.functional.avg_pool2d(x.float() / 255, 4).flatten(1).numpy().astype(np.float64)


def probe(features: np.ndarray, labels: np.ndarray, split: dict[str, np.ndarray]) -> dict[str, Any]:
    """Standardise on train, pick C on validation ROC-AUC, score test once."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit(c: float):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        return clf.fit(features[split["train"]], labels[split["train"]])

    val = {
        c: roc_auc(labels[split["validation"]], fit(c).predict_proba(features[split["validation"]]))
        for c in C_GRID
    }
    best = max(C_GRID, key=lambda c: (val[c], -c))  # ties: the stronger regularisation
    probs = fit(best).predict_proba(features[split["test"]])
    y = labels[split["test"]]
    return {
        "C": best,
        "val_roc_auc": val[best],
        "roc_auc": roc_auc(y, probs),
        "roc_auc_ci95": auc_interval(y, probs, N_BOOT),
        "accuracy": float((probs.argmax(1) == y).mean()),
        "test_labels": y.tolist(),
        "test_probs": probs[:, 1].round(6).tolist(),
    }


def split_indices(table, seed: int) -> dict[str, np.ndarray]:
    """Row indices of train / validation / test under benchmarks/finetune.py's split of ``seed``."""
    dd = load_galaxy_dataset(
        str(DATASET), seed=seed, val_fraction=0.2, test_fraction=0.2, group_column="iauname"
    )
    row = {name: i for i, name in enumerate(table["iauname"])}
    return {s: np.array([row[n] for n in dd[s]["iauname"]]) for s in ("train", "validation", "test")}


def summarise(per_seed: dict[int, dict[str, dict[str, Any]]], names: list[str]) -> dict[str, Any]:
    """Mean +- sd over seeds per model, and each model minus the reference (the first) per seed."""
    seeds = sorted(per_seed)
    out: dict[str, Any] = {"models": {}, "minus_reference": {}}
    for name in names:
        auc = [per_seed[s][name]["roc_auc"] for s in seeds]
        acc = [per_seed[s][name]["accuracy"] for s in seeds]
        out["models"][name] = {"roc_auc": mean_sd(auc), "accuracy": mean_sd(acc)}
        if name != names[0]:
            diff = [per_seed[s][name]["roc_auc"] - per_seed[s][names[0]]["roc_auc"] for s in seeds]
            out["minus_reference"][name] = {
                "roc_auc": diff,
                "mean": float(np.mean(diff)),
                "t95": t_interval(diff),
            }
    return out


def markdown(result: dict[str, Any]) -> str:
    names, s = result["model_names"], result["summary"]
    ref = names[0]
    lines = [
        "# Linear probe on frozen embeddings: gz_decals_rings (ring / not ring)",
        "",
        f"`{result['command']}`. {result['n_images']} galaxies; split seeds {result['seeds']} (60 / 20 / 20, "
        "grouped by `iauname` and sky position, stratified); features standardised on train, "
        f"`LogisticRegression` with C from {list(C_GRID)} best on validation ROC-AUC; test scored once. "
        f"Machine: {result['machine']['cpu_model']} ({result['machine']['cpus']} cores).",
        "",
        "| model | weights | dims | test ROC-AUC (mean +- sd) | test accuracy "
        f"| ROC-AUC minus `{ref}` (95% t) |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        m, d = s["models"][name], s["minus_reference"].get(name)
        diff = (
            "reference"
            if d is None
            else f"{100 * d['mean']:+.1f} [{100 * d['t95'][0]:+.1f}, {100 * d['t95'][1]:+.1f}]"
        )
        lines.append(
            f"| `{name}` | `{result['specs'][name]}` | {result['dims'][name]} "
            f"| {100 * m['roc_auc'][0]:.1f} +- {100 * m['roc_auc'][1]:.1f} "
            f"| {100 * m['accuracy'][0]:.1f} +- {100 * m['accuracy'][1]:.1f} | {diff} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", metavar="NAME=SPEC", help="models to probe (the first: reference)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="split seeds")
    ap.add_argument("--out-dir", type=Path, default=HERE / "results" / "linear_probe")
    args = ap.parse_args(argv)
    specs = dict(m.split("=", 1) for m in args.models) if args.models else dict(DEFAULT_MODELS)
    table = load_galaxy_dataset(
        str(DATASET), seed=0, val_fraction=0.2, test_fraction=0.2, group_column="iauname"
    )
    import datasets

    every = datasets.concatenate_datasets([table[s] for s in ("train", "validation", "test")])
    labels = np.asarray(every["label"])
    features = {name: embed(load_model(spec), every) for name, spec in specs.items()}
    features[PIXELS], specs[PIXELS] = pixels(every), "raw pixels"
    names = list(specs)
    per_seed = {}
    for seed in args.seeds:
        split = split_indices(every, seed)
        per_seed[seed] = {name: probe(features[name], labels, split) for name in names}
        print(
            f"seed {seed}: " + ", ".join(f"{n} {per_seed[seed][n]['roc_auc']:.3f}" for n in names), flush=True
        )
    result = {
        "command": "python benchmarks/linear_probe.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": lscpu_facts(("avx2", "avx512f", "avx512_bf16", "amx_bf16")),
        "torch": torch.__version__,
        "dataset": str(DATASET.relative_to(HERE.parent.parent)),
        "n_images": int(len(labels)),
        "seeds": args.seeds,
        "model_names": names,
        "specs": specs,
        "dims": {n: int(f.shape[1]) for n, f in features.items()},
        "summary": summarise(per_seed, names),
        "per_seed": {str(s): v for s, v in per_seed.items()},
    }
    write_report(args.out_dir, "results", result, markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
