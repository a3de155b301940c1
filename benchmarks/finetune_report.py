"""The scores and report of benchmarks/finetune.py, from its runs.json only (what --report-only uses)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import percentile_interval, write_report
from accuracy_scores import score_predictions
from finetune_conditions import CONDITIONS, METRICS, TITLES, BenchmarkError, relative_paths


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
    """95% percentile bootstrap interval of the ROC-AUC over resampled test images (those of one class
    left out)."""

    def auc_of(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        # the images' indices are resampled (probs is 2-D); sklearn scores one resample at a time
        return np.apply_along_axis(lambda i: roc_auc(labels[i], probs[i]), axis, idx)

    lo, hi = percentile_interval((np.arange(len(labels)),), auc_of, n_boot, seed, omit_nan=True)
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
    text = markdown(summary)
    write_report(results_dir, "results", summary, text)
    if not quiet:
        print(text)
    return summary
