"""Measures of saliency faithfulness used by benchmarks/faithfulness.py (model-agnostic, no data loading).

- ``bootstrap_mean``: the mean of per-image values with a 95% percentile bootstrap interval over images.
- ``grad_cam``: Grad-CAM (Selvaraju et al. 2017), written here with a forward hook and ``autograd.grad``.
- ``perturbation_curves`` / ``curve_auc``: deletion and insertion curves (Petsiuk et al. 2018, RISE).
- ``random_init_state`` / ``cascade``: cascading model randomisation (Adebayo et al. 2018).
- ``pointing_hits``: the pointing game (Zhang et al. 2016).
- ``uniform_attention``: replace attended vectors by the plain average of the local features.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from _common import percentile_interval

N_BOOT = 2000


def bootstrap_mean(values: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, float]:
    """Mean of ``values`` (one per image) and its 95% percentile bootstrap interval (images resampled)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(v) == 0:
        raise ValueError("bootstrap_mean needs at least one value")
    mean = float(v.mean())
    # scipy needs two values; every resample of a single value is that value
    lo, hi = percentile_interval((v,), np.mean, n_boot, seed) if len(v) > 1 else (mean, mean)
    return {"mean": mean, "lo": float(lo), "hi": float(hi), "n": int(len(v))}


def upsample(maps: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """(N, h, w) maps -> (N, size, size) float32 by bilinear interpolation (align_corners=False)."""
    t = torch.as_tensor(np.asarray(maps, dtype=np.float32)).unsqueeze(1)
    if t.shape[-1] == size and t.shape[-2] == size:
        return t.squeeze(1)
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False).squeeze(1)


# ----------------------------------------------------------------------------------------------------------
# Grad-CAM
# ----------------------------------------------------------------------------------------------------------


def grad_cam(
    model: nn.Module, layer: nn.Module, x: torch.Tensor, classes: torch.Tensor, batch: int = 64
) -> np.ndarray:
    """Grad-CAM of ``classes`` at the output of ``layer``: ReLU(sum_c alpha_c A_c), alpha_c the spatial mean
    of d logit / d A_c. ``x`` is the model's (normalised) input; returns (N, h, w) float64 maps."""
    store: dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda m, args, out: store.__setitem__("a", out))
    out = []
    try:
        for i in range(0, len(x), batch):
            with torch.enable_grad():
                xb = x[i : i + batch].detach().clone().requires_grad_(True)
                logits = model(xb)
                target = logits.gather(1, classes[i : i + batch].view(-1, 1).to(logits.device)).sum()
                act = store["a"]
                (grad,) = torch.autograd.grad(target, act)
            weights = grad.mean(dim=(2, 3), keepdim=True)
            out.append(F.relu((weights * act).sum(1)).detach().double().cpu())
    finally:
        handle.remove()
    return torch.cat(out).numpy()


# ----------------------------------------------------------------------------------------------------------
# Deletion / insertion
# ----------------------------------------------------------------------------------------------------------


def sky_baseline(x_uint8: torch.Tensor) -> torch.Tensor:
    """Per image and band, the median pixel (the sky level of a cutout), filling the whole image (uint8)."""
    med = x_uint8.flatten(2).float().median(dim=2).values.round().to(torch.uint8)
    return med[:, :, None, None].expand_as(x_uint8).contiguous()


def _top_masks(maps: torch.Tensor, steps: int) -> Iterator[torch.Tensor]:
    """For k = 0..steps: (N, 1, S, S) masks of the k/steps most salient pixels (ties by position)."""
    n, h, w = maps.shape
    order = torch.argsort(-maps.reshape(n, -1), dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(h * w).expand(n, -1).contiguous())
    for k in range(steps + 1):
        yield (ranks < round(k * h * w / steps)).view(n, 1, h, w)


@torch.no_grad()
def perturbation_curves(
    predict: Callable[[torch.Tensor], torch.Tensor],
    x_uint8: torch.Tensor,
    maps: np.ndarray | torch.Tensor,
    classes: torch.Tensor,
    baseline: torch.Tensor,
    steps: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion curves, each (N, steps + 1): the probability of ``classes`` as the top k/steps
    of pixels (ranked by ``maps``, upsampled to the image) are replaced by ``baseline`` (deletion) or revealed
    on it (insertion). ``predict`` maps a uint8 batch to class probabilities."""
    full = upsample(maps, x_uint8.shape[-1])
    cls = classes.view(-1, 1)
    dele, ins = [], []
    for top in _top_masks(full, steps):
        dele.append(predict(torch.where(top, baseline, x_uint8)).gather(1, cls).squeeze(1))
        ins.append(predict(torch.where(top, x_uint8, baseline)).gather(1, cls).squeeze(1))
    return torch.stack(dele, 1).double().numpy(), torch.stack(ins, 1).double().numpy()


def curve_auc(curves: np.ndarray) -> np.ndarray:
    """Per row, the trapezoid area under a curve sampled at fractions 0, 1/steps, ..., 1."""
    c = np.asarray(curves, dtype=np.float64)
    return (c[:, 1:] + c[:, :-1]).sum(axis=1) / (2 * (c.shape[1] - 1))


# ----------------------------------------------------------------------------------------------------------
# Cascading randomisation
# ----------------------------------------------------------------------------------------------------------


def random_init_state(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of a freshly initialised copy of ``model``: every layer's ``reset_parameters``
    (BatchNorm statistics reset too), then the model's own ``_init_weights`` scheme where it has one."""
    fresh = copy.deepcopy(model)
    torch.manual_seed(seed)
    for m in fresh.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    if hasattr(fresh, "_init_weights"):
        fresh._init_weights()
    return {k: v.detach().clone() for k, v in fresh.state_dict().items()}


def cascade(
    model: nn.Module, steps: Sequence[tuple[str, Sequence[str]]], seed: int = 0
) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(step name, model)`` with the parameters under each step's module prefixes re-initialised,
    cumulatively (Adebayo et al.'s cascading randomisation). ``model`` itself is left untouched."""
    fresh = random_init_state(model, seed)
    current = copy.deepcopy(model).eval()
    for name, prefixes in steps:
        state = current.state_dict()
        for key in state:
            if any(key == p or key.startswith(p + ".") for p in prefixes):
                state[key] = fresh[key]
        current.load_state_dict(state)
        yield name, current


# ----------------------------------------------------------------------------------------------------------
# Pointing game, decision ablation
# ----------------------------------------------------------------------------------------------------------


def pointing_hits(maps: np.ndarray, masks: np.ndarray, tolerance: int = 1) -> np.ndarray:
    """Per image: does the maximum of the map (upsampled bilinearly to the mask) fall within ``tolerance``
    pixels of the mask? (The pointing game; ties go to the first position.)"""
    m = torch.as_tensor(np.asarray(masks, dtype=np.float32)).unsqueeze(1)
    if tolerance > 0:
        m = F.max_pool2d(m, 2 * tolerance + 1, stride=1, padding=tolerance)
    up = upsample(maps, m.shape[-1])
    best = up.reshape(len(up), -1).argmax(1)
    return m.reshape(len(m), -1).gather(1, best.view(-1, 1)).squeeze(1).numpy() > 0.5


@contextmanager
def uniform_attention(model: nn.Module, names: Sequence[str]) -> Iterator[None]:
    """Inside the block, the estimators ``names`` return the plain mean of their local features (uniform
    attention) instead of the attention-weighted sum; the maps they return are uniform too."""

    def hook(module: nn.Module, args: tuple, output: tuple[torch.Tensor, torch.Tensor]):
        local, amap = args[0], output[1]
        return local.flatten(2).mean(-1), torch.full_like(amap, 1.0 / amap[0].numel())

    handles = [getattr(model, n).register_forward_hook(hook) for n in names]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
