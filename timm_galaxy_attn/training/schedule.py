"""The learning-rate schedule, built from torch schedulers and stepped once per optimizer step.

A linear warm-up (``LinearLR``) over ``round(warmup_epochs * steps_per_epoch)`` steps, then, chained by
``SequentialLR``:

- ``step``: ``decay_rate ** (epoch // decay_epochs)`` (the paper: halved every 25 epochs), as a
  ``MultiStepLR`` with the decays at the epoch boundaries counted from the start of the run;
- ``cosine``: from 1 down to ``min_factor`` of each group's own lr over the steps after the warm-up. The
  floor is relative to each parameter group (a fine-tuned backbone's lr is scaled down), which
  ``CosineAnnealingLR`` (one absolute ``eta_min`` for all groups) cannot express, so this phase is a
  ``LambdaLR``;
- ``constant``: 1 (``ConstantLR`` with factor 1).

The schedulers' state goes into every checkpoint (``Accelerator.save_state``), so a resumed run continues it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import ConstantLR, LambdaLR, LinearLR, LRScheduler, MultiStepLR, SequentialLR

from .config import TrainConfig, as_config

__all__ = ["SCHEDULES", "build_scheduler", "lr_factor", "make_lr_lambda"]

SCHEDULES = ("step", "cosine", "constant")


def _main_phase(
    optimizer: torch.optim.Optimizer,
    sched: str,
    *,
    warmup: int,
    total: int,
    steps_per_epoch: int,
    decay_epochs: int,
    decay_rate: float,
    min_factor: float,
) -> LRScheduler:
    """The scheduler of the steps after the warm-up (its step 0 is the run's step ``warmup``)."""
    if sched == "step":
        period = decay_epochs * steps_per_epoch  # decays at the run's steps k * period
        decays = [max(k * period - warmup, 0) for k in range(1, total // period + 1)]
        return MultiStepLR(optimizer, milestones=decays, gamma=decay_rate)
    if sched == "constant":
        return ConstantLR(optimizer, factor=1.0, total_iters=0)
    if sched == "cosine":
        span = max(total - warmup, 1)

        def cosine(step: int) -> float:
            progress = min(step / span, 1.0)
            return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

        return LambdaLR(optimizer, cosine)
    raise ValueError(f"unknown schedule {sched!r}; choose step, cosine or constant")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig | Mapping[str, Any],
    steps_per_epoch: int,
    min_factor: float = 0.01,
) -> LRScheduler:
    """The run's schedule over ``cfg.epochs * steps_per_epoch`` optimizer steps (see the module doc)."""
    cfg = as_config(cfg)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    main = _main_phase(
        optimizer,
        cfg.sched,
        warmup=warmup,
        total=cfg.epochs * steps_per_epoch,
        steps_per_epoch=steps_per_epoch,
        decay_epochs=cfg.decay_epochs,
        decay_rate=cfg.decay_rate,
        min_factor=min_factor,
    )
    if warmup == 0:
        return main
    # (step + 1) / warmup at steps 0 .. warmup - 1
    ramp = LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=max(warmup - 1, 1))
    return SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def make_lr_lambda(
    cfg: TrainConfig | Mapping[str, Any], steps_per_epoch: int, min_factor: float = 0.01
) -> Callable[[int], float]:
    """The multiplier of the base lr at each optimizer step (0-based), read off :func:`build_scheduler`."""
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = build_scheduler(probe, cfg, steps_per_epoch, min_factor=min_factor)
    factors = [probe.param_groups[0]["lr"]]

    def factor(step: int) -> float:
        while len(factors) <= step:
            probe.step()
            scheduler.step()
            factors.append(probe.param_groups[0]["lr"])
        return factors[step]

    return factor


def lr_factor(
    step: int,
    *,
    steps_per_epoch: int,
    epochs: int,
    sched: str,
    warmup_epochs: float = 0.0,
    decay_epochs: int = 25,
    decay_rate: float = 0.5,
    min_factor: float = 0.01,
) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based) of the schedule these values give."""
    cfg = dict(
        epochs=epochs,
        sched=sched,
        warmup_epochs=warmup_epochs,
        decay_epochs=decay_epochs,
        decay_rate=decay_rate,
    )
    return make_lr_lambda(cfg, steps_per_epoch, min_factor=min_factor)(step)
