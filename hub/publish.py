"""Build (and upload) the Hugging Face Hub repository of a trained GalaxyAttnVGG run.

    python hub/publish.py RUN_DIR --repo-id ORG/NAME --dry-run --out DIR
    python hub/publish.py RUN_DIR --repo-id ORG/NAME [--private] [--force]

RUN_DIR is the ``--output-dir`` of ``training/train.py``: ``metrics.json``, ``model/`` (the one timm +
transformers folder), ``confusion_matrix.png`` and ``attention/epoch_NNN.png``. The repository folder gets
the weights (safetensors), ``config.json``, ``preprocessor_config.json``, ``metrics.json``, the figures and
``README.md``: the model card, rendered from that folder's ``metrics.json`` and ``config.json`` only, so
``render_model_card(folder)`` regenerates it exactly (the shipped folders in ``timm_galaxy_attn/pretrained/``
are checked that way).

Without ``--dry-run`` the folder is uploaded with ``huggingface_hub`` (token from ``HF_TOKEN`` or
``hf auth login``). A repository whose card names another dataset is not overwritten unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from timm_galaxy_attn._io import atomic_write, replace_dir
from timm_galaxy_attn.model import VARIANT_OF

__all__ = ["PublishError", "build_repo_folder", "render_model_card", "upload_folder", "main"]

CARD_NAME = "README.md"
RESULTS_TABLE = "results_table.md"
FIGURES = "figures"
CAPTIONS = "captions.json"  # figures/captions.json: {file name: caption}


class PublishError(RuntimeError):
    """A run folder or repository that cannot be published as asked (the message says why and what to do)."""


@dataclass(frozen=True)
class DatasetInfo:
    title: str
    hub_id: str  # the `datasets:` entry of the card metadata
    description: str
    citations: tuple[str, ...]


DATASETS = {
    "galaxy10_decals": DatasetInfo(
        "Galaxy10 DECaLS",
        "matthieulel/galaxy10_decals",
        "17,736 colour (g, r, z) 256x256 cutouts from the DESI Legacy Imaging Surveys (DECaLS) in 10 "
        "morphology "
        "classes from Galaxy Zoo DECaLS votes, assembled by Leung & Bovy for astroNN",
        ("astronn", "decals", "gzdecals"),
    ),
    "galaxy10_sdss": DatasetInfo(
        "Galaxy10 SDSS",
        "galaxy10_sdss",
        "21,785 colour 69x69 SDSS cutouts in 10 morphology classes from Galaxy Zoo votes, assembled by "
        "Leung & Bovy for astroNN",
        ("astronn", "sdss", "gz1", "gz1data"),
    ),
    "gz1_sdss": DatasetInfo(
        "SDSS cutouts with Galaxy Zoo 1 labels",
        "gz1_sdss",
        "5,665 real SDSS colour cutouts (423x423) with Galaxy Zoo 1 majority labels in 6 classes "
        "(elliptical, clockwise spiral, anticlockwise spiral, edge-on, don't know, merger); 70% ellipticals",
        ("sdss", "gz1", "gz1data"),
    ),
    "synthetic": DatasetInfo(
        "synthetic galaxies (timm-galaxy-attn test set)",
        "synthetic",
        "images drawn by timm_galaxy_attn.data.make_synthetic_galaxies: a smoke test of the code, not a "
        "scientific result",
        (),
    ),
}

BIBTEX = {
    "misquith": """@misc{misquith2023galaxy,
  title  = {Galaxy Classification with an Attentional Convolutional Neural Network},
  author = {Misquith, J.},
  year   = {2023}
}""",
    "jetley": """@inproceedings{jetley2018learn,
  title     = {Learn To Pay Attention},
  author    = {Jetley, Saumya and Lord, Nicholas A. and Lee, Namhoon and Torr, Philip H. S.},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2018},
  eprint    = {1804.02391},
  archivePrefix = {arXiv}
}""",
    "astronn": """@article{leung2019astronn,
  title   = {Deep learning of multi-element abundances from high-resolution spectroscopic data},
  author  = {Leung, Henry W. and Bovy, Jo},
  journal = {Monthly Notices of the Royal Astronomical Society},
  volume  = {483},
  pages   = {3255--3277},
  year    = {2019},
  note    = {astroNN; Galaxy10 datasets: https://astronn.readthedocs.io/en/latest/galaxy10.html}
}""",
    "sdss": """@article{york2000sdss,
  title   = {The Sloan Digital Sky Survey: Technical Summary},
  author  = {York, Donald G. and others},
  journal = {The Astronomical Journal},
  volume  = {120},
  pages   = {1579--1587},
  year    = {2000}
}""",
    "gz1": """@article{lintott2008galaxyzoo,
  title   = {Galaxy Zoo: morphologies derived from visual inspection of galaxies from the Sloan Digital
             Sky Survey},
  author  = {Lintott, Chris J. and others},
  journal = {Monthly Notices of the Royal Astronomical Society},
  volume  = {389},
  pages   = {1179--1189},
  year    = {2008}
}""",
    "gz1data": """@article{lintott2011galaxyzoo,
  title   = {Galaxy Zoo 1: data release of morphological classifications for nearly 900 000 galaxies},
  author  = {Lintott, Chris and others},
  journal = {Monthly Notices of the Royal Astronomical Society},
  volume  = {410},
  pages   = {166--178},
  year    = {2011}
}""",
    "decals": """@article{dey2019legacy,
  title   = {Overview of the DESI Legacy Imaging Surveys},
  author  = {Dey, Arjun and others},
  journal = {The Astronomical Journal},
  volume  = {157},
  pages   = {168},
  year    = {2019}
}""",
    "gzdecals": """@article{walmsley2022gzdecals,
  title   = {Galaxy Zoo DECaLS: Detailed visual morphology measurements from volunteers and deep learning
             for 314 000 galaxies},
  author  = {Walmsley, Mike and others},
  journal = {Monthly Notices of the Royal Astronomical Society},
  volume  = {509},
  pages   = {3966--3988},
  year    = {2022}
}""",
}
# Always credited: the paper, the network, Galaxy10/astroNN, SDSS and Galaxy Zoo (their work made the task).
ALWAYS_CITED = ("misquith", "jetley", "astronn", "sdss", "gz1")


# ------------------------------------------------------------------------------------------------------
# Reading the run
# ------------------------------------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise PublishError(f"{what} not found: {path}. Is this the --output-dir of a finished training run?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PublishError(f"{path} is not valid JSON ({e}); rerun the training or restore the file.") from e


def _check_metrics(metrics: dict[str, Any], path: Path) -> None:
    test = metrics.get("test")
    need = ("accuracy", "macro_f1", "balanced_accuracy", "per_class", "confusion_matrix")
    if not isinstance(test, dict) or any(k not in test for k in need):
        raise PublishError(
            f"{path} has no complete 'test' section (needs {', '.join(need)}); it was not written by a "
            "finished "
            "training/train.py run."
        )


def _dataset_key(metrics: dict[str, Any]) -> str:
    return str(metrics.get("dataset_tag") or metrics.get("dataset") or "unknown")


def _dataset_info(metrics: dict[str, Any]) -> DatasetInfo:
    key = _dataset_key(metrics)
    if key in DATASETS:
        return DATASETS[key]
    return DatasetInfo(f"`{key}`", Path(key).stem or key, f"the dataset `{key}`", ("sdss", "gz1"))


def _attention_figures(run_dir: Path, best_epoch: int | None) -> list[Path]:
    """The first epoch's heatmaps and the best epoch's (or the last one's), as the paper's figures 2-3."""
    pngs = sorted((run_dir / "attention").glob("epoch_*.png"))
    if not pngs:
        return []
    chosen = [pngs[0]]
    best = run_dir / "attention" / f"epoch_{best_epoch:03d}.png" if best_epoch else None
    last = best if best is not None and best.is_file() else pngs[-1]
    if last != pngs[0]:
        chosen.append(last)
    return chosen


def build_repo_folder(
    run_dir: str | os.PathLike,
    repo_id: str,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    figures_extra: Sequence[str | os.PathLike | tuple[str | os.PathLike, str]] = (),
    results_table: str | os.PathLike | None = None,
) -> Path:
    """Assemble the repository folder of ``run_dir`` in ``out`` (atomic: built aside, then moved in place).

    ``figures_extra``: extra PNGs (e.g. benchmarks/attention.py's per-class grid), each a path or a
    (path, caption) pair, copied to ``figures/`` and shown in the card under their caption (kept in
    ``figures/captions.json``) or, without one, their file name. ``results_table``: a markdown file (e.g.
    the table of benchmarks/accuracy.py) copied as ``results_table.md`` and included in the card verbatim.
    """
    import timm

    import timm_galaxy_attn  # noqa: F401  (registers the models)
    from timm_galaxy_attn.hf import save_pretrained_folder

    _check_repo_id(repo_id)
    run_dir, out = Path(run_dir), Path(out)
    metrics = _read_json(run_dir / "metrics.json", "metrics.json")
    _check_metrics(metrics, run_dir / "metrics.json")
    model_dir = run_dir / "model"
    if not (model_dir / "model.safetensors").is_file() or not (model_dir / "config.json").is_file():
        raise PublishError(
            f"{model_dir} lacks config.json or model.safetensors; the run did not finish writing its model."
        )
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise PublishError(f"{out} already holds files; pass --force to replace it or choose another --out.")

    model = timm.create_model(f"local-dir:{model_dir}", pretrained=True)
    label_names = list(model.pretrained_cfg.get("label_names") or [])
    if metrics.get("label_names") is not None and list(metrics["label_names"]) != label_names:
        raise PublishError(
            f"metrics.json names the classes {metrics['label_names']} but {model_dir}/config.json names "
            f"{label_names}; the model folder and the metrics come from different runs."
        )
    if list(metrics["test"]["per_class"]) != label_names:
        raise PublishError(
            "metrics.json per_class does not list the model's classes in order; rerun the scoring."
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        save_pretrained_folder(
            model, tmp / "repo", label_names=label_names, pretrained_cfg={"hf_hub_id": repo_id}
        )
        repo = tmp / "repo"
        figures = repo / FIGURES
        figures.mkdir()
        if (run_dir / "confusion_matrix.png").is_file():
            shutil.copy2(run_dir / "confusion_matrix.png", figures / "confusion_matrix.png")
        for png in _attention_figures(run_dir, metrics.get("best_epoch")):
            shutil.copy2(png, figures / f"attention_{png.name}")
        captions: dict[str, str] = {}
        for item in figures_extra:
            extra, caption = (Path(item[0]), str(item[1])) if isinstance(item, tuple) else (Path(item), "")
            if extra.suffix.lower() != ".png" or not extra.is_file():
                raise PublishError(f"--figure {extra}: not a PNG file.")
            if (figures / extra.name).exists():
                raise PublishError(f"--figure {extra}: a figure named {extra.name} is already in the card.")
            shutil.copy2(extra, figures / extra.name)
            if caption.strip():
                captions[extra.name] = caption.strip()
        if captions:
            (figures / CAPTIONS).write_text(json.dumps(captions, indent=2) + "\n")
        if results_table is not None:
            if not Path(results_table).is_file():
                raise PublishError(f"--results-table {results_table}: file not found.")
            shutil.copy2(results_table, repo / RESULTS_TABLE)
        kept = {k: v for k, v in metrics.items() if k != "config"}  # the resolved run config is in "command"
        (repo / "metrics.json").write_text(json.dumps(kept, indent=2) + "\n")
        (repo / CARD_NAME).write_text(render_model_card(repo))
        replace_dir(repo, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ------------------------------------------------------------------------------------------------------
# The card
# ------------------------------------------------------------------------------------------------------


def _f(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{float(x):.{digits}f}"


def _metadata(repo_id: str, metrics: dict[str, Any], info: DatasetInfo) -> dict[str, Any]:
    test = metrics["test"]
    results = [
        {"type": "accuracy", "value": test["accuracy"], "name": "Test accuracy"},
        {"type": "f1", "value": test["macro_f1"], "name": "Test macro-F1", "args": {"average": "macro"}},
        {"type": "balanced_accuracy", "value": test["balanced_accuracy"], "name": "Test balanced accuracy"},
    ]
    if test.get("ece") is not None:
        results.append(
            {"type": "ece", "value": test["ece"], "name": "Test expected calibration error (15 bins)"}
        )
    return {
        "library_name": "timm",
        "license": "apache-2.0",
        "pipeline_tag": "image-classification",
        "tags": [
            "image-classification",
            "timm",
            "transformers",
            "safetensors",
            "astronomy",
            "galaxy-morphology",
            "attention",
            "timm-galaxy-attn",
        ],
        "datasets": [info.hub_id],
        "metrics": ["accuracy", "f1"],
        "model-index": [
            {
                "name": repo_id.split("/")[-1],
                "results": [
                    {
                        "task": {"type": "image-classification", "name": "Image Classification"},
                        "dataset": {"name": info.title, "type": info.hub_id, "split": "test"},
                        "metrics": results,
                    }
                ],
            }
        ],
    }


def render_model_card(folder: str | os.PathLike) -> str:
    """The README.md of a repository folder, from its metrics.json, config.json and figures only."""
    folder = Path(folder)
    metrics = _read_json(folder / "metrics.json", "metrics.json")
    _check_metrics(metrics, folder / "metrics.json")
    config = _read_json(folder / "config.json", "config.json")
    cfg = config.get("pretrained_cfg", {})
    repo_id = cfg.get("hf_hub_id")
    if not repo_id:
        raise PublishError(
            f"{folder}/config.json has no pretrained_cfg.hf_hub_id; build the folder with hub/publish.py."
        )
    info = _dataset_info(metrics)
    test, val = metrics["test"], metrics.get("validation")
    names = list(config["label_names"])
    arch = config["architecture"]
    args = config.get("model_args", {})
    size = cfg["input_size"][-1]
    tag = repo_id.split("/")[-1]
    variant = tag.split(".")[0]
    # the timm name with tag, when the repository is named after one (galaxy_attn_vgg_tiny_s4.gz1_sdss is
    # galaxy_attn_vgg_small with the tiny widths and stem_stride=4: config.json names the base architecture)
    timm_name = tag if "." in tag and VARIANT_OF.get(variant, variant) == arch else None
    name = variant if timm_name else arch
    stride = int(args.get("stem_stride", 1))
    figures = sorted(p.name for p in (folder / FIGURES).glob("*.png")) if (folder / FIGURES).is_dir() else []
    n = metrics.get("n", {})
    split = metrics.get("split", {})

    lines: list[str] = []
    add = lines.append
    add("---\n" + yaml.safe_dump(_metadata(repo_id, metrics, info), sort_keys=False, width=110) + "---\n")
    add(f"# {tag}\n")
    presets = ([f"widths {'/'.join(map(str, args['widths']))}"] if args.get("widths") else []) + (
        [f"a stride-{stride} stem"] if stride > 1 else []
    )
    add(
        f"`{name}`"
        + (f" (`{arch}` with {' and '.join(presets)})" if presets else "")
        + f" is the attention CNN *VGG-att3-concat-{args.get('compatibility', 'pc')}* of Jetley et al. "
        '(2018, "Learn to Pay Attention"), the network J. Misquith (2023) trained on Galaxy10 for galaxy '
        f"morphology, packaged for timm and transformers by the `timm-galaxy-attn` package. "
        f"These weights classify {size}x{size} px galaxy images into {len(names)} classes: "
        + ", ".join(f"`{c}`" for c in names)
        + f". They were trained on {info.title}: {info.description}.\n"
    )
    if _dataset_key(metrics) == "synthetic":
        add(
            "> **Warning:** these weights were trained on synthetic images to test the software. They do not "
            "classify real galaxies.\n"
        )

    add("## Results\n")
    add(
        f"Scored once on the held-out test split ({test.get('n', n.get('test', 'n/a'))} images) with the "
        "weights "
        f"of the epoch chosen on validation (epoch {metrics.get('best_epoch', 'n/a')} of "
        f"{metrics.get('epochs', 'n/a')}); "
        f"seed {metrics.get('seed', 'n/a')}, {size}x{size} px. All numbers come from `metrics.json` in this "
        "repository.\n"
    )
    add("| split | images | accuracy | macro-F1 | balanced accuracy | ECE |")
    add("|---|---:|---:|---:|---:|---:|")
    for name, part in (("test", test), ("validation", val)):
        if part:
            add(
                f"| {name} | {part.get('n', 'n/a')} | {_f(part['accuracy'])} | {_f(part['macro_f1'])} | "
                f"{_f(part['balanced_accuracy'])} | {_f(part.get('ece'))} |"
            )
    add("\nPer class on the test split:\n")
    add("| class | precision | recall | F1 | support |")
    add("|---|---:|---:|---:|---:|")
    for cls in names:
        pc = test["per_class"][cls]
        add(f"| {cls} | {_f(pc['precision'])} | {_f(pc['recall'])} | {_f(pc['f1'])} | {pc['support']} |")
    add("\nConfusion matrix on the test split (rows: true class, columns: predicted class, counts):\n")
    short = [f"{i}" for i in range(len(names))]
    add("| true \\ predicted | " + " | ".join(short) + " |")
    add("|---|" + "---:|" * len(names))
    for i, row in enumerate(test["confusion_matrix"]):
        add(f"| {i} {names[i]} | " + " | ".join(str(int(v)) for v in row) + " |")
    add("")
    if "confusion_matrix.png" in figures:
        add(f"![Confusion matrix on the test split]({FIGURES}/confusion_matrix.png)\n")

    if (folder / RESULTS_TABLE).is_file():
        add("## Comparison\n")
        add((folder / RESULTS_TABLE).read_text().strip() + "\n")
        add(f"(From `{RESULTS_TABLE}` in this repository.)\n")

    attention = [f for f in figures if f.startswith("attention_epoch_")]
    extra = [f for f in figures if f != "confusion_matrix.png" and not f.startswith("attention_epoch_")]
    if attention or extra:
        add("## Attention maps\n")
        add(
            "Each row is a galaxy and the three attention maps (estimators after conv 7, 10 and 13, shallow "
            "to "
            "deep) over it, as in the paper's figures 2 and 3. The per-epoch grids show the same validation "
            "galaxies, with true and predicted labels, during training.\n"
        )
        for fig in attention:
            epoch = int(fig.removeprefix("attention_epoch_").removesuffix(".png"))
            add(f"![Attention maps after epoch {epoch}]({FIGURES}/{fig})\n")
            add(f"*After epoch {epoch}.*\n")
        captions_file = folder / FIGURES / CAPTIONS
        captions = _read_json(captions_file, CAPTIONS) if captions_file.is_file() else {}
        for fig in extra:
            title = Path(fig).stem.replace("_", " ")
            caption = captions.get(fig) or f"{title[:1].upper() + title[1:]}."
            # alt text: a given caption's first clause (before a colon or a bracket), else the file name
            alt = captions.get(fig, "").split(":")[0].split("(")[0].strip(" .")
            alt = alt.translate({ord("["): None, ord("]"): None}) or title
            add(f"![{alt}]({FIGURES}/{fig})\n")
            add(f"*{caption}*\n")

    hub_name = f"hf-hub:{repo_id}"
    add("## How to use\n")
    add("Install the plugin, which registers the architecture with timm and transformers when imported:\n")
    add("```bash\npip install timm-galaxy-attn\n```\n")
    add("With timm:\n")
    add(
        "```python\nimport timm\nimport timm_galaxy_attn  # registers galaxy_attn_vgg*\nfrom PIL import "
        "Image\n"
    )
    add(f'model = timm.create_model("{hub_name}", pretrained=True).eval()')
    if timm_name:
        add(f'# or: timm.create_model("{timm_name}", pretrained=True)')
    add(
        "transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model), "
        "is_training=False)\n"
        'x = transform(Image.open("galaxy.png").convert("RGB")).unsqueeze(0)\n'
        "with timm_galaxy_attn.capture_attention(model) as maps:\n"
        "    probs = model(x).softmax(-1)\n"
        "a1, a2, a3 = maps  # attention maps, shallow to deep\n```\n"
    )
    add("With transformers:\n")
    add(
        "```python\nimport timm_galaxy_attn  # registers model_type 'galaxy_attn_vgg' with the Auto classes\n"
        "from transformers import pipeline\n\n"
        f'classifier = pipeline("image-classification", model="{repo_id}")\n'
        f'classifier("galaxy.png", top_k={len(names)})\n```\n'
    )
    add(
        "`AutoModelForImageClassification.from_pretrained(...)` loads the same weights; call it with "
        "`output_attentions=True` to get the three attention maps. Without `import timm_galaxy_attn`, "
        "transformers does not know the model type `galaxy_attn_vgg`: install the package and import it "
        "first "
        "(no `trust_remote_code`).\n"
    )
    crop_pct = float(cfg.get("crop_pct", 1.0))
    add(
        "Preprocessing (the timm eval transform, the same in both libraries): resize the shorter side to "
        f"{math.floor(size / crop_pct)} px ({cfg.get('interpolation', 'bicubic')}), centre crop "
        f"{size}x{size} "
        f"(crop_pct {crop_pct:g}), normalise with mean {cfg.get('mean')} and std {cfg.get('std')}.\n"
    )

    add("## Training\n")
    command = metrics.get("command")
    if command:
        command = _portable_command(command.removeprefix("train.py "), tag)
        procs = int(metrics.get("num_processes") or 1)
        launch = "accelerate launch" + (f" --multi_gpu --num_processes {procs}" if procs > 1 else "")
        add(f"```bash\n{launch} training/train.py {command}\n```\n")
    add("| | |\n|---|---|")
    rows = [
        (
            "model",
            f"`{arch}` ({_fmt_int(metrics.get('num_params'))} parameters), "
            + ", ".join(f"{k}={v}" for k, v in args.items()),
        ),
        ("dataset", f"{info.title} (`{_dataset_key(metrics)}`)"),
        (
            "split",
            f"{split.get('rule', split.get('split', 'n/a'))}; train {n.get('train', 'n/a')}, validation "
            f"{n.get('validation', 'n/a')}, test {n.get('test', 'n/a')} images; split seed "
            f"{metrics.get('split_seed', 'n/a')}",
        ),
        (
            "recipe",
            f"{metrics.get('recipe', 'n/a')}, {metrics.get('epochs', 'n/a')} epochs, mixed precision "
            f"{metrics.get('mixed_precision', 'n/a')}, {metrics.get('num_processes', 1)} process(es)",
        ),
        ("selection", metrics.get("selection", "best epoch on validation")),
        (
            "training time",
            f"{_f(metrics.get('train_time_s', float('nan')) / 60, 1)} min "
            f"({_f(metrics.get('images_per_s'), 1)} images/s)",
        ),
    ]
    for key, value in rows:
        add(f"| {key} | {value} |")
    add("")

    add("## Intended use\n")
    add(
        f"Morphological classification of galaxy images like the training set ({info.title}), for research: "
        "sorting large samples, building catalogues, and looking at where an attention CNN looks. "
        "Predictions "
        "are probabilities over the classes above; inspect the attention maps before trusting a class.\n"
    )
    add("## Limitations\n")
    add(
        f"- Trained and scored on {info.title} only. Other surveys, depths, pixel scales, bands or cutout "
        "sizes shift "
        "the images and the scores; re-evaluate on your own labelled sample before use.\n"
        f"- The network sees {size}x{size} px after a centre crop of {_f(cfg.get('crop_pct', 1.0), 2)}: fine "
        "structure (spiral arms, bars, tidal features) is partly lost.\n"
        "- Labels are volunteer (Galaxy Zoo) majority votes: uncertain for faint or ambiguous galaxies, and "
        "the "
        "class balance of the training set (see the support column) is built into the probabilities.\n"
        "- Mirror images swap the spin classes (clockwise/anticlockwise) where the taxonomy has them.\n"
        "- The attention maps show what the classifier weights, not a physical segmentation of the galaxy.\n"
    )
    add("## Citation\n")
    add("If you use these weights, please cite the paper, the network and the data:\n")
    keys = list(ALWAYS_CITED) + [k for k in info.citations if k not in ALWAYS_CITED]
    add("```bibtex\n" + "\n\n".join(BIBTEX[k] for k in keys) + "\n```\n")
    add(
        "Funding for SDSS has been provided by the Alfred P. Sloan Foundation, the Participating "
        "Institutions, "
        "the U.S. Department of Energy and the National Science Foundation (https://www.sdss.org). Galaxy "
        "Zoo "
        "classifications are the work of its volunteers (https://www.zooniverse.org). Galaxy10 is "
        "distributed by "
        "the astroNN project (https://astronn.readthedocs.io). License of the weights and code: Apache-2.0.\n"
    )
    return "\n".join(lines).rstrip() + "\n"


def _portable_command(command: str, tag: str) -> str:
    """The training command without this machine's absolute ``--output-dir`` (it becomes ``runs/<tag>``)."""
    parts = command.split(" ")
    for i, part in enumerate(parts[:-1]):
        if part == "--output-dir" and os.path.isabs(parts[i + 1]):
            parts[i + 1] = f"runs/{tag}"
    return " ".join(parts)


def _fmt_int(x: Any) -> str:
    return f"{int(x):,}" if isinstance(x, int | float) else "n/a"


# ------------------------------------------------------------------------------------------------------
# Upload
# ------------------------------------------------------------------------------------------------------


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or any(c.isspace() for c in repo_id):
        raise PublishError(f"--repo-id must look like ORG/NAME, got {repo_id!r}.")


def _card_datasets(card_text: str) -> list[str]:
    if not card_text.startswith("---"):
        return []
    try:
        meta = yaml.safe_load(card_text.split("---", 2)[1]) or {}
    except yaml.YAMLError:
        return []
    datasets = meta.get("datasets") or []
    return [datasets] if isinstance(datasets, str) else [str(d) for d in datasets]


def upload_folder(
    folder: str | os.PathLike, repo_id: str, *, private: bool = False, force: bool = False
) -> str:
    """Upload ``folder`` to the model repository ``repo_id``; return the commit URL.

    Refuses (PublishError) when the repository's existing card names another dataset, unless ``force``.
    """
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    folder = Path(folder)
    ours = _card_datasets((folder / CARD_NAME).read_text())
    api = HfApi()
    try:
        existing = Path(hf_hub_download(repo_id, CARD_NAME, repo_type="model")).read_text()
    except (RepositoryNotFoundError, EntryNotFoundError):
        existing = ""
    theirs = _card_datasets(existing)
    if theirs and set(theirs) != set(ours) and not force:
        raise PublishError(
            f"{repo_id} already holds a model trained on {theirs}, not {ours}; publish under another "
            "--repo-id "
            "or pass --force to overwrite it."
        )
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type="model",
        commit_message="Upload GalaxyAttnVGG weights and card",
    )
    return str(getattr(info, "commit_url", info))


# ------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run_dir", type=Path, help="--output-dir of a finished training/train.py run")
    p.add_argument("--repo-id", required=True, help="Hub repository, ORG/NAME")
    p.add_argument("--dry-run", action="store_true", help="build the folder only, upload nothing")
    p.add_argument(
        "--out", type=Path, default=None, help="where to build the folder (default: RUN_DIR/hub_repo)"
    )
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace --out, and overwrite a repo whose card names another dataset",
    )
    p.add_argument("--model-card", type=Path, default=None, help="also copy the card to this file")
    p.add_argument(
        "--figure",
        action="append",
        nargs="+",
        default=[],
        metavar=("PNG", "CAPTION"),
        help="extra PNG for the card and, optionally, its caption (repeatable)",
    )
    p.add_argument(
        "--results-table", type=Path, default=None, help="markdown table (e.g. from benchmarks/) for the card"
    )
    return p.parse_args(argv)


def _figure_arg(values: list[str]) -> tuple[str, str]:
    """``--figure PNG [CAPTION]`` as a (path, caption) pair."""
    if len(values) > 2:
        raise PublishError(
            f"--figure {' '.join(values)}: give a PNG and at most one caption (quote a caption with spaces)."
        )
    return values[0], values[1] if len(values) == 2 else ""


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or args.run_dir / "hub_repo"
    try:
        folder = build_repo_folder(
            args.run_dir,
            args.repo_id,
            out,
            overwrite=args.force,
            figures_extra=[_figure_arg(f) for f in args.figure],
            results_table=args.results_table,
        )
        if args.model_card is not None:
            atomic_write(args.model_card, lambda tmp: shutil.copyfile(folder / CARD_NAME, tmp))
        print(f"Built {folder}: " + ", ".join(sorted(p.name for p in folder.iterdir())))
        if args.dry_run:
            print(f"Dry run: nothing uploaded. Read the card: {folder / CARD_NAME}")
            return 0
        url = upload_folder(folder, args.repo_id, private=args.private, force=args.force)
        print(f"Uploaded to https://huggingface.co/{args.repo_id} ({url})")
        return 0
    except PublishError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
