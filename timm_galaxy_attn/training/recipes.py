"""Recipes: the values of every recipe-controlled option left unset on the command line."""

from __future__ import annotations

from typing import Any

__all__ = ["RECIPES", "RECIPE_KEYS"]

RECIPES: dict[str, dict[str, Any]] = {
    # Misquith (2023): 32x32 inputs, batch 128, SGD lr 0.1 momentum 0.9 weight decay 5e-4, lr halved every
    # 25 epochs; no augmentation beyond the resize, plain cross-entropy, fp32.
    "paper": dict(
        image_size=32,
        batch_size=128,
        epochs=100,
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        sched="step",
        decay_epochs=25,
        decay_rate=0.5,
        warmup_epochs=0,
        label_smoothing=0.0,
        balance="none",
        balance_power=1.0,
        rotate="none",
        flip=False,
        max_shift=0.0,
        brightness=0.0,
        contrast=0.0,
        mixed_precision="no",
        channels_last=False,
        clip_grad=0.0,
    ),
    # Ours, for a CPU budget: AdamW with warmup + cosine, label smoothing, class weights in the loss (inverse
    # square-root frequency: rare classes count without overfitting the 48-image ones), any-angle rotations
    # and mirror flips (with the chirality label swap), bf16 autocast and channels_last.
    "default": dict(
        image_size=None,
        batch_size=64,
        epochs=30,
        optimizer="adamw",
        lr=2e-3,
        momentum=0.9,
        weight_decay=0.05,
        sched="cosine",
        decay_epochs=25,
        decay_rate=0.5,
        warmup_epochs=1,
        label_smoothing=0.1,
        balance="loss",
        balance_power=0.5,
        rotate="any",
        flip=True,
        max_shift=0.0625,
        brightness=0.1,
        contrast=0.1,
        mixed_precision="auto",  # bf16 where native (timm_galaxy_attn.device); the run records the choice
        channels_last=True,
        clip_grad=5.0,
    ),
}

# The options a recipe sets (the same in every recipe), in the order train_config.json lists them.
RECIPE_KEYS: tuple[str, ...] = tuple(RECIPES["default"])
