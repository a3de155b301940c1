"""A multi-question head for Galaxy Zoo 2 vote fractions, and its loss.

Galaxy Zoo 2 (Willett et al. 2013) asks volunteers a decision tree of questions about each SDSS galaxy; the
Kaggle "Galaxy Challenge" publishes, per galaxy, the fraction of all volunteers who reached a question and
gave each answer (cumulative down the tree). Like Zoobot's tree heads (Walmsley et al. 2022,
``FinetuneableZoobotTree``), :class:`VoteHead` predicts one answer distribution per question from the
backbone's pooled features, and :func:`vote_loss` scores it with a soft-label cross-entropy against the
normalised vote fractions, each question weighted by the fraction of volunteers who reached it.

``VOTE_QUESTIONS`` (question -> answer columns) sets the order of a vote-target row: the answers of each
question in turn. Besides the GZ2 questions of ``KAGGLE_VOTE_COLUMNS`` it has ``cc_spiral``, the
spiral / non-spiral label of ``gz2_kaggle_spiral`` (a derived label, one-hot, weight 1 where known).

Trained weights keep the head in ``VOTE_HEAD_FILE`` beside their ``model.safetensors`` (which holds the GZ1
classifier alone, so every loader reads it as before); ``vote_head=True`` with ``pretrained=True`` also loads
the head (:func:`add_vote_head_weights`, timm's pretrained filter). Use::

    model = timm.create_model("galaxy_attn_vgg_tiny_s4.gz_sdss", pretrained=True, vote_head=True)
    features = model.forward_features(x)
    logits = model.forward_head(features)            # the GZ1 classes, as without the head
    questions = model.forward_questions(features)    # {"gz2_t01": (B, 3) logits, ...}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .labels import GZ2_SPIRAL_CLASSES

__all__ = [
    "VOTE_HEAD_FILE",
    "GZ2_QUESTIONS",
    "SPIRAL_QUESTION",
    "VOTE_QUESTIONS",
    "VoteHead",
    "add_vote_head_weights",
    "has_vote_head_weights",
    "question_slices",
    "read_vote_head",
    "vote_loss",
    "vote_target_columns",
]

VOTE_HEAD_FILE = "vote_head.safetensors"  # the head's weights, beside model.safetensors


def _gz2_questions() -> dict[str, tuple[str, ...]]:
    """The GZ2 questions of the Kaggle columns, grouped by task prefix (``gz2_t01_smooth`` -> ``gz2_t01``)."""
    from .data.gz2_kaggle import KAGGLE_VOTE_COLUMNS

    questions: dict[str, list[str]] = {}
    for column in KAGGLE_VOTE_COLUMNS.values():
        questions.setdefault(column[: len("gz2_t01")], []).append(column)
    return {q: tuple(answers) for q, answers in questions.items()}


GZ2_QUESTIONS: dict[str, tuple[str, ...]] = _gz2_questions()
SPIRAL_QUESTION = "cc_spiral"
VOTE_QUESTIONS: dict[str, tuple[str, ...]] = {
    **GZ2_QUESTIONS,
    SPIRAL_QUESTION: tuple(f"cc_spiral_{name.replace('-', '_')}" for name in GZ2_SPIRAL_CLASSES),
}


def vote_target_columns(questions: Mapping[str, tuple[str, ...]] = VOTE_QUESTIONS) -> list[str]:
    """The columns of a vote-target row, in order (the answers of each question in turn)."""
    return [column for answers in questions.values() for column in answers]


def question_slices(questions: Mapping[str, tuple[str, ...]] = VOTE_QUESTIONS) -> dict[str, slice]:
    """Where each question's answers sit in a vote-target row."""
    slices, start = {}, 0
    for q, answers in questions.items():
        slices[q] = slice(start, start + len(answers))
        start += len(answers)
    return slices


class VoteHead(nn.Module):
    """One linear classifier per question over the pooled features.

    Args:
        in_features: Width of the features (the model's ``num_features``).
        questions: Question -> answer names (default ``VOTE_QUESTIONS``).
    """

    def __init__(self, in_features: int, questions: Mapping[str, tuple[str, ...]] = VOTE_QUESTIONS) -> None:
        super().__init__()
        self.questions = {q: tuple(a) for q, a in questions.items()}
        self.heads = nn.ModuleDict({q: nn.Linear(in_features, len(a)) for q, a in self.questions.items()})
        for head in self.heads.values():
            nn.init.normal_(head.weight, std=0.01)
            nn.init.zeros_(head.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-question logits ``{question: (B, answers)}`` of the features ``x`` (B, in_features)."""
        return {q: head(x) for q, head in self.heads.items()}


def vote_loss(
    outputs: Mapping[str, torch.Tensor],
    votes: torch.Tensor,
    questions: Mapping[str, tuple[str, ...]] = VOTE_QUESTIONS,
) -> torch.Tensor:
    """Soft-label cross-entropy per question, weighted by the share of volunteers who reached it.

    For a galaxy and question q with cumulative fractions ``f_q`` (its slice of ``votes``), the weight is
    ``r_q = sum(f_q)`` and the target ``f_q / r_q``; the galaxy's loss is ``sum_q r_q * CE(target, p_q)``.
    Galaxies whose row is all zeros (no votes, e.g. gz1_sdss images) count neither in the sum nor in the
    mean: the result is the mean over the galaxies with votes (0, with a gradient, when there are none).

    Args:
        outputs: ``{question: (B, answers) logits}`` (:meth:`VoteHead.forward`).
        votes: ``(B, sum of answers)`` cumulative vote fractions in ``vote_target_columns`` order.
        questions: The questions of ``votes`` (default ``VOTE_QUESTIONS``).
    """
    slices = question_slices(questions)
    width = sum(len(a) for a in questions.values())
    if votes.shape[1] != width:
        raise ValueError(
            f"votes has {votes.shape[1]} columns; these questions need {width} (vote_target_columns order)."
        )
    per_galaxy = votes.new_zeros(votes.shape[0])
    for q, where in slices.items():
        fractions = votes[:, where].float()
        reach = fractions.sum(1)
        target = fractions / reach.clamp(min=1e-8).unsqueeze(1)
        ce = -(target * F.log_softmax(outputs[q].float(), dim=1)).sum(1)
        per_galaxy = per_galaxy + reach * ce
    voted = (votes.sum(1) > 0).float()
    return (per_galaxy * voted).sum() / voted.sum().clamp(min=1)


def _vote_head_file(pretrained_cfg: Mapping[str, Any]) -> Path:
    """Where the vote head of a pretrained config lives: beside its file, in its folder, or on the Hub."""
    file, source, hub_id = (
        pretrained_cfg.get("file"),
        pretrained_cfg.get("source"),
        pretrained_cfg.get("hf_hub_id"),
    )
    if source == "local-dir":
        return Path(file) / VOTE_HEAD_FILE
    if file:
        return Path(file).with_name(VOTE_HEAD_FILE)
    if hub_id:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(hub_id, VOTE_HEAD_FILE))
    raise RuntimeError("These pretrained weights name no file or Hub repository to read a vote head from.")


def has_vote_head_weights(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True when ``state_dict`` already holds a vote head (``vote_head.*``)."""
    return any(k.startswith("vote_head.") for k in state_dict)


def read_vote_head(path: Path) -> dict[str, torch.Tensor]:
    """The weights of a ``VOTE_HEAD_FILE``, named as in the model (``vote_head.*``); safetensors only."""
    import safetensors.torch

    return {f"vote_head.{k}": v for k, v in safetensors.torch.load_file(str(path)).items()}


def add_vote_head_weights(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """timm's pretrained filter: with a vote head on ``model``, its weights from ``VOTE_HEAD_FILE``.

    Args:
        state_dict: The pretrained weights (``model.safetensors``: the GZ1 classifier).
        model: The model being built (its ``pretrained_cfg`` says where the weights came from).

    Returns:
        ``state_dict`` with ``vote_head.*`` added when the model has a head and the weights lack one.
    """
    if getattr(model, "vote_head", None) is None or has_vote_head_weights(state_dict):
        return state_dict
    path = _vote_head_file(model.pretrained_cfg)
    if not path.is_file():
        raise RuntimeError(
            f"These weights have no vote head ({path} does not exist): create the model without "
            "vote_head=True, or use weights trained with --joint (docs/pretraining.md)."
        )
    return {**state_dict, **read_vote_head(path)}
