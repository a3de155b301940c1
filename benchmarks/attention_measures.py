"""Map arithmetic of benchmarks/attention.py (numpy / torch, no model): resizing, null maps and the measures.

Maps are compared at the estimator's own resolution; softmax maps sum to 1, sigmoid maps are divided by their
sum first (:func:`as_distribution`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

TOP_FRACTION = 0.2
BLANK_ENTROPY = 0.98  # normalised entropy above which a map is called blank (near uniform)
PEAKED_MASS = 0.5  # largest single-position mass above which a map is called collapsed to one pixel


def area_resize(a: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(N, H, W) -> (N, h, w) by area averaging (adaptive average pooling)."""
    t = torch.as_tensor(np.asarray(a, dtype=np.float64)).unsqueeze(1)
    return F.adaptive_avg_pool2d(t, size).squeeze(1).numpy()


def as_distribution(maps: np.ndarray) -> np.ndarray:
    """Each (h, w) map scaled to sum to 1 (a softmax map is unchanged)."""
    m = np.clip(np.asarray(maps, dtype=np.float64), 0, None)
    s = m.sum(axis=(1, 2), keepdims=True)
    return np.where(s > 0, m / np.where(s > 0, s, 1), 1.0 / (m.shape[1] * m.shape[2]))


def brightness(images_hwc: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, H, W) mean of the three bands."""
    return np.asarray(images_hwc, dtype=np.float64).mean(axis=-1)


def centre_prior(n: int, size: tuple[int, int], sigma_frac: float = 1 / 6) -> np.ndarray:
    """A centred isotropic Gaussian (sigma = sigma_frac of the side), one per image, summing to 1."""
    h, w = size
    yy, xx = np.meshgrid((np.arange(h) + 0.5) / h - 0.5, (np.arange(w) + 0.5) / w - 0.5, indexing="ij")
    g = np.exp(-(xx**2 + yy**2) / (2 * sigma_frac**2))
    return np.broadcast_to(g / g.sum(), (n, h, w)).copy()


def null_maps(images_hwc: np.ndarray, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Uniform, brightness-proportional and centred-Gaussian maps at ``size``, each summing to 1."""
    n = len(images_hwc)
    return {
        "uniform": np.full((n, *size), 1.0 / (size[0] * size[1])),
        "brightness": as_distribution(area_resize(brightness(images_hwc), size)),
        "centre": centre_prior(n, size),
    }


def mass_inside(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image: attention mass inside the mask; the mask is area-averaged to the map (fractional cells)."""
    m = as_distribution(maps)
    frac = area_resize(masks.astype(np.float64), m.shape[1:])
    return (m * frac).sum(axis=(1, 2))


def _ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties share their mean rank)."""
    from scipy.stats import rankdata

    return rankdata(v, axis=-1)


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per image Spearman rank correlation of two (N, h, w) maps (0 where a map is constant)."""
    # not scipy.stats.spearmanr: it correlates all columns with each other, not row i of a with row i of b
    ra, rb = _ranks(a.reshape(len(a), -1)), _ranks(b.reshape(len(b), -1))
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    den = np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    return np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1), 0.0)


def top_iou(a: np.ndarray, b: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """Per image IoU of the top ``fraction`` positions of two (N, h, w) maps (ties broken by position)."""
    flat_a, flat_b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    k = max(1, int(round(fraction * flat_a.shape[1])))
    top_a = np.zeros(flat_a.shape, dtype=bool)
    top_b = np.zeros(flat_b.shape, dtype=bool)
    np.put_along_axis(top_a, np.argsort(-flat_a, axis=1, kind="stable")[:, :k], True, axis=1)
    np.put_along_axis(top_b, np.argsort(-flat_b, axis=1, kind="stable")[:, :k], True, axis=1)
    return (top_a & top_b).sum(1) / (top_a | top_b).sum(1)


def normalised_entropy(maps: np.ndarray) -> np.ndarray:
    """Per image entropy of the map as a distribution over positions, divided by log(positions)."""
    from scipy.stats import entropy

    p = as_distribution(maps).reshape(len(maps), -1)
    return entropy(p, axis=1) / np.log(p.shape[1])


def peak_mass(maps: np.ndarray) -> np.ndarray:
    return as_distribution(maps).reshape(len(maps), -1).max(1)


def describe(v: np.ndarray) -> dict[str, float]:
    """Mean, sample standard deviation and count of ``v``."""
    v = np.asarray(v, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}
