"""The tables, the verdict sentences and the curve figure of benchmarks/faithfulness.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ESTIMATORS = ("attn1", "attn2", "attn3")
MAPS = ("attn1", "attn2", "attn3", "gradcam", "gradcam10", "random", "brightness", "centre")
EXPLAINERS = ("attn1", "attn2", "attn3", "gradcam", "gradcam10")
PASS_BELOW = 0.5  # randomisation: a map passes once its correlation's upper 95% bound is below this
OWN_STEP = {"gradcam": 0, "gradcam10": 0, "attn1": 1, "attn2": 1, "attn3": 1}  # cascade step of own params
RULE = (
    f"a map passes when, for every seed, the upper 95% bound of its mean |Spearman| with the trained map is "
    f"below {PASS_BELOW} at the cascade step that re-initialises its own parameters (the classifier for "
    "Grad-CAM, the estimators for attn1-3); late when that holds for all seeds only at a later step; fail "
    "when it holds at no step that was run."
)
OVERFIT_TRAIN = 0.95  # the paper-recipe run overfits from the first epoch with train accuracy >= this
KIND_TITLES = {"morf": "MoRF", "lerf": "LeRF"}  # perturbation kinds whose title is not their key


def ci(s: dict[str, float], digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f} [{s['lo']:.{digits}f}, {s['hi']:.{digits}f}]"


def pct(s: dict[str, float]) -> str:
    return f"{100 * s['mean']:.1f}% [{100 * s['lo']:.1f}, {100 * s['hi']:.1f}]"


def seeds_pass(upper_bounds: Sequence[float], threshold: float = PASS_BELOW) -> bool:
    """The verdict rule over seeds: pass only if every seed's upper 95% bound is below ``threshold``."""
    return len(upper_bounds) > 0 and all(h < threshold for h in upper_bounds)


def randomisation_verdicts(rand: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per map: pass (RULE holds at the step that re-initialises the map's own parameters), late (it holds
    only from a later step) or fail (at no step), with the counts behind it."""
    out: dict[str, dict[str, Any]] = {}
    steps = rand["steps"]
    for name in EXPLAINERS:
        if name not in steps[0]:
            continue
        his = [[s["hi"] for s in row[name]["abs"]] for row in steps]
        first = next((i for i, h in enumerate(his) if seeds_pass(h)), None)
        own = OWN_STEP[name]
        verdict = "pass" if first is not None and first <= own else ("late" if first is not None else "fail")
        out[name] = {
            "verdict": verdict,
            "own_index": own,
            "own_step": steps[own]["step"],
            "seeds": len(his[own]),
            "seeds_below": sum(h < PASS_BELOW for h in his[own]),
            "first_all_below": None if first is None else f"step {first + 1} ({steps[first]['step']})",
        }
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


def _auc_tables(
    part: dict[str, Any], kinds: tuple[str, str], grid: bool, intros: tuple[str, str]
) -> list[str]:
    """The two tables of a perturbation part, each after its intro: one row per map (the ``<kind>_auc`` of
    both kinds; the map's grid when ``grid``), then the paired differences (keyed ``"<map>-<reference>"``)."""
    first, second = (KIND_TITLES.get(k, k) for k in kinds)
    head, rule = ("grid | ", "---|") if grid else ("", "")
    md = [f"{intros[0]}| map | {head}{first} AUC | {second} AUC |\n|---|{rule}---|---|"]
    for name in (n for n in MAPS if n in part["maps"]):
        m = part["maps"][name]
        size = f"{'x'.join(map(str, m['map_size']))} | " if grid else ""
        md.append(f"| {name} | {size}{ci(m[f'{kinds[0]}_auc'])} | {ci(m[f'{kinds[1]}_auc'])} |")
    md.append(f"{intros[1]}| map | reference | {first} difference | {second} difference |\n|---|---|---|---|")
    for key, v in part["paired"].items():
        name, ref = key.split("-")
        md.append(f"| {name} | {ref} | {ci(v[kinds[0]])} | {ci(v[kinds[1]])} |")
    return md


def _deletion_md(d: dict[str, Any]) -> list[str]:
    intro = (
        f"### (1) Deletion and insertion ({d['images']} validation galaxies, {d['steps']} steps)\n\n"
        "Score: softmax probability of the class predicted on the intact image. Removed pixels take the "
        "per-image, per-band median (the sky level); pixels are ranked by the map upsampled bilinearly to "
        "128 px. Lower deletion AUC and higher insertion AUC = more faithful. On the all-sky image the "
        f"predicted class keeps probability {ci(d['sky_probability'])}.\n\n"
    )
    paired = (
        "\nPaired differences (map minus reference, per image; better = negative deletion, positive "
        "insertion):\n\n"
    )
    return _auc_tables(d, ("deletion", "insertion"), True, (intro, paired))


def _seed_cell(cell: dict[str, Any]) -> str:
    """'mean [min, max]' of the per-seed mean |Spearman|."""
    v = [s["mean"] for s in cell["abs"]]
    return f"{np.mean(v):.2f} [{min(v):.2f}, {max(v):.2f}]"


def _randomisation_md(r: dict[str, Any]) -> list[str]:
    if "seeds" not in r:
        return ["\n### (3) Cascading model randomisation: retired single-seed format, not re-run yet"]
    md = [
        f"\n### (3) Cascading model randomisation ({r['images']} validation galaxies, seeds {r['seeds']})\n\n"
        "Absolute Spearman rank correlation |rho| of each map with the trained model's map (per image, "
        "then averaged over images) after re-initialising the named layers and every layer above them "
        "(BatchNorm statistics reset too), once per seed: mean over seeds [min, max over seeds]. Grad-CAM "
        "explains "
        "the trained model's predicted class throughout.\n\n"
        "| step | attn1 | attn2 | attn3 | Grad-CAM conv13 | Grad-CAM conv10 | same prediction |\n"
        "|---|---|---|---|---|---|---|"
    ]
    for i, s in enumerate(r["steps"]):
        cells = " | ".join(_seed_cell(s[k]) for k in EXPLAINERS)
        md.append(f"| {i + 1}. {s['step']} | {cells} | {100 * np.mean(s['same_prediction']):.0f}% |")
    md.append(
        "\nPer seed at the step that re-initialises the map's own parameters: mean |Spearman| "
        "[95% CI over images] (signed mean):\n"
    )
    md.append("| map | step | " + " | ".join(f"seed {s}" for s in r["seeds"]) + " |")
    md.append("|---|---|" + "---|" * len(r["seeds"]))
    for k in EXPLAINERS:
        cell = r["steps"][OWN_STEP[k]][k]
        vals = " | ".join(f"{ci(a, 2)} ({s:+.2f})" for a, s in zip(cell["abs"], cell["signed"], strict=True))
        md.append(f"| {k} | {OWN_STEP[k] + 1} | {vals} |")
    md.append(f"\nVerdict. Rule: {RULE}\n")
    for k, v in randomisation_verdicts(r).items():
        later = v["first_all_below"] or "never"
        md.append(
            f"- {k}: **{v['verdict']}** ({v['seeds_below']} of {v['seeds']} seeds below at step "
            f"{v['own_index'] + 1}; all seeds below from: {later})"
        )
    return md


def _road_md(r: dict[str, Any]) -> list[str]:
    fr = ", ".join(f"{f:g}" for f in r["fractions"])
    intro = (
        f"\n### (2) ROAD: remove and debias ({r['images']} validation galaxies, fractions {fr})\n\n"
        "Removed pixels filled by noisy linear imputation (Rong et al. 2022: weighted mean of the 8 "
        f"neighbours, 1/6 direct, 1/12 diagonal, one sparse system per image; noise sigma {r['noise']:g} of "
        "the pixel range). Score: softmax probability of the class predicted on the intact image; AUC = "
        "trapezoid mean over fractions 0 (intact) to the last. MoRF: lower = more faithful; LeRF: higher."
        "\n\n"
    )
    return _auc_tables(
        r, ("morf", "lerf"), False, (intro, "\nPaired differences (map minus reference, per image):\n\n")
    )


def _pointing_md(p: dict[str, Any]) -> list[str]:
    md = [
        f"\n### (4) Pointing game and mass inside the mask ({p['images']} synthetic galaxies)\n\n"
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
        f"\n### (5) Does attention matter for the decision? ({d['images']} validation galaxies, accuracy "
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
        f"\n### (6) The paper's recipe: does attn1 go blank when the network overfits? (`{p['run']}`)\n\n"
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
        ("road", _road_md),
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
    xs = np.linspace(0, 1, deletion["steps"] + 1)
    return _two_panels(deletion, ("deletion", "insertion"), xs, ("removed", "revealed"), path)


def road_figure(road: dict[str, Any], path: Path) -> Path:
    """Mean ROAD MoRF and LeRF curves of every map, two panels, as a small PNG."""
    xs = np.r_[0.0, road["fractions"]]
    return _two_panels(
        road, ("morf", "lerf"), xs, ("removed, most relevant first", "removed, least relevant first"), path
    )


def _two_panels(
    part: dict[str, Any], kinds: tuple[str, str], xs: np.ndarray, verbs: tuple[str, str], path: Path
) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from timm_galaxy_attn._io import atomic_write

    fig = Figure(figsize=(8.4, 3.3), dpi=100)
    FigureCanvasAgg(fig)
    styles = {"random": ":", "brightness": "--", "centre": "-."}
    for k, kind in enumerate(kinds):
        ax = fig.add_subplot(1, 2, k + 1)
        for name in (n for n in MAPS if n in part["maps"]):
            m = part["maps"][name]
            colour = "grey" if name in styles else None
            label = f"{name} ({m[f'{kind}_auc']['mean']:.3f})"
            ax.plot(xs, m[f"{kind}_curve"], styles.get(name, "-"), color=colour, label=label)
        ax.set_xlabel(f"fraction of pixels {verbs[k]}", fontsize=8)
        ax.set_ylabel("p(predicted class)", fontsize=8)
        ax.set_title(f"{KIND_TITLES.get(kind, kind)} (AUC)", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6.5, frameon=False)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
