"""The tables, the verdict sentences and the curve figure of benchmarks/faithfulness.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MAPS = ("attn1", "attn2", "attn3", "gradcam", "gradcam10", "random", "brightness", "centre")
EXPLAINERS = ("attn1", "attn2", "attn3", "gradcam", "gradcam10")
PASS_BELOW = 0.5  # randomisation: a map passes once its correlation's upper 95% bound is below this
OVERFIT_TRAIN = 0.95  # the paper-recipe run overfits from the first epoch with train accuracy >= this


def ci(s: dict[str, float], digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f} [{s['lo']:.{digits}f}, {s['hi']:.{digits}f}]"


def pct(s: dict[str, float]) -> str:
    return f"{100 * s['mean']:.1f}% [{100 * s['lo']:.1f}, {100 * s['hi']:.1f}]"


def randomisation_verdicts(rand: dict[str, Any]) -> dict[str, str]:
    """Per map: the first cascade step after which its correlation with the trained map is below PASS_BELOW
    (upper bound), and pass (already at the step that re-initialises its own parameters) / late / fail."""
    own = {"gradcam": 0, "gradcam10": 0, "attn1": 1, "attn2": 1, "attn3": 1}
    out = {}
    for name in EXPLAINERS:
        first = next((i for i, r in enumerate(rand["steps"]) if r[name]["hi"] < PASS_BELOW), None)
        if first is None:
            out[name] = "fail: never below 0.5"
        else:
            verdict = "pass" if first <= own[name] else "late"
            out[name] = f"{verdict}: below 0.5 from step {first + 1} ({rand['steps'][first]['step']})"
    return out


def paper_sentence(paper: dict[str, Any]) -> str:
    """A plain sentence on the paper's claim (attn1 goes blank once the network overfits), from numbers."""
    rows = paper["epochs"]
    last = rows[-1]
    onset = next((r["epoch"] for r in rows if r["train_accuracy"] >= OVERFIT_TRAIN), None)
    if onset is None:
        best = max(r["train_accuracy"] for r in rows)
        return (
            f"The run did not overfit in {last['epoch']} epochs (train accuracy at most {best:.3f}, "
            f"validation {last['val_accuracy']:.3f} at the end), so it cannot test the claim; attn1 was "
            f"blank on {100 * last['attn1_blank_share']:.0f}% of the validation images at the last epoch."
        )
    before = [r["attn1_blank_share"] for r in rows if r["epoch"] < onset] or [float("nan")]
    after = [r["attn1_blank_share"] for r in rows if r["epoch"] >= onset]
    goes = np.mean(after) >= 0.5 and np.mean(after) > np.nanmean(before) + 0.2
    verdict = (
        "does go blank when the network overfits, as the paper says."
        if goes
        else "does not go blank when the network overfits: the paper's observation is not reproduced here."
    )
    return (
        f"With the paper's recipe the network overfits from epoch {onset} (train accuracy >= "
        f"{OVERFIT_TRAIN}; train {last['train_accuracy']:.3f} vs validation {last['val_accuracy']:.3f} at "
        f"epoch {last['epoch']}); attn1 is blank on {100 * np.nanmean(before):.0f}% of the validation images "
        f"(mean over epochs) before that and on {100 * np.mean(after):.0f}% from then on, so attn1 {verdict}"
    )


def _deletion_md(d: dict[str, Any]) -> list[str]:
    md = [
        f"### (1) Deletion and insertion ({d['images']} validation galaxies, {d['steps']} steps)\n\n"
        "Score: softmax probability of the class predicted on the intact image. Removed pixels take the "
        "per-image, per-band median (the sky level); pixels are ranked by the map upsampled bilinearly to "
        "128 px. Lower deletion AUC and higher insertion AUC = more faithful. On the all-sky image the "
        f"predicted class keeps probability {ci(d['sky_probability'])}.\n\n"
        "| map | grid | deletion AUC | insertion AUC |\n|---|---|---|---|"
    ]
    for name in MAPS:
        m = d["maps"][name]
        grid = "x".join(map(str, m["map_size"]))
        md.append(f"| {name} | {grid} | {ci(m['deletion_auc'])} | {ci(m['insertion_auc'])} |")
    md.append(
        "\nPaired differences (map minus reference, per image; better = negative deletion, positive "
        "insertion):\n\n| map | reference | deletion difference | insertion difference |\n|---|---|---|---|"
    )
    for key, v in d["paired"].items():
        name, ref = key.split("-")
        md.append(f"| {name} | {ref} | {ci(v['deletion'])} | {ci(v['insertion'])} |")
    return md


def _randomisation_md(r: dict[str, Any]) -> list[str]:
    md = [
        f"\n### (2) Cascading model randomisation ({r['images']} validation galaxies)\n\n"
        "Spearman rank correlation of each map with the trained model's map (per image, mean [95% CI]) after "
        "re-initialising the named layers and every layer above them (BatchNorm statistics reset too). "
        "Grad-CAM explains the trained model's predicted class throughout.\n\n"
        "| step | attn1 | attn2 | attn3 | Grad-CAM conv13 | Grad-CAM conv10 | same prediction |\n"
        "|---|---|---|---|---|---|---|"
    ]
    for i, s in enumerate(r["steps"]):
        cells = " | ".join(ci(s[k], 2) for k in EXPLAINERS)
        md.append(f"| {i + 1}. {s['step']} | {cells} | {100 * s['same_prediction']:.0f}% |")
    md.append(
        f"\nVerdict (pass = correlation's upper bound below {PASS_BELOW} once the map's own parameters are "
        "re-initialised: the classifier for Grad-CAM, the estimator for attn1-3):\n"
    )
    md += [f"- {k}: {v}" for k, v in randomisation_verdicts(r).items()]
    if "estimator_seeds" in r:
        e = r["estimator_seeds"]
        md.append(f"\nStep 2 with re-initialisation seeds {e['seeds']} (mean correlation per seed):\n")
        md += [f"- {k}: " + ", ".join(f"{v:.2f}" for v in e[k]) for k in EXPLAINERS if k in e]
    return md


def _pointing_md(p: dict[str, Any]) -> list[str]:
    md = [
        f"\n### (3) Pointing game and mass inside the mask ({p['images']} synthetic galaxies)\n\n"
        f"Model `{p['run']}` (accuracy on these {100 * p['accuracy_on_these']:.1f}%); the class-defining "
        f"mask covers {pct(p['mask_area'])} of the image. Hit = the map's maximum (upsampled to the input) "
        f"lies within {p['tolerance_px']} px of the mask.\n\n"
        "| map | grid | pointing hit rate | mass inside mask |\n|---|---|---|---|"
    ]
    for name in MAPS:
        m = p["maps"][name]
        grid = "x".join(map(str, m["map_size"]))
        md.append(f"| {name} | {grid} | {pct(m['pointing_hit_rate'])} | {pct(m['mass_inside_mask'])} |")
    return md


def _decision_md(d: dict[str, Any]) -> list[str]:
    md = [
        f"\n### (4) Does attention matter for the decision? ({d['images']} validation galaxies, accuracy "
        f"{100 * d['accuracy']:.1f}%)\n\nEach attended vector g_s replaced by the plain mean of its local "
        "features (uniform attention); the rest of the network unchanged.\n\n"
        "| replaced | logit change of the predicted class | prediction flips | accuracy after "
        "| accuracy change |\n|---|---|---|---|---|"
    ]
    for name, a in d["ablations"].items():
        md.append(
            f"| {name} | {ci(a['logit_change'], 2)} | {pct(a['flip_rate'])} | "
            f"{100 * a['accuracy_after']:.1f}% | {pct(a['accuracy_change'])} |"
        )
    names = list(next(iter(d["ablations"].values()))["per_class"])
    md.append("\nPer true class: logit change / flip rate / recall before -> after.\n")
    md.append("| class (n) | " + " | ".join(d["ablations"]) + " |\n|---" + "|---" * len(d["ablations"]) + "|")
    for c in names:
        cells = []
        for a in d["ablations"].values():
            e = a["per_class"][c]
            acc = f"{100 * e['accuracy']:.0f} -> {100 * e['accuracy_after']:.0f}%"
            cells.append(f"{e['logit_change']:+.2f} / {100 * e['flip_rate']:.0f}% / {acc}")
        n = next(iter(d["ablations"].values()))["per_class"][c]["n"]
        md.append(f"| {c} ({n}) | " + " | ".join(cells) + " |")
    return md


def _paper_md(p: dict[str, Any]) -> list[str]:
    md = [
        f"\n### (5) The paper's recipe: does attn1 go blank when the network overfits? (`{p['run']}`)\n\n"
        f"`training/train.py --recipe {p['recipe']}` on {p['dataset']}; blank = normalised entropy > 0.98 or "
        f"one position holding more than half of the mass, on {p['images']} validation galaxies per epoch. "
        "Train accuracy is the run's own (train mode, running over the epoch; no augmentation in this "
        "recipe).\n\n| epoch | train acc | val acc | val macro-F1 | attn1 blank | attn2 blank | attn3 blank "
        "| attn1 entropy | attn3 peak |\n|---|---|---|---|---|---|---|---|---|"
    ]
    rows = p["epochs"]
    for r in rows:
        if r["epoch"] <= 10 or r["epoch"] % 5 == 0 or r is rows[-1]:
            blanks = " | ".join(f"{100 * r[f'attn{j}_blank_share']:.0f}%" for j in (1, 2, 3))
            md.append(
                f"| {r['epoch']} | {r['train_accuracy']:.3f} | {r['val_accuracy']:.3f} | "
                f"{r['val_macro_f1']:.3f} | {blanks} | {r['attn1_entropy']:.3f} | {r['attn3_peak']:.3f} |"
            )
    md.append(f"\n**{paper_sentence(p)}**")
    return md


def markdown(res: dict[str, Any]) -> str:
    md = [f"## Attention faithfulness (`benchmarks/faithfulness.py`, model `{res.get('model', '?')}`)\n"]
    for key, fn in (
        ("deletion", _deletion_md),
        ("randomisation", _randomisation_md),
        ("pointing", _pointing_md),
        ("decision", _decision_md),
        ("paper", _paper_md),
    ):
        if key in res:
            md += fn(res[key])
    md.append(
        "\n`gradcam` = Grad-CAM at conv 13 (block 5's output), `gradcam10` = at conv 10 (block 4's output); "
        "Grad-CAM at block 6 is zero (max {:.1e}: with 'pc' + softmax g gets no gradient).".format(
            res.get("deletion", {}).get("gradcam_block6_max", float("nan"))
        )
    )
    return "\n".join(md) + "\n"


def curves_figure(deletion: dict[str, Any], path: Path) -> Path:
    """Mean deletion and insertion curves of every map, two panels, as a small PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from timm_galaxy_attn._io import atomic_write

    fig = Figure(figsize=(8.4, 3.3), dpi=100)
    FigureCanvasAgg(fig)
    styles = {"random": ":", "brightness": "--", "centre": "-."}
    for k, kind in enumerate(("deletion", "insertion")):
        ax = fig.add_subplot(1, 2, k + 1)
        for name in MAPS:
            m = deletion["maps"][name]
            y = m[f"{kind}_curve"]
            auc = m[f"{kind}_auc"]["mean"]
            colour = "grey" if name in styles else None
            ax.plot(
                np.linspace(0, 1, len(y)), y, styles.get(name, "-"), color=colour, label=f"{name} ({auc:.3f})"
            )
        ax.set_xlabel(f"fraction of pixels {'removed' if kind == 'deletion' else 'revealed'}", fontsize=8)
        ax.set_ylabel("p(predicted class)", fontsize=8)
        ax.set_title(f"{kind} (AUC)", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6.5, frameon=False)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
