"""The Hub repository folder of a training run: weights, configs, metrics, figures and the model card."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hub_common import (
    CAPTIONS,
    CARD_NAME,
    FIGURES,
    RESULTS_TABLE,
    PublishError,
    check_repo_id,
    read_json,
    read_metrics,
)
from model_card import render_model_card

from timm_galaxy_attn._io import replace_dir
from timm_galaxy_attn.vote_head import VOTE_HEAD_FILE

FigureArg = str | os.PathLike | tuple[str | os.PathLike, str]
# What a continued run's metrics.json keeps of the training before it (its --initial-checkpoint's metrics)
LINEAGE_KEYS = (
    "command", "epochs", "train_time_s", "images_per_s", "mixed_precision", "num_processes", "machine",
    "continued_from",
)  # fmt: skip


def continued_from(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """How the weights a run continued (``--initial-checkpoint``) were trained; None for a run that did not.

    Read from that folder's metrics.json (a path relative to where publish.py runs), so publish a continued
    run before the folder it started from is replaced.
    """
    start = (metrics.get("config") or {}).get("initial_checkpoint")
    if not start:
        return None
    folder = Path(start) if Path(start).is_dir() else Path(start).parent
    if not (folder / "metrics.json").is_file():
        raise PublishError(
            f"The run continued the weights of {start}, but {folder} has no metrics.json to say how they "
            "were trained. Publish from the folder the run started from, with its metrics.json (a shipped "
            "tag's folder, a published folder), or run publish.py where that relative path resolves."
        )
    earlier = read_json(folder / "metrics.json", "metrics.json")
    return {k: earlier[k] for k in LINEAGE_KEYS if k in earlier}


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


def _load_run_model(run_dir: Path, metrics: dict[str, Any]) -> tuple[Any, list[str]]:
    """The run's model (timm, from ``run_dir/model``) and its class names, checked against metrics.json."""
    import timm

    import timm_galaxy_attn  # noqa: F401  (registers the models)

    model_dir = run_dir / "model"
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
    return model, label_names


def _copy_figures(run_dir: Path, figures: Path, best_epoch: int | None, extra: Sequence[FigureArg]) -> None:
    """The run's confusion matrix and attention grids, then the extra PNGs (captions to captions.json)."""
    figures.mkdir()
    if (run_dir / "confusion_matrix.png").is_file():
        shutil.copy2(run_dir / "confusion_matrix.png", figures / "confusion_matrix.png")
    for png in _attention_figures(run_dir, best_epoch):
        shutil.copy2(png, figures / f"attention_{png.name}")
    captions: dict[str, str] = {}
    for item in extra:
        path, caption = (Path(item[0]), str(item[1])) if isinstance(item, tuple) else (Path(item), "")
        if path.suffix.lower() != ".png" or not path.is_file():
            raise PublishError(f"--figure {path}: not a PNG file.")
        if (figures / path.name).exists():
            raise PublishError(f"--figure {path}: a figure named {path.name} is already in the card.")
        shutil.copy2(path, figures / path.name)
        if caption.strip():
            captions[path.name] = caption.strip()
    if captions:
        (figures / CAPTIONS).write_text(json.dumps(captions, indent=2) + "\n")


def build_repo_folder(
    run_dir: str | os.PathLike,
    repo_id: str,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    figures_extra: Sequence[FigureArg] = (),
    results_table: str | os.PathLike | None = None,
) -> Path:
    """Assemble the repository folder of ``run_dir`` in ``out`` (atomic: built aside, then moved in place).

    ``figures_extra``: extra PNGs (e.g. benchmarks/attention.py's per-class grid), each a path or a
    (path, caption) pair, copied to ``figures/`` and shown in the card under their caption (kept in
    ``figures/captions.json``) or, without one, their file name. ``results_table``: a markdown file (e.g.
    the table of benchmarks/accuracy.py) copied as ``results_table.md`` and included in the card verbatim.
    """
    from timm_galaxy_attn.hf import save_pretrained_folder

    check_repo_id(repo_id)
    run_dir, out = Path(run_dir), Path(out)
    metrics = read_metrics(run_dir / "metrics.json")
    model_dir = run_dir / "model"
    if not (model_dir / "model.safetensors").is_file() or not (model_dir / "config.json").is_file():
        raise PublishError(
            f"{model_dir} lacks config.json or model.safetensors; the run did not finish writing its model."
        )
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise PublishError(f"{out} already holds files; pass --force to replace it or choose another --out.")
    model, label_names = _load_run_model(run_dir, metrics)
    lineage = continued_from(metrics)  # read before ``out`` (maybe the folder it names) is replaced

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        repo = tmp / "repo"
        save_pretrained_folder(model, repo, label_names=label_names, pretrained_cfg={"hf_hub_id": repo_id})
        if (model_dir / VOTE_HEAD_FILE).is_file():  # a --joint run: its Galaxy Zoo 2 vote head
            shutil.copy2(model_dir / VOTE_HEAD_FILE, repo / VOTE_HEAD_FILE)
        _copy_figures(run_dir, repo / FIGURES, metrics.get("best_epoch"), figures_extra)
        if results_table is not None:
            if not Path(results_table).is_file():
                raise PublishError(f"--results-table {results_table}: file not found.")
            shutil.copy2(results_table, repo / RESULTS_TABLE)
        kept = {k: v for k, v in metrics.items() if k != "config"}  # the resolved run config is in "command"
        if lineage is not None:
            kept["continued_from"] = lineage
        (repo / "metrics.json").write_text(json.dumps(kept, indent=2) + "\n")
        (repo / CARD_NAME).write_text(render_model_card(repo))
        replace_dir(repo, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
