"""The shipped weights scored with the train-only normalisation against the all-image one they trained with.

    python benchmarks/normalization_rescore.py     # -> benchmarks/results/normalization/rescore.{json,md}

The shipped tags were trained with per-channel mean/std taken over all 5,665 gz1_sdss images (validation and
test included; label-free, but fitted to them). Their configs now carry the statistics of the train split
alone (``benchmarks/data_stats.py``). This scores each shipped folder's validation and test split (its split
seed) both ways, with 95% bootstrap intervals, and counts the galaxies whose predicted class changes.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
from _common import write_report
from accuracy_rows import METRIC_TITLES, METRICS, RESULTS
from accuracy_scores import score_predictions, softmax

# The statistics every tag used before, over all gz1_sdss images (the constants of model.py until then).
ALL_IMAGE_MEAN = (0.0819, 0.0699, 0.0518)
ALL_IMAGE_STD = (0.1285, 0.1060, 0.0862)
SPLITS = ("validation", "test")


def _logits(model, x, config: dict[str, Any]) -> np.ndarray:
    import torch

    from timm_galaxy_attn.data import normalize_batch

    with torch.inference_mode():
        out = [model(normalize_batch(x[i : i + 128], config)) for i in range(0, len(x), 128)]
    return torch.cat(out).double().numpy()


def rescore(tag: str) -> dict[str, Any]:
    """Scores of one shipped tag on validation and test, with the train-only and the all-image statistics."""
    import timm

    import timm_galaxy_attn
    from timm_galaxy_attn.data import load_galaxy_dataset, prepare_tensors

    folder = Path(timm_galaxy_attn.pretrained_path(tag))
    metrics = json.loads((folder / "metrics.json").read_text())
    model = timm.create_model(tag, pretrained=True).eval()
    config = timm.data.resolve_model_data_config(model)
    before = {**config, "mean": ALL_IMAGE_MEAN, "std": ALL_IMAGE_STD}
    names = list(model.pretrained_cfg["label_names"])
    splits = load_galaxy_dataset(metrics["dataset"], seed=metrics["split_seed"])
    out: dict[str, Any] = {"mean": list(config["mean"]), "std": list(config["std"])}
    for split in SPLITS:
        x, y = prepare_tensors(splits[split], config)
        labels = y.numpy().astype(np.int64)
        now, then = _logits(model, x, config), _logits(model, x, before)
        out[split] = {
            "n": len(labels),
            "train_only": score_predictions(labels, softmax(now), names),
            "all_images": score_predictions(labels, softmax(then), names),
            "changed_predictions": int((now.argmax(1) != then.argmax(1)).sum()),
            "max_abs_logit_change": float(np.abs(now - then).max()),
        }
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "Shipped weights, gz1_sdss split seed 0, scored with the train-only normalisation (the configs now) "
        "and the all-image one (before); 95% bootstrap intervals (1000 resamples).",
        "",
        "| tag | split | n | metric | train-only stats | all-image stats |",
        "|---|---|---:|---|---|---|",
    ]
    for tag, res in results["tags"].items():
        for split in SPLITS:
            r = res[split]
            for k in METRICS:
                a, b = r["train_only"], r["all_images"]
                lines.append(
                    f"| {tag} | {split} | {r['n']} | {METRIC_TITLES[k]} | {100 * a[k]:.1f} "
                    f"[{100 * a['ci95'][k][0]:.1f}, {100 * a['ci95'][k][1]:.1f}] | {100 * b[k]:.1f} "
                    f"[{100 * b['ci95'][k][0]:.1f}, {100 * b['ci95'][k][1]:.1f}] |"
                )
    lines += ["", "Predicted classes changed by the new statistics:", ""]
    for tag, res in results["tags"].items():
        changes = ", ".join(
            f"{res[s]['changed_predictions']} of {res[s]['n']} {s} galaxies (largest logit change "
            f"{res[s]['max_abs_logit_change']:.3f})"
            for s in SPLITS
        )
        lines.append(f"- {tag}: {changes}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    import torch

    from timm_galaxy_attn.pretrained import SHIPPED_TAGS

    results = {
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "all_image_stats": {"mean": ALL_IMAGE_MEAN, "std": ALL_IMAGE_STD},
        "tags": {tag: rescore(tag) for tag in SHIPPED_TAGS},
    }
    out = RESULTS / "normalization"
    write_report(out, "rescore", results, markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
