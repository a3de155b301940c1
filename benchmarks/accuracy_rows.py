"""The rows of benchmarks/accuracy.py's table: constants, each row's model, recipe, input and train.py
arguments, and the aliases (``best``, ``best_peer``, ``best_noattn``) resolved from the stored results."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = ROOT / "training" / "train.py"
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_RUNS_DIR = Path(os.environ.get("GALAXY_ATTN_RUNS", ROOT / "runs" / "benchmarks")).expanduser()
DATASET = "gz1_sdss"
SPLIT_SEED = 0
FULL_BUDGET_MIN = 15.0
QUICK_BUDGET_MIN = 0.75
METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
METRIC_TITLES = {"accuracy": "accuracy", "balanced_accuracy": "balanced acc.", "macro_f1": "macro-F1"}


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table: a model, a recipe and its arguments to ``training/train.py``."""

    name: str
    role: str  # "paper" | "ours" | "peer" | "ablation" | "diagnostic"
    model: str
    recipe: str
    image_size: int
    stem_stride: int | None = None
    extra: tuple[str, ...] = ()
    note: str = ""
    parent: str | None = None  # ablation and diagnostic rows: the row whose schedule (epochs) they copy
    budget_minutes: float | None = None  # a row's own training budget (None: the run's --budget-minutes)
    epochs: int | None = None  # a fixed schedule in epochs (no calibration, no time budget)

    def train_args(self) -> list[str]:
        args = ["--model", self.model, "--recipe", self.recipe, "--image-size", str(self.image_size)]
        if self.stem_stride is not None:
            args += ["--stem-stride", str(self.stem_stride)]
        return args + list(self.extra)

    def model_kwargs(self) -> dict[str, Any]:
        """timm.create_model keyword arguments matching train_args (for calibration and FLOPs)."""
        kw: dict[str, Any] = {}
        if self.stem_stride is not None:
            kw["stem_stride"] = self.stem_stride
        flags = list(self.extra)
        if "--no-attention" in flags:
            kw["attention"] = False
        for flag, key in (("--compatibility", "compatibility"), ("--normalize", "normalize")):
            if flag in flags:
                kw[key] = flags[flags.index(flag) + 1]
        return kw


# The candidates ``ours_*`` run under the same budget; the best on validation (``best``) gets the ablation,
# the extra seeds and ships. Peers run at 64 px: their stems downsample 4x at once (32 px leaves resnet18 a
# 1x1 final map).
_ROWS: tuple[Row, ...] = (
    Row("ours_small_32s1", "ours", "galaxy_attn_vgg_small", "default", 32, 1),
    Row("ours_small_64s2", "ours", "galaxy_attn_vgg_small", "default", 64, 2, (), "strided stem"),
    Row("ours_small_128s4", "ours", "galaxy_attn_vgg_small", "default", 128, 4, (), "strided stem"),
    # A quarter of the compute of ours_small_128s4: about three times the epochs in the budget.
    Row("ours_tiny_128s4", "ours", "galaxy_attn_vgg_tiny_s4", "default", 128, 4, (), "quarter widths"),
    # The rare classes (Don't know, Merger: 1-2% of the images) drawn about as often as the others.
    Row(
        "ours_tiny_128s4_sampler",
        "ours",
        "galaxy_attn_vgg_tiny_s4",
        "default",
        128,
        4,
        ("--balance", "sampler"),
        "ours_tiny_128s4 with a class-balanced sampler, on its schedule",
        parent="ours_tiny_128s4",
    ),
    Row(
        "ours_small_32s1_dp",
        "ours",
        "galaxy_attn_vgg_small",
        "default",
        32,
        1,
        ("--compatibility", "dp"),
        "dot-product compatibility: g shapes the maps",
    ),
    # The paper's network itself (paper widths, stem stride 1, 32 px) on our recipe: its FLOPs per training
    # image leave the common budget only a few epochs, so it has a budget of its own (its run shipped as
    # galaxy_attn_vgg.gz1_sdss, since withdrawn: pretrained.RETIRED_TAGS).
    Row(
        "ours_vgg_32s1",
        "ours",
        "galaxy_attn_vgg",
        "default",
        32,
        1,
        note="the paper's network on our recipe, 45-min budget",
        budget_minutes=45.0,
    ),
    Row("paper_vgg_32", "paper", "galaxy_attn_vgg", "paper", 32, 1, (), "Misquith (2023) setup"),
    Row("resnet18_64", "peer", "resnet18", "default", 64),
    Row("vgg16_bn_64", "peer", "vgg16_bn", "default", 64),
    Row("efficientnet_b0_64", "peer", "efficientnet_b0", "default", 64),
    # Equal images instead of equal time: is a peer ahead because it is a better network, or because it is
    # cheaper and sees more epochs in the budget? Not a candidate and not in the verdict.
    Row(
        "resnet18_64_our_epochs",
        "diagnostic",
        "resnet18",
        "default",
        64,
        note="resnet18 on ours_small_32s1's schedule: the same epochs, a fraction of the time",
        parent="ours_small_32s1",
    ),
)


# Like for like (benchmarks/results/accuracy_like_for_like): ours and the timm peers on one input (128 px),
# one sampler (class-balanced), one recipe and one schedule in epochs, three seeds each. Budgets are stated
# in epochs only: no calibrated time, so rows measured on different machines stay comparable.
LIKE_FOR_LIKE_EPOCHS = 10
_SAMPLER = ("--balance", "sampler")
_LIKE_FOR_LIKE: tuple[Row, ...] = (
    Row(
        "ours_tiny_128s4_sampler_10ep",
        "ours",
        "galaxy_attn_vgg_tiny_s4",
        "default",
        128,
        4,
        _SAMPLER,
        "like for like",
        epochs=LIKE_FOR_LIKE_EPOCHS,
    ),
    *(
        Row(
            f"{peer}_128_sampler_10ep",
            "peer",
            peer,
            "default",
            128,
            None,
            _SAMPLER,
            "like for like",
            epochs=LIKE_FOR_LIKE_EPOCHS,
        )
        for peer in ("resnet18", "convnext_atto")
    ),
)
LIKE_FOR_LIKE_ROWS = tuple(r.name for r in _LIKE_FOR_LIKE)
_ROWS = _ROWS + _LIKE_FOR_LIKE


def _ablation_of(row: Row) -> Row:
    """The ``ours_*`` row with attention removed (the classifier sees g), same model, input and recipe."""
    return dataclasses.replace(
        row,
        name=f"ablation_{row.name.removeprefix('ours_')}_noattn",
        role="ablation",
        extra=(*row.extra, "--no-attention"),
        note=f"{row.name} without attention (classifier on g)",
        parent=row.name,
    )


ROWS: dict[str, Row] = {r.name: r for r in _ROWS}
ROWS.update({a.name: a for a in (_ablation_of(r) for r in _ROWS if r.role == "ours")})


# Names resolved when their turn comes, from the stored results (validation macro-F1 of seed 0).
ALIASES = ("best", "best_peer", "best_noattn")


DEFAULT_OUR_BEST = "ours_small_32s1"  # ``best`` before any candidate has a stored result
DEFAULT_BEST_PEER = "resnet18_64"


# Priority order of the full benchmark (what runs first when time is short); then the extra seeds.
DEFAULT_ORDER = (
    "ours_small_32s1",
    "resnet18_64",
    "ours_small_128s4",
    "ours_tiny_128s4",
    "paper_vgg_32",
    "efficientnet_b0_64",
    "best_noattn",
    "vgg16_bn_64",
)


SEEDED_ROWS = ("best", "best_peer")


# Quick mode: the cheap rows only (the full-width VGG needs minutes for one epoch and its D4 evaluation).
QUICK_ORDER = ("ours_small_32s1", "resnet18_64", "best_noattn")


class BenchmarkError(RuntimeError):
    """A stored result or an argument that cannot be used (the message says what to do)."""


def result_dir(results_dir: Path, row: str, seed: int) -> Path:
    return results_dir / row / f"seed{seed}"


def is_complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in ("metrics.json", "predictions.npz", "bench.json"))


def validation_macro_f1(results_dir: Path, row: str, seed: int = 0) -> float | None:
    """The stored validation macro-F1 of ``row`` (None without a complete stored result)."""
    folder = result_dir(results_dir, row, seed)
    if not is_complete(folder):
        return None
    return float(json.loads((folder / "metrics.json").read_text())["validation"]["macro_f1"])


def best_row(results_dir: Path, role: str) -> str | None:
    """The ``role`` row ("ours", "peer") with the highest validation macro-F1 of the stored seed-0 results."""
    scores = {n: validation_macro_f1(results_dir, n) for n, r in ROWS.items() if r.role == role}
    scores = {n: v for n, v in scores.items() if v is not None}
    return max(scores, key=lambda n: (scores[n], n)) if scores else None


def resolve_row(name: str, results_dir: Path) -> str:
    """A row name, or an alias (``best``, ``best_peer``, ``best_noattn``) resolved on validation now."""
    if name == "best":
        return best_row(results_dir, "ours") or DEFAULT_OUR_BEST
    if name == "best_peer":
        return best_row(results_dir, "peer") or DEFAULT_BEST_PEER
    if name == "best_noattn":
        return _ablation_of(ROWS[resolve_row("best", results_dir)]).name
    if name not in ROWS:
        raise BenchmarkError(
            f"Unknown row {name!r}; see --list for the rows (aliases: {', '.join(ALIASES)})."
        )
    return name
