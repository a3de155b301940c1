"""The optimizer (``timm.optim.create_optimizer_v2``) and its LR schedule, stepped once per optimizer step.

Optimizer: timm's ``momentum`` (SGD with classical momentum; timm's ``sgd`` would be Nesterov) or ``adamw``;
norms, biases and other 1-D parameters take no weight decay. Fine-tuning splits each of those groups into
``head`` (at ``lr``) and ``backbone`` (at ``lr * backbone_lr_scale``).

Schedule: a linear warm-up over ``round(warmup_epochs * steps_per_epoch)`` steps at ``(step + 1) / warmup``
(torch ``LinearLR``: transformers' warm-ups start at lr 0, a step that learns nothing), then, chained by
``SequentialLR``:

- ``step``: ``decay_rate ** (epoch // decay_epochs)`` (the paper: halved every 25 epochs), torch's
  ``MultiStepLR`` with the decays at the epoch boundaries counted from the start of the run;
- ``cosine``: transformers' ``get_cosine_with_min_lr_schedule_with_warmup``, from 1 down to
  :data:`MIN_LR_RATE` of each group's own lr (a fine-tuned backbone's floor is scaled with its lr);
- ``constant``: transformers' ``get_constant_schedule``.

The schedulers' state goes into every checkpoint (``Accelerator.save_state``), so a resumed run continues it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from timm.optim import create_optimizer_v2, param_groups_weight_decay
from torch.optim.lr_scheduler import LinearLR, LRScheduler, MultiStepLR, SequentialLR
from transformers.optimization import get_constant_schedule, get_cosine_with_min_lr_schedule_with_warmup

from .config import TrainConfig
from .finetune import head_parameter_names

__all__ = ["MIN_LR_RATE", "build_scheduler", "make_lr_lambda", "make_optimizer"]

# The cosine schedule's floor, as a fraction of each parameter group's own lr.
MIN_LR_RATE = 0.01
# --optimizer -> timm's name.
_TIMM_OPTIMIZERS = {"sgd": "momentum", "adamw": "adamw"}


def _finetune_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """timm's decay / no-decay groups of the trainable parameters, each split into head and backbone."""
    named = dict(model.named_parameters())
    head = {id(named[n]) for n in head_parameter_names(model)}
    lrs = {"head": cfg.lr, "backbone": cfg.lr * cfg.backbone_lr_scale}
    no_decay_names = getattr(model, "no_weight_decay", set)()  # as timm's own grouping takes it
    groups = []
    for part, lr in lrs.items():  # head first: its lr is the one a run logs
        for group in param_groups_weight_decay(model, cfg.weight_decay, no_weight_decay_list=no_decay_names):
            params = [p for p in group["params"] if (id(p) in head) == (part == "head")]
            decay = "decay" if group["weight_decay"] else "no_decay"
            if params:
                groups.append({**group, "params": params, "lr": lr, "part": part, "name": f"{part}.{decay}"})
    return groups


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (classical momentum) or AdamW over the trainable parameters, by ``timm.optim.create_optimizer_v2``.

    Args:
        model: The model; frozen parameters are left out.
        cfg: ``optimizer``, ``lr``, ``momentum``, ``weight_decay``; with ``pretrained`` the head/backbone
            groups (``part``) at ``lr`` and ``lr * backbone_lr_scale``.
    """
    return create_optimizer_v2(
        model,
        opt=_TIMM_OPTIMIZERS[cfg.optimizer],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        momentum=cfg.momentum,
        param_group_fn=(lambda m: _finetune_groups(m, cfg)) if cfg.pretrained else None,
    )


def _main_phase(optimizer: torch.optim.Optimizer, cfg: TrainConfig, warmup: int, steps_per_epoch: int):
    """The scheduler of the steps after the warm-up (its step 0 is the run's step ``warmup``)."""
    total = cfg.epochs * steps_per_epoch
    if cfg.sched == "step":
        period = cfg.decay_epochs * steps_per_epoch  # decays at the run's steps k * period
        decays = [max(k * period - warmup, 0) for k in range(1, total // period + 1)]
        return MultiStepLR(optimizer, milestones=decays, gamma=cfg.decay_rate)
    if cfg.sched == "constant":
        return get_constant_schedule(optimizer)
    if cfg.sched == "cosine":
        return get_cosine_with_min_lr_schedule_with_warmup(
            optimizer, num_warmup_steps=0, num_training_steps=max(total - warmup, 1), min_lr_rate=MIN_LR_RATE
        )
    raise ValueError(f"unknown schedule {cfg.sched!r}; choose step, cosine or constant")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> LRScheduler:
    """The run's schedule over ``cfg.epochs * steps_per_epoch`` optimizer steps (see the module doc).

    Args:
        optimizer: The optimizer; every parameter group follows the same factor of its own lr.
        cfg: ``sched``, ``epochs``, ``warmup_epochs``, ``decay_epochs`` and ``decay_rate``.
        steps_per_epoch: Optimizer steps per epoch.
    """
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    main = _main_phase(optimizer, cfg, warmup, steps_per_epoch)
    if warmup == 0:
        return main
    ramp = LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=max(warmup - 1, 1))
    return SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def make_lr_lambda(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The multiplier of the base lr at each optimizer step (0-based), read off :func:`build_scheduler`.

    Args:
        cfg: The schedule options (as for :func:`build_scheduler`).
        steps_per_epoch: Optimizer steps per epoch.
    """
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = build_scheduler(probe, cfg, steps_per_epoch)
    factors = [probe.param_groups[0]["lr"]]

    def factor(step: int) -> float:
        while len(factors) <= step:
            probe.step()
            scheduler.step()
            factors.append(probe.param_groups[0]["lr"])
        return factors[step]

    return factor
