"""The data order, one training epoch (exactly resumable) and one evaluation pass, over accelerate-prepared
objects.

Determinism: the data order of epoch ``e`` is a permutation drawn from ``(seed, e)`` and the torch RNG is
re-seeded from ``(seed, epoch, step, process)`` before each step, so a resumed run replays exactly what an
uninterrupted run does.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from accelerate import Accelerator
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .config import TrainConfig
from .data import class_weights
from .finetune import freeze_batchnorm_stats
from .joint import joint_epoch_order, joint_forward_loss

__all__ = ["EpochStats", "Trainer", "epoch_order", "predict", "score", "step_batches", "train_epoch"]


def epoch_order(cfg: TrainConfig, epoch: int, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Training indices of ``epoch``: a permutation (or a class-balanced draw) from (seed, epoch).

    Args:
        cfg: ``seed``, ``balance`` (``sampler``: a draw with class weights) and ``balance_power``.
        epoch: The epoch (0-based).
        labels: Labels of the training images.
        num_classes: Classes of the dataset.
    """
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    if cfg.balance == "sampler":
        w = class_weights(labels, num_classes, cfg.balance_power)[labels].double()
        return torch.multinomial(w, len(labels), replacement=True, generator=g)
    return torch.randperm(len(labels), generator=g)


def step_batches(order: torch.Tensor, global_batch: int, world: int) -> list[torch.Tensor]:
    """Split the epoch's order into global batches (a final one smaller than ``world`` is dropped).

    Args:
        order: Training indices of the epoch (:func:`epoch_order`).
        global_batch: Images per optimizer step over all processes.
        world: Number of processes (each takes its share of every batch).
    """
    batches = list(order.split(global_batch))
    if batches and len(batches[-1]) < world:
        batches.pop()
    return batches


@dataclasses.dataclass
class Trainer:
    """What every training step needs; ``forward`` is the model itself or ``torch.compile(model)``."""

    accelerator: Accelerator
    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler
    criterion: nn.Module
    augment: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    train_x: torch.Tensor
    train_y: torch.Tensor
    num_classes: int
    cfg: TrainConfig
    train_votes: torch.Tensor | None = None  # --joint (joint.py): vote rows and sources of train_x
    train_sources: torch.Tensor | None = None

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def global_batch(self) -> int:
        return self.cfg.batch_size * self.world

    def epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        """The global batches of ``epoch`` (each split over the processes at its step)."""
        if self.train_sources is None:
            order = epoch_order(self.cfg, epoch, self.train_y, self.num_classes)
        else:
            order = joint_epoch_order(self.cfg, epoch, self.train_y, self.train_sources, self.num_classes)
        return step_batches(order, self.global_batch, self.world)

    @functools.cached_property
    def steps_per_epoch(self) -> int:
        return len(self.epoch_batches(0))


@dataclasses.dataclass
class EpochStats:
    """Summed over processes: loss * n, correct, n; and this session's images and seconds of the epoch."""

    totals: torch.Tensor
    images: int
    seconds: float


def train_step(t: Trainer, idx: torch.Tensor, step_seed: int) -> tuple[float, int, int]:
    """One optimizer step on the training images ``idx``; returns (loss, correct, n) of this process."""
    acc, cfg = t.accelerator, t.cfg
    torch.manual_seed(step_seed)  # every draw of this step (augmentation, dropout): resumable exactly
    labels = t.train_y[idx].to(acc.device)
    x, y = t.augment(
        t.train_x[idx].to(acc.device), labels.clamp(min=0), generator=torch.Generator().manual_seed(step_seed)
    )
    y = torch.where(labels < 0, labels, y)  # -1 (no GZ1 label, --joint) stays -1 under the mirror swap
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if t.train_votes is None:
        with acc.autocast():
            logits = t.forward(x)
        loss = t.criterion(logits.float(), y)
    else:
        votes = t.train_votes[idx].to(acc.device)
        logits, loss = joint_forward_loss(acc, t.model, t.criterion, x, y, votes)
    acc.backward(loss)
    if cfg.clip_grad:
        acc.clip_grad_norm_(t.model.parameters(), cfg.clip_grad)
    t.optimizer.step()
    t.scheduler.step()
    t.optimizer.zero_grad(set_to_none=True)
    return loss.item(), (logits.argmax(1) == y).sum().item(), int((y >= 0).sum())


def _checkpoint_due(cfg: TrainConfig, global_step: int, step: int, n_steps: int) -> bool:
    every = cfg.checkpoint_every_steps
    return bool(every) and global_step % every == 0 and step < n_steps - 1


def train_epoch(
    t: Trainer, epoch: int, state: dict[str, Any], checkpoint: Callable[..., None]
) -> EpochStats | None:
    """Train ``epoch`` from ``state`` (mid-epoch after a resume); None when --stop-after-steps is reached.

    Args:
        t: The trainer.
        epoch: The epoch (0-based).
        state: The trainer state (``checkpoints.new_state``), updated in place.
        checkpoint: ``checkpoint(**state_updates)`` saves a mid-epoch checkpoint (--checkpoint-every-steps).
    """
    acc, cfg = t.accelerator, t.cfg
    t.model.train()
    if cfg.freeze_backbone:
        freeze_batchnorm_stats(t.model)
    batches = t.epoch_batches(epoch)
    start_step = state["step_in_epoch"] if epoch == state["epoch"] else 0
    # this process's running loss * n, correct, n (kept in the state so a mid-epoch resume continues it)
    sums = torch.tensor(state.get("epoch_sums") if start_step else [0.0, 0.0, 0.0], dtype=torch.float64)
    bar = tqdm(
        total=len(batches),
        initial=start_step,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        disable=not acc.is_local_main_process,
        unit="step",
        dynamic_ncols=True,
    )
    t0, seen = time.time(), 0
    for step in range(start_step, len(batches)):
        step_seed = cfg.seed * 1_000_003 + (epoch * t.steps_per_epoch + step) * t.world + acc.process_index
        loss_value, correct, n = train_step(
            t, batches[step].tensor_split(t.world)[acc.process_index], step_seed
        )
        state["global_step"] += 1
        sums += torch.tensor([loss_value * n, correct, n], dtype=torch.float64)
        seen += len(batches[step])
        lr = t.scheduler.get_last_lr()[0]
        bar.update(1)
        bar.set_postfix(
            loss=f"{loss_value:.3f}", img_s=f"{seen / max(time.time() - t0, 1e-9):.0f}", lr=f"{lr:.2e}"
        )
        if state["global_step"] % cfg.log_every == 0:
            acc.log({"train/loss_step": loss_value, "train/lr": lr}, step=state["global_step"])
        if _checkpoint_due(cfg, state["global_step"], step, len(batches)):
            checkpoint(
                epoch=epoch,
                step_in_epoch=step + 1,
                epoch_sums=sums.tolist(),
                train_time_s=state["train_time_s"] + time.time() - t0,
                train_images=state["train_images"] + seen,
            )
            t0, seen = time.time(), 0  # already counted into the saved state
        if cfg.stop_after_steps is not None and state["global_step"] >= cfg.stop_after_steps:
            bar.close()
            return None
    bar.close()
    epoch_time = time.time() - t0
    state["train_time_s"] += epoch_time
    state["train_images"] += seen
    totals = acc.reduce(sums.to(acc.device), reduction="sum").cpu()
    return EpochStats(totals, seen, epoch_time)


@torch.no_grad()
def predict(
    accelerator: Accelerator,
    model: nn.Module,
    loader: DataLoader,
    data_config: dict[str, Any],
    channels_last: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every example of ``loader``, gathered over processes exactly once.

    Args:
        accelerator: The run's Accelerator (autocast, gathering).
        model: The prepared model (put in eval mode).
        loader: A prepared evaluation loader of uint8 images and labels.
        data_config: The run's data config (normalisation).
        channels_last: Feed the model channels_last tensors.
    """
    from timm_galaxy_attn.data import normalize_batch

    model.eval()
    all_logits, all_labels = [], []
    for xb, yb in loader:
        x = normalize_batch(xb, data_config)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with accelerator.autocast():
            logits = model(x)
        logits, yb = accelerator.gather_for_metrics((logits.float(), yb))
        all_logits.append(logits.cpu())
        all_labels.append(yb.cpu())
    return torch.cat(all_logits).numpy(), torch.cat(all_labels).numpy()


def score(logits: np.ndarray, labels: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Classification metrics of ``logits`` (softmax probabilities in float64).

    Args:
        logits: ``(N, C)`` logits.
        labels: ``(N,)`` true labels.
        label_names: The C class names.
    """
    from timm_galaxy_attn.metrics import compute_classification_metrics

    probs = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
    return compute_classification_metrics(labels, logits.argmax(1), probs, label_names=label_names)
