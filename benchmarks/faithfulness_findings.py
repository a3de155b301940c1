"""The findings of docs/faithfulness.md, rendered from benchmarks/results/attention/faithfulness.json.

Every number and verdict of the doc's generated block (between ``START`` and ``END``) comes from here, so the
text cannot drift from the stored results: ``python benchmarks/faithfulness.py --report-only`` rewrites it,
and tests/test_benchmarks_faithfulness.py checks that the doc's block equals ``render(stored JSON)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faithfulness_report as report
import numpy as np
from faithfulness_report import ci

START, END = "<!-- FINDINGS -->", "<!-- /FINDINGS -->"
PRIORS = ("brightness", "centre")
KIND = {"morf": "MoRF", "lerf": "LeRF"}
LABEL = {
    "attn1": "attn1",
    "attn2": "attn2",
    "attn3": "attn3",
    "gradcam": "Grad-CAM conv13",
    "gradcam10": "Grad-CAM conv10",
    "random": "random",
    "brightness": "brightness",
    "centre": "centre",
}


def update_doc(doc: str, block: str) -> str:
    """``doc`` with the text between the START and END markers replaced by ``block``."""
    if doc.count(START) != 1 or doc.count(END) != 1:
        raise ValueError(f"the doc needs exactly one {START} ... {END} block")
    head, rest = doc.split(START)
    return f"{head}{START}\n{block.strip()}\n{END}{rest.split(END)[1]}"


def doc_block(doc: str) -> str:
    """The generated block of ``doc`` (without the markers)."""
    return doc.split(START)[1].split(END)[0].strip()


def compare(diff: dict[str, float], lower_is_better: bool) -> str:
    """'better' / 'worse' when the paired interval excludes zero, else 'tied'."""
    if diff["lo"] <= 0 <= diff["hi"]:
        return "tied"
    return "better" if (diff["hi"] < 0) == lower_is_better else "worse"


def ranking(maps: dict[str, Any], key: str, lower_is_better: bool, names: Sequence[str]) -> str:
    """'a 0.1 [..], b 0.2 [..], ...' best first."""
    order = sorted((n for n in names if n in maps), key=lambda n: maps[n][key]["mean"])
    order = order if lower_is_better else order[::-1]
    return ", ".join(f"{LABEL[n]} {ci(maps[n][key])}" for n in order)


def _verdicts(part: dict[str, Any], kinds: tuple[str, str], name: str) -> dict[str, dict[str, str]]:
    """{reference: {kind: better/worse/tied}} of ``name`` against random and the priors."""
    out: dict[str, dict[str, str]] = {}
    for ref in ("random", *PRIORS):
        key = f"{name}-{ref}"
        if key in part["paired"]:
            out[ref] = {k: compare(part["paired"][key][k], j == 0) for j, k in enumerate(kinds)}
    return out


def _curve_finding(part: dict[str, Any], kinds: tuple[str, str], explainers: Sequence[str]) -> list[str]:
    """Headline words and one sentence per explainer on its paired differences against the baselines."""
    verdicts = {n: _verdicts(part, kinds, n) for n in explainers}
    beat = [n for n, v in verdicts.items() if all(v[p][k] == "better" for p in PRIORS for k in kinds)]
    below = [n for n, v in verdicts.items() if all(v["random"][k] == "worse" for k in kinds)]
    head = (
        f"{', '.join(LABEL[n] for n in beat)} beat both trivial priors (brightness, centre) on both curves"
        if beat
        else "no map of the model beats both trivial priors (brightness, centre) on both curves"
    )
    if below:
        head += f"; {', '.join(LABEL[n] for n in below)} is worse than a random map on both"
    lines = [head]
    for n, v in verdicts.items():
        kinds_text = [
            f"{KIND.get(k, k)} "
            + ", ".join(f"{part['paired'][f'{n}-{ref}'][k]['mean']:+.3f} vs {ref} ({v[ref][k]})" for ref in v)
            for j, k in enumerate(kinds)
        ]
        lines.append(f"{LABEL[n]}: " + "; ".join(kinds_text))
    return lines


def deletion_finding(d: dict[str, Any]) -> str:
    """Finding 1: deletion and insertion with the median-sky fill."""
    head, *per_map = _curve_finding(d, ("deletion", "insertion"), report.EXPLAINERS)
    return (
        f"**1. Deletion and insertion (flat median-sky fill): {head}.** {d['images']} validation galaxies, "
        f"{d['steps']} steps. Deletion AUC (lower = more faithful): "
        f"{ranking(d['maps'], 'deletion_auc', True, report.MAPS)}. Insertion AUC (higher = more faithful): "
        f"{ranking(d['maps'], 'insertion_auc', False, report.MAPS)}. On the all-sky image the predicted "
        f"class keeps probability {ci(d['sky_probability'])}. Paired per image (map minus reference; "
        "better / worse = the 95% interval excludes zero, else tied): " + ". ".join(per_map) + "."
    )


def road_finding(r: dict[str, Any]) -> str:
    """Finding 2: ROAD MoRF / LeRF with noisy linear imputation."""
    names = [n for n in report.MAPS if n in r["maps"]]
    explainers = [n for n in report.EXPLAINERS if n in r["maps"]]
    head, *per_map = _curve_finding(r, ("morf", "lerf"), explainers)
    fracs = ", ".join(f"{f:g}" for f in r["fractions"])
    return (
        f"**2. ROAD (noisy linear imputation): {head}.** {r['images']} validation galaxies, removal "
        f"fractions {fracs}, noise sigma {r['noise']:g}. MoRF AUC (most relevant removed first, lower = more "
        f"faithful): {ranking(r['maps'], 'morf_auc', True, names)}. LeRF AUC (least relevant first, higher "
        f"= more faithful): {ranking(r['maps'], 'lerf_auc', False, names)}. Paired per image: "
        + ". ".join(per_map)
        + "."
    )


def _seed_values(cell: dict[str, Any]) -> str:
    vals = [s["mean"] for s in cell["abs"]]
    per = ", ".join(f"{v:.2f}" for v in vals)
    return f"{np.mean(vals):.2f} (min {min(vals):.2f}, max {max(vals):.2f}; per seed {per})"


def randomisation_finding(r: dict[str, Any]) -> str:
    """Finding 3: cascading randomisation over seeds, |Spearman|, the verdict rule applied to all seeds."""
    if "seeds" not in r:
        return "**3. Model randomisation: stored in the retired single-seed format; not re-run yet.**"
    verdicts = report.randomisation_verdicts(r)
    groups: dict[str, list[str]] = {}
    for n, v in verdicts.items():
        groups.setdefault(v["verdict"], []).append(LABEL[n])
    head = "; ".join(f"{', '.join(ns)} {k}" for k, ns in groups.items())
    sentences = []
    for n, v in verdicts.items():
        cell = r["steps"][v["own_index"]][n]
        signed = ", ".join(f"{s:+.2f}" for s in cell["signed"])
        later = f"from {v['first_all_below']}" if v["first_all_below"] else "at no step run"
        sentences.append(
            f"{LABEL[n]} after step {v['own_index'] + 1} ({v['own_step']}): mean |rho| {_seed_values(cell)}, "
            f"signed {signed}; below on {v['seeds_below']} of {v['seeds']} seeds; all seeds below "
            f"{later} -> **{v['verdict']}**"
        )
    return (
        f"**3. Model randomisation over {len(r['seeds'])} seeds: {head}.** {r['images']} validation "
        f"galaxies, seeds {r['seeds']}, {_cascade_extent(r)}. Rule: {report.RULE} "
        + ". ".join(sentences)
        + f". {_cascade_ends(r)}"
    )


def _mean_abs(cell: dict[str, Any]) -> float:
    return float(np.mean([s["mean"] for s in cell["abs"]]))


def _cascade_extent(r: dict[str, Any]) -> str:
    steps = r["steps"]
    if steps[-1]["step"].startswith("block 1"):
        return "the full cascade"
    return f"the cascade run to step {len(steps)} ({steps[-1]['step']}) only"


def _cascade_ends(r: dict[str, Any]) -> str:
    """The class-agnostic attention maps at step 1 and, for a full cascade, the fully random network."""
    first, last = r["steps"][0], r["steps"][-1]
    fixed = ", ".join(f"{LABEL[n]} {_mean_abs(first[n]):.2f}" for n in report.ESTIMATORS)
    text = (
        f"With only the classifier re-initialised the attention maps keep |rho| {fixed} (they are computed "
        "before it: class-agnostic by construction)."
    )
    if last["step"].startswith("block 1"):
        rand = ", ".join(f"{LABEL[n]} {_mean_abs(last[n]):.2f}" for n in report.EXPLAINERS)
        text += f" A fully re-initialised network still gives {rand} (a random CNN still sees the galaxy)."
    return text


def pointing_finding(p: dict[str, Any]) -> str:
    """Finding 4: pointing game and mass inside the mask on synthetic galaxies (stored run)."""
    maps = p["maps"]
    mass = max(maps, key=lambda n: maps[n]["mass_inside_mask"]["mean"])
    hit = max(maps, key=lambda n: maps[n]["pointing_hit_rate"]["mean"])

    def pct_rank(key: str) -> str:
        order = sorted(maps, key=lambda n: -maps[n][key]["mean"])
        return ", ".join(f"{LABEL[n]} {report.pct(maps[n][key])}" for n in order)

    return (
        f"**4. Synthetic galaxies: {LABEL[mass]} puts the most mass on the class-defining structure, "
        f"{LABEL[hit]} wins the pointing game.** {p['images']} fresh synthetic galaxies (generator seed "
        f"{p['generator_seed']}), model `{p['run']}` (accuracy on these "
        f"{100 * p['accuracy_on_these']:.1f}%); "
        f"the mask covers {report.pct(p['mask_area'])} of the image. Mass inside the mask: "
        f"{pct_rank('mass_inside_mask')}. Pointing-game hit rate (maximum within {p['tolerance_px']} px of "
        f"the mask): {pct_rank('pointing_hit_rate')}."
    )


def decision_finding(d: dict[str, Any]) -> str:
    """Finding 5: uniform-attention ablation per estimator."""
    single = {n: a for n, a in d["ablations"].items() if n in report.ESTIMATORS}
    top = max(single, key=lambda n: single[n]["flip_rate"]["mean"])
    clear = all(single[top]["flip_rate"]["lo"] > a["flip_rate"]["hi"] for n, a in single.items() if n != top)
    head = f"the decision goes through {top}" if clear else "no single estimator clearly carries the decision"
    cells = [
        f"{n}: flips {report.pct(a['flip_rate'])}, accuracy {100 * d['accuracy']:.1f}% -> "
        f"{100 * a['accuracy_after']:.1f}%, logit of the predicted class {ci(a['logit_change'], 2)}"
        for n, a in d["ablations"].items()
    ]
    per_class = ", ".join(
        f"{c} {100 * e['flip_rate']:.0f}% (n={e['n']})" for c, e in single[top]["per_class"].items()
    )
    return (
        f"**5. Uniform attention: {head}.** {d['images']} validation galaxies; each attended vector replaced "
        f"by the plain mean of its local features. " + "; ".join(cells) + f". Flips per true class when "
        f"{top} is replaced: {per_class}."
    )


def paper_finding(p: dict[str, Any]) -> str:
    """Finding 6: the paper's overfitting observation with the paper's recipe (stored run)."""
    rows = p["epochs"]
    last = rows[-1]
    onset = next((r["epoch"] for r in rows if r["train_accuracy"] >= report.OVERFIT_TRAIN), None)
    after = [r for r in rows if onset is not None and r["epoch"] >= onset] or rows[-1:]
    full = next((r["epoch"] for r in rows if r["train_accuracy"] >= 0.9995), None)
    sentence = report.paper_sentence(p)
    verdict = "reproduced" if "does go blank" in sentence else "not reproduced"
    val = [r["val_accuracy"] for r in after]
    return (
        f"**6. The paper's claim with the paper's recipe: {verdict}.** Run `{p['run']}` (`--recipe "
        f"{p['recipe']}`), {p['images']} validation galaxies re-scored per epoch. {sentence} Train accuracy "
        f"reaches 1.000 at epoch {full if full is not None else 'none'}; from the overfitting onset on, "
        f"validation accuracy stays at {min(val):.3f}-{max(val):.3f} and validation macro-F1 ends at "
        f"{last['val_macro_f1']:.3f}. attn1's normalised entropy goes from {rows[0]['attn1_entropy']:.2f} "
        f"(epoch {rows[0]['epoch']}) to {last['attn1_entropy']:.2f} (epoch {last['epoch']}); attn3's largest "
        f"single-position mass is {last['attn3_peak']:.2f} at the end, blank by the peak rule on "
        f"{100 * last['attn3_blank_share']:.0f}% of the images."
    )


REAL = ("deletion", "road", "randomisation", "decision", "pictures")


def fresh_parts(res: dict[str, Any]) -> list[str]:
    """The parts on real galaxies whose recorded run used the shipped model's current normalisation."""
    now = {"model": res.get("model"), **res.get("normalisation", {})}
    prov = res.get("provenance", {})
    return [k for k in REAL if k in res and prov.get(k) == now]


def provenance(res: dict[str, Any]) -> str:
    """Which parts come from which model and run."""
    norm = res.get("normalisation", {})
    fresh = fresh_parts(res)
    stale = [k for k in REAL if k in res and k not in fresh]
    stored = [f"{k} from `{res[k]['run']}`" for k in ("pointing", "paper") if k in res]
    text = (
        f"**Which run.** Real galaxies: the shipped model `{res.get('model', '?')}` with normalisation mean "
        f"{tuple(norm.get('mean', ()))}, std {tuple(norm.get('std', ()))}, on the first galaxies of the "
        f"gz1_sdss validation split (split seed 0; {res.get('validation_images', '?')} in all; each finding "
        f"gives its count). Run with that normalisation: {', '.join(fresh) or 'none'}."
    )
    if stale:
        text += (
            f" **Not re-run since the normalisation changed (results of the retired normalisation, marked "
            f"below): {', '.join(stale)}.**"
        )
    return text + (
        f" Stored results of runs that do not depend on the shipped weights: {'; '.join(stored) or 'none'}."
    )


STALE = "*[Retired normalisation: not re-run yet.]* "


def render(res: dict[str, Any]) -> str:
    """The doc's generated block: provenance, figures and every finding present in ``res``."""
    out = [provenance(res)]
    if "deletion" in res:
        out.append(
            "![Mean deletion and insertion curves of every map](faithfulness_curves.png)\n\n"
            f"*Mean deletion (left) and insertion (right) curves on {res['deletion']['images']} validation "
            "galaxies; AUC in the legend.*"
        )
    if "road" in res:
        out.append(
            "![Mean ROAD MoRF and LeRF curves of every map](faithfulness_road.png)\n\n"
            f"*Mean ROAD MoRF (left) and LeRF (right) curves on {res['road']['images']} validation galaxies; "
            "AUC in the legend.*"
        )
    if "pictures" in res:
        out.append(
            ("" if "pictures" in fresh_parts(res) else STALE)
            + "![One validation galaxy per class: attn1-3 beside Grad-CAM at conv 13 and conv 10]"
            "(faithfulness_maps.png)\n\n*One validation galaxy per class (true and predicted class above "
            "each row): the input, attn1-3 and Grad-CAM at conv 13 and conv 10, each min-max normalised.*"
        )
    parts = (
        ("deletion", deletion_finding),
        ("road", road_finding),
        ("randomisation", randomisation_finding),
        ("pointing", pointing_finding),
        ("decision", decision_finding),
        ("paper", paper_finding),
    )
    fresh = fresh_parts(res)
    out += [
        (STALE if key in REAL and key not in fresh else "") + fn(res[key]) for key, fn in parts if key in res
    ]
    return "\n\n".join(out)
