"""The markdown report of benchmarks/attention.py (results.md), from its results.json."""

from __future__ import annotations

from typing import Any

from attention_measures import BLANK_ENTROPY, PEAKED_MASS


def _ms(s: dict[str, float], digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f} +- {s['std']:.{digits}f}"


def _synthetic(s: dict[str, Any]) -> list[str]:
    """(a): attention mass inside the class-defining mask, beside the null maps."""
    md = [
        "### (a) Synthetic galaxies: attention mass inside the class-defining mask\n\n"
        f"{s['images']} fresh "
        f"synthetic galaxies (generator seed {s['generator_seed']}); model accuracy on them "
        f"{100 * s['accuracy_on_these']:.1f}%; the mask covers "
        f"{100 * s['mask_area_fraction']['mean']:.1f}% "
        "of the image on average. Share of attention mass inside the mask (mean +- sd over images); "
        "'beats' = share of images where the estimator puts more mass in the mask than the null map.\n\n"
        "| estimator | map | attention | uniform | brightness | centre Gaussian | beats brightness | "
        "beats centre |\n|---|---|---|---|---|---|---|---|"
    ]
    for name, e in s["estimators"].items():
        md.append(
            f"| {name} | {e['map_size'][0]}x{e['map_size'][1]} | {_ms(e['attention'])} | "
            f"{_ms(e['uniform'])} | {_ms(e['brightness'])} | {_ms(e['centre'])} | "
            f"{100 * e['beats_brightness']:.0f}% | {100 * e['beats_centre']:.0f}% |"
        )
    return [*md, ""]


def _real(r: dict[str, Any]) -> list[str]:
    """(b): each map against the brightness map and the centre prior on real galaxies."""
    md = [
        f"### (b) Real gz1_sdss validation galaxies ({r['images']} images, `{r['model']}`)\n\n"
        "Per image Spearman correlation and top-20% IoU of each map with the brightness map and the "
        "centre prior (mean +- sd).\n\n| estimator | map | Spearman brightness | IoU brightness | "
        "Spearman centre | IoU centre | normalised entropy |\n|---|---|---|---|---|---|---|"
    ]
    for name, e in r["estimators"].items():
        md.append(
            f"| {name} | {e['map_size'][0]}x{e['map_size'][1]} | {_ms(e['spearman_brightness'])} | "
            f"{_ms(e['iou_top20_brightness'])} | {_ms(e['spearman_centre'])} | "
            f"{_ms(e['iou_top20_centre'])} | "
            f"{_ms(e['normalised_entropy'])} |"
        )
    bc = r["brightness_vs_centre"]
    md.append(
        f"\nFor scale: brightness vs centre prior, Spearman {_ms(bc['spearman'])}, top-20% IoU "
        f"{_ms(bc['iou_top20'])}; a random map's top-20% IoU with brightness "
        f"{_ms(r['random_map_iou_top20_with_brightness'])}.\n"
    )
    return md


def _epochs(title: str, e: dict[str, Any]) -> list[str]:
    """(c) / (d): entropy and peak mass of each map per epoch, beside the run's accuracies."""
    md = [
        f"### {title} (`{e['run']}`, {e['dataset']}, {e['images']} held-out images, best epoch "
        f"{e['best_epoch']})\n\nNormalised entropy (1 = uniform) and largest single-position mass of "
        f"each map; 'blank' = entropy > {BLANK_ENTROPY} or peak > {PEAKED_MASS}.\n\n"
        "| epoch | train acc | val acc | val macro-F1 | attn1 entropy / peak / blank "
        "| attn2 entropy / peak / blank | attn3 entropy / peak / blank |\n|---|---|---|---|---|---|---|"
    ]
    for row in e["epochs"]:
        md.append(
            f"| {row['epoch']} | {row['train_accuracy']:.3f} | {row['val_accuracy']:.3f} | "
            f"{row['val_macro_f1']:.3f} | "
            + " | ".join(
                f"{row[f'attn{j}_entropy']:.3f} / {row[f'attn{j}_peak']:.3f} / "
                f"{100 * row[f'attn{j}_blank_share']:.0f}%"
                for j in (1, 2, 3)
            )
            + " |"
        )
    return [*md, ""]


def markdown(res: dict[str, Any]) -> str:
    """results.md: the parts present in ``res``, in the order (a)-(d)."""
    md = (_synthetic(res["synthetic"]) if "synthetic" in res else []) + (
        _real(res["real"]) if "real" in res else []
    )
    for key, title in (("epochs", "(c) Across epochs"), ("overfit", "(d) Overfitting on purpose")):
        if key in res:
            md += _epochs(title, res[key])
    return "\n".join(md) + "\n"
