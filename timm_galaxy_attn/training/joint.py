"""Joint training: the GZ1 classes of ``--dataset gz1_sdss`` with the Galaxy Zoo 2 vote head on ``--joint``
sources (``gz2_kaggle`` vote fractions, ``gz2_kaggle_spiral`` spiral labels).

The training split of every joint source is decoded at the run's data config and appended to the gz1_sdss
training images; their GZ1 label is -1 (masked out of the GZ1 loss) and gz1_sdss images get an all-zero
vote row (masked out of the vote loss, ``timm_galaxy_attn.vote_head.vote_loss``). Validation, test and model
selection stay gz1_sdss's. An epoch is the gz1_sdss draw a gz1_sdss-only run makes (``--balance sampler``
included) plus ``--joint-per-epoch`` images of the joint sources (default: all), shuffled together.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torch.nn as nn
import torch.nn.functional as F
from accelerate import Accelerator

from timm_galaxy_attn.labels import GZ2_SPIRAL_CLASSES
from timm_galaxy_attn.vote_head import (
    SPIRAL_QUESTION,
    VOTE_HEAD_FILE,
    VOTE_QUESTIONS,
    vote_loss,
    vote_target_columns,
)

from .config import TrainConfig
from .data import Splits, class_weights
from .errors import TrainingError

__all__ = [
    "JOINT_SOURCES",
    "JointLoss",
    "add_joint_sources",
    "check_joint",
    "detached_vote_head",
    "joint_epoch_order",
    "joint_forward_loss",
    "make_criterion",
    "source_votes",
    "train_epoch_length",
]

JOINT_SOURCES = ("gz2_kaggle", "gz2_kaggle_spiral")


def check_joint(cfg: TrainConfig) -> None:
    """Refuse a --joint run that cannot work, naming the fix.

    Args:
        cfg: The run's config.
    """
    if not cfg.joint:
        return
    unknown = sorted(set(cfg.joint) - set(JOINT_SOURCES))
    if unknown:
        raise TrainingError(f"--joint {' '.join(unknown)}: unknown; choose from {', '.join(JOINT_SOURCES)}.")
    if cfg.dataset != "gz1_sdss":
        raise TrainingError(f"--joint trains the GZ1 classes: use --dataset gz1_sdss (got {cfg.dataset!r}).")
    if not cfg.model.startswith("galaxy_attn_vgg") or "." in cfg.model or cfg.pretrained:
        raise TrainingError(
            f"--joint needs a galaxy_attn_vgg architecture trained from scratch (got --model {cfg.model}"
            f"{' --pretrained' if cfg.pretrained else ''}): the vote head is a galaxy_attn_vgg option."
        )
    if (cfg.split, cfg.split_seed, cfg.val_fraction, cfg.test_fraction) != ("grouped", 0, 0.1, 0.1):
        raise TrainingError(
            "--joint needs the gz1_sdss split the GZ2 sets were pinned to (--split grouped --split-seed 0 "
            "--val-fraction 0.1 --test-fraction 0.1); for another, rebuild them with "
            "scripts/build_gz2_kaggle.py --gz1-seed (docs/data_gz2.md)."
        )
    if cfg.compile:
        raise TrainingError("--joint does not run through --compile yet; leave --compile out.")
    if cfg.joint_per_epoch is not None and cfg.joint_per_epoch < 1:
        raise TrainingError(f"--joint-per-epoch must be >= 1 (got {cfg.joint_per_epoch}).")


def source_votes(columns: dict[str, list[Any]], label_names: list[str], n: int) -> torch.Tensor:
    """The vote-target rows ``(n, len(vote_target_columns()))`` of one source's columns.

    GZ2 vote columns that are present are copied; ``cc_spiral`` (1 spiral, 0 not, -1 unknown), or the label
    of a source whose classes are ``GZ2_SPIRAL_CLASSES``, fills the spiral question one-hot. The rest is 0.

    Args:
        columns: Column name -> values of the split (e.g. a ``datasets.Dataset``'s ``to_dict()``).
        label_names: The source's class names.
        n: Rows of the split.
    """
    names = vote_target_columns()
    votes = torch.zeros(n, len(names))
    for i, name in enumerate(names):
        if name in columns:
            votes[:, i] = torch.as_tensor(columns[name], dtype=torch.float32)
    spiral = None
    if "cc_spiral" in columns:
        spiral = torch.as_tensor(columns["cc_spiral"], dtype=torch.long)
    elif tuple(label_names) == GZ2_SPIRAL_CLASSES:
        spiral = torch.as_tensor(columns["label"], dtype=torch.long)
    if spiral is not None:
        first = names.index(VOTE_QUESTIONS[SPIRAL_QUESTION][0])
        known = spiral >= 0
        votes[known, first + spiral[known]] = 1.0
    return votes


def add_joint_sources(data: Splits, cfg: TrainConfig, accelerator: Accelerator) -> Splits:
    """Append the training split of every ``cfg.joint`` source to ``data``'s training images.

    Args:
        data: The gz1_sdss splits (:func:`.data.load_splits`).
        cfg: The run's config (``joint``, ``joint_data_path``, the split options).
        accelerator: One process per machine fills the dataset cache first.
    """
    from timm_galaxy_attn.data import load_galaxy_dataset, prepare_tensors

    if accelerator.num_processes > 1:
        raise TrainingError("--joint runs in one process for now; launch train.py without accelerate launch.")
    x, y = data.tensors["train"]
    xs, ys, votes, sources = (
        [x],
        [y],
        [torch.zeros(len(y), len(vote_target_columns()))],
        [torch.zeros_like(y)],
    )
    kwargs: dict[str, Any] = dict(
        seed=cfg.split_seed, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction
    )
    if cfg.joint_data_path:
        kwargs["path"] = cfg.joint_data_path
    for index, name in enumerate(cfg.joint, start=1):
        with accelerator.local_main_process_first():
            split = load_galaxy_dataset(name, **kwargs)["train"]
        images, _ = prepare_tensors(split, data.data_config, image_size=data.data_config["input_size"][-1])
        keep = [c for c in split.column_names if c in vote_target_columns() or c in ("cc_spiral", "label")]
        columns = split.select_columns(keep).to_dict()
        xs.append(images)
        ys.append(torch.full((len(images),), -1, dtype=y.dtype))
        votes.append(source_votes(columns, split.features["label"].names, len(images)))
        sources.append(torch.full((len(images),), index, dtype=y.dtype))
    tensors = {**data.tensors, "train": (torch.cat(xs), torch.cat(ys))}
    return dataclasses.replace(
        data, tensors=tensors, train_votes=torch.cat(votes), train_sources=torch.cat(sources)
    )


def joint_epoch_order(
    cfg: TrainConfig, epoch: int, labels: torch.Tensor, sources: torch.Tensor, num_classes: int
):
    """Training indices of ``epoch``: the gz1_sdss draw of ``epoch_order`` plus the joint sources' images.

    Args:
        cfg: ``seed``, ``balance``, ``balance_power``, ``joint_per_epoch``.
        epoch: The epoch (0-based).
        labels: GZ1 labels of the training images (-1 for the joint sources).
        sources: 0 for gz1_sdss, i for the i-th ``--joint`` source.
        num_classes: GZ1 classes.
    """
    from .loop import epoch_order

    main = torch.nonzero(sources == 0).squeeze(1)
    extra = torch.nonzero(sources > 0).squeeze(1)
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch + 7_919)
    drawn = main[epoch_order(cfg, epoch, labels[main], num_classes)]
    extra = extra[torch.randperm(len(extra), generator=g)][: cfg.joint_per_epoch]
    both = torch.cat([drawn, extra])
    return both[torch.randperm(len(both), generator=g)]


def train_epoch_length(cfg: TrainConfig, data: Splits) -> int:
    """Images per epoch: the training split, or (joint) gz1_sdss's plus ``--joint-per-epoch``."""
    if data.train_sources is None:
        return len(data.tensors["train"][1])
    main = int((data.train_sources == 0).sum())
    extra = len(data.train_sources) - main
    return main + min(extra, cfg.joint_per_epoch or extra)


class JointLoss(nn.Module):
    """GZ1 cross-entropy over the labelled images plus ``vote_weight`` times the vote loss.

    The GZ1 term is ``nn.CrossEntropyLoss(weight, label_smoothing)``'s weighted mean over the images with a
    label (>= 0), so it equals that loss on a batch of gz1_sdss images alone; 0 on a batch without any.

    Args:
        weight: Per-class weights (or None).
        label_smoothing: As in ``nn.CrossEntropyLoss``.
        vote_weight: Factor of the vote loss.
    """

    def __init__(self, weight: torch.Tensor | None, label_smoothing: float, vote_weight: float) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.label_smoothing, self.vote_weight = label_smoothing, vote_weight

    def forward(
        self, logits: torch.Tensor, questions: dict[str, torch.Tensor], y: torch.Tensor, votes: torch.Tensor
    ) -> torch.Tensor:
        """The loss of a batch: GZ1 logits, vote-head logits, GZ1 labels (-1: none), vote rows."""
        labelled = y >= 0
        target = y.clamp(min=0)
        ce = F.cross_entropy(
            logits, target, weight=self.weight, reduction="none", label_smoothing=self.label_smoothing
        )
        w = self.weight[target] if self.weight is not None else torch.ones_like(ce)
        gz1 = (ce * labelled).sum() / (w * labelled).sum().clamp(min=1e-12)
        return gz1 + self.vote_weight * vote_loss(questions, votes)


def make_criterion(cfg: TrainConfig, data: Splits) -> nn.Module:
    """The loss of a run: cross-entropy (class weights with ``--balance loss``), or :class:`JointLoss`."""
    y = data.tensors["train"][1]
    weight = class_weights(y[y >= 0], data.num_classes, cfg.balance_power) if cfg.balance == "loss" else None
    if data.train_votes is None:
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    return JointLoss(weight, cfg.label_smoothing, cfg.vote_weight)


def joint_forward_loss(
    accelerator: Accelerator, model: nn.Module, criterion: nn.Module, x: torch.Tensor, y: torch.Tensor,
    votes: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """GZ1 logits and the joint loss of a batch (one forward through the backbone for both heads)."""
    with accelerator.autocast():
        features = model.forward_features(x)
        logits = model.forward_head(features)
        questions = model.forward_questions(features)
    questions = {q: v.float() for q, v in questions.items()}
    return logits, criterion(logits.float(), questions, y, votes)


@contextlib.contextmanager
def detached_vote_head(model: nn.Module, folder: Path) -> Iterator[None]:
    """Inside: ``model`` without its vote head (the model folder is the GZ1 classifier every loader reads);
    after: the head's weights written to ``folder / VOTE_HEAD_FILE`` and the head put back.

    Args:
        model: The unwrapped model (no-op without a vote head).
        folder: The model folder the block writes.
    """
    head = getattr(model, "vote_head", None)
    if head is None:
        yield
        return
    model.vote_head = None
    try:
        yield
    finally:
        model.vote_head = head
    weights = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    safetensors.torch.save_file(
        weights, str(folder / VOTE_HEAD_FILE), metadata={"questions": ",".join(head.questions)}
    )
