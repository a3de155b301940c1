"""What benchmarks/finetune.py compares: the conditions (where the weights start, what trains), the metrics,
its error type and how it writes paths."""

from __future__ import annotations

import dataclasses
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")


TITLES = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced acc.",
    "macro_f1": "macro-F1",
    "roc_auc": "ROC-AUC",
}


@dataclasses.dataclass(frozen=True)
class Condition:
    """One way to start and train: train.py arguments on top of the shared ones."""

    name: str
    note: str
    pretrained: bool
    extra: tuple[str, ...] = ()


CONDITIONS = {
    c.name: c
    for c in (
        Condition("scratch", "random initialisation, same architecture", False),
        Condition("finetune", "our weights, fresh head, all parameters at the recipe lr", True),
        Condition("finetune_lr0.1", "our weights, backbone lr x 0.1", True, ("--backbone-lr-scale", "0.1")),
        Condition(
            "frozen", "our weights, only head + attention estimators train", True, ("--freeze-backbone",)
        ),
    )
}


class BenchmarkError(RuntimeError):
    """An argument or stored result that cannot be used; the message says what to do."""


def relative_paths(text: str) -> str:
    """Paths inside the repository relative to it, and the shared data as ``../shared``."""
    return text.replace(str(ROOT) + "/", "").replace(str(ROOT.parent) + "/", "../")
