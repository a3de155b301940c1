"""The model card (README.md) of a repository folder, rendered with ``huggingface_hub.ModelCard``.

    python hub/model_card.py FOLDER [FOLDER ...]   # rewrite FOLDER/README.md (e.g. the shipped folders)

The card comes from the folder's ``metrics.json``, ``config.json``, figures and results table only, so it
regenerates exactly; the text is ``model_card_template.md`` (Jinja) beside this file, the citations are
CITATION.cff's.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from citations import bibtex_block
from hub_common import (
    ALWAYS_CITED,
    CAPTIONS,
    CARD_NAME,
    FIGURES,
    RESULTS_TABLE,
    DatasetInfo,
    PublishError,
    dataset_info,
    dataset_key,
    read_json,
    read_metrics,
)
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from timm_galaxy_attn._io import atomic_write
from timm_galaxy_attn.model import MODEL_PRESETS, config_architecture

TEMPLATE = Path(__file__).with_name("model_card_template.md")
TAGS = ["image-classification", "timm", "transformers", "safetensors", "astronomy", "galaxy-morphology"]
TAGS += ["attention", "timm-galaxy-attn"]
# train.py flags that only say what the run kept or logged: left out of the card's training command
BOOKKEEPING_FLAGS = ("--keep-checkpoints", "--checkpoint-every-steps", "--log-every")
RARE_SHARE = 5  # a class under this percentage of the test split is called rare in the limits


def _f(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{float(x):.{digits}f}"


def _fmt_int(x: Any) -> str:
    return f"{int(x):,}" if isinstance(x, int | float) else "n/a"


def card_data(repo_id: str, metrics: dict[str, Any], info: DatasetInfo) -> ModelCardData:
    """The YAML metadata: library, license, tags, dataset and the test scores as a model-index."""
    test = metrics["test"]
    scores = [
        ("accuracy", test["accuracy"], "Test accuracy", None),
        ("f1", test["macro_f1"], "Test macro-F1", {"average": "macro"}),
        ("balanced_accuracy", test["balanced_accuracy"], "Test balanced accuracy", None),
    ]
    if test.get("ece") is not None:
        scores.append(("ece", test["ece"], "Test expected calibration error (15 bins)", None))
    results = [
        EvalResult(
            task_type="image-classification",
            task_name="Image Classification",
            dataset_type=info.hub_id,
            dataset_name=info.title,
            dataset_split="test",
            metric_type=kind,
            metric_value=value,
            metric_name=name,
            metric_args=args,
        )
        for kind, value, name, args in scores
    ]
    return ModelCardData(
        library_name="timm",
        license="apache-2.0",
        pipeline_tag="image-classification",
        tags=TAGS,
        datasets=[info.hub_id],
        metrics=["accuracy", "f1"],
        model_name=repo_id.split("/")[-1],
        eval_results=results,
    )


def _identity(repo_id: str, config: dict[str, Any], info: DatasetInfo) -> dict[str, Any]:
    """The repository's tag, its timm name (when it is one) and the card's opening paragraph."""
    arch, args = config["architecture"], config.get("model_args", {})
    tag = repo_id.split("/")[-1]
    variant = tag.split(".")[0]
    # the timm name with tag, when the repository is named after one (galaxy_attn_vgg_tiny_s4.gz1_sdss is
    # galaxy_attn_vgg_small with the tiny widths and stem_stride=4: config.json names the base architecture)
    known = "." in tag and variant in MODEL_PRESETS
    timm_name = tag if known and config_architecture(variant) == arch else None
    stride = int(args.get("stem_stride", 1))
    presets = [f"widths {'/'.join(map(str, args['widths']))}"] if args.get("widths") else []
    presets += [f"a stride-{stride} stem"] if stride > 1 else []
    names = list(config["label_names"])
    size = config["pretrained_cfg"]["input_size"][-1]
    intro = (
        f"`{variant if timm_name else arch}`"
        + (f" (`{arch}` with {' and '.join(presets)})" if presets else "")
        + f" is the attention CNN *VGG-att3-concat-{args.get('compatibility', 'pc')}* of Jetley et al. "
        '(2018, "Learn to Pay Attention"), the network J. Misquith (2023) trained on Galaxy10 for galaxy '
        "morphology, packaged for timm and transformers by the `timm-galaxy-attn` package. "
        f"These weights classify {size}x{size} px galaxy images into {len(names)} classes: "
        + ", ".join(f"`{c}`" for c in names)
        + f". They were trained on {info.title}: {info.description}."
    )
    name = variant if timm_name else arch
    return {"tag": tag, "name": name, "timm_name": timm_name, "intro": intro, "names": names, "size": size}


def _results(metrics: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The split, per-class and confusion-matrix tables, as rows of formatted cells."""
    test = metrics["test"]
    splits = [
        [name, str(part.get("n", "n/a")), _f(part["accuracy"]), _f(part["macro_f1"])]
        + [_f(part["balanced_accuracy"]), _f(part.get("ece"))]
        for name, part in (("test", test), ("validation", metrics.get("validation")))
        if part
    ]
    per_class = [
        [cls] + [_f(test["per_class"][cls][k]) for k in ("precision", "recall", "f1")]
        + [str(test["per_class"][cls]["support"])]
        for cls in names
    ]  # fmt: skip
    confusion = [
        [f"{i} {names[i]}", *(str(int(v)) for v in row)] for i, row in enumerate(test["confusion_matrix"])
    ]
    return {"splits": splits, "per_class": per_class, "confusion": confusion}


def _figures(folder: Path) -> dict[str, Any]:
    """The figures in ``folder/figures``: the confusion matrix, per-epoch attention grids and extra ones."""
    figures = sorted(p.name for p in (folder / FIGURES).glob("*.png")) if (folder / FIGURES).is_dir() else []
    captions_file = folder / FIGURES / CAPTIONS
    captions = read_json(captions_file, CAPTIONS) if captions_file.is_file() else {}
    attention = [
        (int(f.removeprefix("attention_epoch_").removesuffix(".png")), f)
        for f in figures
        if f.startswith("attention_epoch_")
    ]
    extra = []
    for fig in figures:
        if fig == "confusion_matrix.png" or fig.startswith("attention_epoch_"):
            continue
        title = Path(fig).stem.replace("_", " ")
        caption = captions.get(fig) or f"{title[:1].upper() + title[1:]}."
        # alt text: a given caption's first clause (before a colon or a bracket), else the file name
        alt = captions.get(fig, "").split(":")[0].split("(")[0].strip(" .")
        extra.append((alt.translate({ord("["): None, ord("]"): None}) or title, fig, caption))
    table = folder / RESULTS_TABLE
    return {
        "figures_dir": FIGURES,
        "confusion_png": "confusion_matrix.png" in figures,
        "attention": attention,
        "extra": extra,
        "results_table": RESULTS_TABLE,
        "comparison": table.read_text().strip() if table.is_file() else "",
    }


def card_command(command: str, tag: str, num_processes: int = 1) -> str:
    """The run's training command as a reader reruns it: without bookkeeping flags or this machine's
    absolute ``--output-dir`` (it becomes ``runs/<tag>``), under ``accelerate launch``."""
    parts, kept = command.removeprefix("train.py ").split(" "), []
    i = 0
    while i < len(parts):
        if parts[i] in BOOKKEEPING_FLAGS:
            i += 2
            continue
        if parts[i] == "--output-dir" and i + 1 < len(parts) and os.path.isabs(parts[i + 1]):
            kept += ["--output-dir", f"runs/{tag}"]
            i += 2
            continue
        kept.append(parts[i])
        i += 1
    launch = "accelerate launch" + (
        f" --multi_gpu --num_processes {num_processes}" if num_processes > 1 else ""
    )
    return f"{launch} training/train.py {' '.join(kept)}"


def _joint(metrics: dict[str, Any]) -> tuple[list[str], int]:
    """The ``--joint`` sources of the run's command and how many of its training images they gave."""
    words = str(metrics.get("command", "")).split()
    if "--joint" not in words:
        return [], 0
    rest = words[words.index("--joint") + 1 :]
    sources = rest[: next((i for i, w in enumerate(rest) if w.startswith("--")), len(rest))]
    labelled = int(metrics.get("split", {}).get("counts", {}).get("train", 0))
    return sources, int(metrics.get("n", {}).get("train", labelled)) - labelled


def _vote_head(folder: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """The vote-head section: its questions, when the folder holds ``VOTE_HEAD_FILE``."""
    from timm_galaxy_attn.vote_head import VOTE_HEAD_FILE, VOTE_QUESTIONS

    if not (folder / VOTE_HEAD_FILE).is_file():
        return {"vote_head": None}
    sources, n = _joint(metrics)
    questions = [
        f"`{q}` ({', '.join(a.removeprefix(q + '_') for a in ans)})" for q, ans in VOTE_QUESTIONS.items()
    ]
    from safetensors import safe_open

    with safe_open(str(folder / VOTE_HEAD_FILE), "pt") as f:
        params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    head = {
        "file": VOTE_HEAD_FILE,
        "questions": questions,
        "sources": sources,
        "n": n,
        "params": _fmt_int(params),
    }
    return {"vote_head": head}


def _training_data(ctx: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The summary's training data: the labelled images, and the vote-only images of a joint run."""
    sources, n_votes = _joint(metrics)
    n = metrics.get("n", {}).get("train", "n/a")
    if not sources:
        return f"{ctx['dataset_title']}, {n} images"
    labelled = int(n) - n_votes
    return (
        f"{ctx['dataset_title']}, {labelled} images with its labels; and {n_votes} SDSS images with "
        f"Galaxy Zoo 2 votes only ({', '.join(f'`{s}`' for s in sources)})"
    )


def _sessions(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The trainings behind the weights, oldest first: those a continued run started from, then the run."""
    chain, m = [], metrics
    while m:
        chain.append(m)
        m = m.get("continued_from")
    return chain[::-1]


def _session_time(m: dict[str, Any]) -> str:
    """One session's minutes, throughput and (where recorded) machine."""
    machine = f", {m['machine']}" if m.get("machine") else ""
    minutes = _f(m.get("train_time_s", float("nan")) / 60, 1)
    return f"{minutes} min ({_f(m.get('images_per_s'), 1)} images/s{machine})"


def _training(metrics: dict[str, Any], config: dict[str, Any], info: DatasetInfo, tag: str) -> dict[str, Any]:
    """The training command(s) and the table of model, data, split, recipe, selection and time."""
    n, split, args = metrics.get("n", {}), metrics.get("split", {}), config.get("model_args", {})
    sessions = _sessions(metrics)
    commands = [
        card_command(m["command"], tag, int(m.get("num_processes") or 1))
        for m in sessions
        if m.get("command")
    ]
    command = "\n# then continued from the weights above (--initial-checkpoint):\n".join(commands)
    model = f"`{config['architecture']}` ({_fmt_int(metrics.get('num_params'))} parameters), " + ", ".join(
        f"{k}={v}" for k, v in args.items()
    )
    rows = [
        ("model", model),
        ("dataset", f"{info.title} (`{dataset_key(metrics)}`)"),
        (
            "split",
            f"{split.get('rule', split.get('split', 'n/a'))}; train {n.get('train', 'n/a')}, validation "
            f"{n.get('validation', 'n/a')}, test {n.get('test', 'n/a')} images; split seed "
            f"{metrics.get('split_seed', 'n/a')}",
        ),
        (
            "recipe",
            f"{metrics.get('recipe', 'n/a')}, {' + '.join(str(m.get('epochs', 'n/a')) for m in sessions)} "
            f"epochs, mixed precision "
            f"{metrics.get('mixed_precision', 'n/a')}, {metrics.get('num_processes', 1)} process(es)",
        ),
        ("selection", metrics.get("selection", "best epoch on validation")),
        ("training time", " + ".join(_session_time(m) for m in sessions)),
    ]
    return {"command": command, "training": rows}


def _limits(metrics: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The calibration sentence and the rare classes (under RARE_SHARE % of the test split)."""
    test, val = metrics["test"], metrics.get("validation") or {}
    if test.get("ece") is None:
        calibration = "their calibration was not measured"
    else:
        calibration = f"expected calibration error {_f(test['ece'])} on test (15 bins)"
        calibration += f", {_f(val['ece'])} on validation" if val.get("ece") is not None else ""
    total = sum(int(test["per_class"][c]["support"]) for c in names) or 1
    rare = [
        f"`{c}` ({pc['support']} test images, F1 {_f(pc['f1'])})"
        for c in names
        if 100 * int((pc := test["per_class"][c])["support"]) < RARE_SHARE * total
    ]
    rare_text = ", ".join(rare[:-1]) + " and " + rare[-1] if len(rare) > 1 else "".join(rare)
    return {"calibration": calibration, "rare": rare_text, "rare_share": RARE_SHARE}


def _summary(ctx: dict[str, Any], metrics: dict[str, Any], repo_id: str) -> list[tuple[str, str]]:
    """The card's opening table."""
    test = metrics["test"]
    return [
        ("task", f"galaxy morphology, {len(ctx['names'])} classes (image classification)"),
        ("model", f"`{ctx['name']}`, {_fmt_int(metrics.get('num_params'))} parameters"),
        ("input", f"{ctx['size']}x{ctx['size']} px RGB"),
        ("training data", _training_data(ctx, metrics)),
        (
            "test accuracy / macro-F1 / balanced accuracy",
            f"{_f(test['accuracy'])} / {_f(test['macro_f1'])} / {_f(test['balanced_accuracy'])} "
            f"({test.get('n', 'n/a')} images)",
        ),
        ("calibration", f"softmax, not temperature-scaled: {ctx['calibration']}"),
        ("load", f'`timm.create_model("hf-hub:{repo_id}", pretrained=True)`'),
        ("license", "Apache-2.0"),
    ]


def render_model_card(folder: str | os.PathLike) -> str:
    """The README.md of a repository folder, from its metrics.json, config.json and figures only."""
    folder = Path(folder)
    metrics = read_metrics(folder / "metrics.json")
    config = read_json(folder / "config.json", "config.json")
    cfg = config.get("pretrained_cfg", {})
    repo_id = cfg.get("hf_hub_id")
    if not repo_id:
        raise PublishError(
            f"{folder}/config.json has no pretrained_cfg.hf_hub_id; build the folder with hub/publish.py."
        )
    info = dataset_info(metrics)
    ctx = _identity(repo_id, config, info)
    ctx |= _results(metrics, ctx["names"]) | _figures(folder) | _limits(metrics, ctx["names"])
    ctx |= _training(metrics, config, info, ctx["tag"]) | _vote_head(folder, metrics)
    crop_pct = float(cfg.get("crop_pct", 1.0))
    ctx |= {
        "repo_id": repo_id,
        "dataset_title": info.title,
        "synthetic": dataset_key(metrics) == "synthetic",
        "test_n": metrics["test"].get("n", metrics.get("n", {}).get("test", "n/a")),
        "best_epoch": metrics.get("best_epoch", "n/a"),
        "epochs": metrics.get("epochs", "n/a"),
        "seed": metrics.get("seed", "n/a"),
        "resize": math.floor(ctx["size"] / crop_pct),
        "interpolation": cfg.get("interpolation", "bicubic"),
        "crop_pct": f"{crop_pct:g}",
        "crop_pct_2": _f(crop_pct, 2),
        "mean": cfg.get("mean"),
        "std": cfg.get("std"),
        "bibtex": bibtex_block(list(ALWAYS_CITED) + [k for k in info.citations if k not in ALWAYS_CITED]),
    }
    ctx["summary"] = _summary(ctx, metrics, repo_id)
    card = ModelCard.from_template(card_data(repo_id, metrics, info), template_path=str(TEMPLATE), **ctx)
    return str(card).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the README.md of each folder given from its files."""
    folders = list(sys.argv[1:] if argv is None else argv)
    if not folders:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    for folder in map(Path, folders):
        card = render_model_card(folder)
        atomic_write(folder / CARD_NAME, lambda tmp, text=card: tmp.write_text(text))
        print(f"Wrote {folder / CARD_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
