"""ROAD (RemOve And Debias, Rong et al., ICML 2022) for benchmarks/faithfulness.py, without retraining.

Removed pixels are filled by *noisy linear imputation*: each removed pixel equals the weighted mean of its
8 neighbours (weight 1/6 for the 4 direct, 1/12 for the 4 diagonal ones, renormalised where a neighbour lies
outside the image), solved as one sparse linear system over all removed pixels with the known pixels as
boundary values (a direct sparse solve: SuperLU, ``scipy.sparse.linalg.splu``, what ``spsolve`` runs),
then Gaussian noise is added (sigma 0.01 of the pixel range, Rong et al.'s default). The fill carries
no information about the removed pixels beyond their surroundings, so the class leaks less through the
shape of the mask than with a flat fill.

MoRF removes the most relevant pixels first (a lower curve = more faithful), LeRF the least relevant first
(a higher curve = more faithful). Score: the softmax probability of the class predicted on the intact image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import splu

# (row offset, column offset, weight): Rong et al.'s neighbourhood; the weights sum to 1.
NEIGHBOURS: tuple[tuple[int, int, float], ...] = (
    (-1, -1, 1 / 12),
    (-1, 0, 1 / 6),
    (-1, 1, 1 / 12),
    (0, -1, 1 / 6),
    (0, 1, 1 / 6),
    (1, -1, 1 / 12),
    (1, 0, 1 / 6),
    (1, 1, 1 / 12),
)
NOISE = 0.01  # sigma of the added noise, as a fraction of the pixel range (images in [0, 1])
FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
ORDERS = ("morf", "lerf")


def linear_impute_system(img: np.ndarray, removed: np.ndarray) -> tuple[csc_matrix, np.ndarray, np.ndarray]:
    """(A, b, flat indices of the removed pixels) with A x = b the imputation equations of ``img`` (C, H, W)
    under the boolean ``removed`` (H, W): sum_j w_j x_i - sum_{removed j} w_j x_j = sum_{known j} w_j v_j."""
    h, w = removed.shape
    flat_removed = removed.reshape(-1)
    idx = np.flatnonzero(flat_removed)
    var = np.full(h * w, -1, dtype=np.int64)
    var[idx] = np.arange(len(idx))
    values = img.reshape(img.shape[0], -1)
    r, c = np.divmod(idx, w)
    diag = np.zeros(len(idx))
    b = np.zeros((len(idx), img.shape[0]))
    rows, cols, vals = [], [], []
    for dr, dc, weight in NEIGHBOURS:
        rr, cc = r + dr, c + dc
        inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        eq, nb = np.flatnonzero(inside), rr[inside] * w + cc[inside]
        diag[eq] += weight
        unknown = flat_removed[nb]
        rows.append(eq[unknown])
        cols.append(var[nb[unknown]])
        vals.append(np.full(int(unknown.sum()), -weight))
        np.add.at(b, eq[~unknown], weight * values[:, nb[~unknown]].T)
    rows.append(np.arange(len(idx)))
    cols.append(np.arange(len(idx)))
    vals.append(diag)
    coo = (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols)))
    a = csc_matrix(coo, shape=(len(idx), len(idx)))
    return a, b, idx


def noisy_linear_impute(
    img: np.ndarray, removed: np.ndarray, noise: float = NOISE, rng: np.random.Generator | None = None
) -> np.ndarray:
    """``img`` (C, H, W) float with the ``removed`` (H, W) pixels replaced by the linear imputation plus
    N(0, noise^2); the known pixels are returned unchanged. Needs at least one known pixel."""
    out = np.array(img, dtype=np.float64, copy=True)
    if not removed.any():
        return out
    if removed.all():
        raise ValueError("noisy linear imputation needs at least one known pixel")
    a, b, idx = linear_impute_system(out, removed)
    # A is symmetric and diagonally dominant: SuperLU (what spsolve runs) in symmetric mode, no pivoting.
    lu = splu(a, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    x = lu.solve(b).reshape(len(idx), -1)
    if noise > 0:
        x = x + (rng or np.random.default_rng(0)).normal(0.0, noise, size=x.shape)
    flat = out.reshape(out.shape[0], -1)
    flat[:, idx] = x.T
    return out


def removal_ranks(maps: torch.Tensor) -> torch.Tensor:
    """(N, H, W) maps -> (N, H, W) rank of each pixel, 0 = most relevant (ties by position)."""
    n, h, w = maps.shape
    order = torch.argsort(-maps.reshape(n, -1), dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(h * w).expand(n, -1).contiguous())
    return ranks.view(n, h, w)


def road_curves(
    predict: Callable[[torch.Tensor], torch.Tensor],
    x01: torch.Tensor,
    maps: torch.Tensor,
    classes: torch.Tensor,
    fractions: Sequence[float] = FRACTIONS,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """MoRF and LeRF curves, each (N, 1 + len(fractions)): the probability of ``classes`` on the intact image,
    then with each fraction of pixels (ranked by ``maps`` (N, H, W) at the image's size) imputed.
    ``x01``: float images in [0, 1] (N, C, H, W); ``predict`` maps such a batch to probabilities."""
    rng = np.random.default_rng(seed)
    ranks = removal_ranks(maps).numpy()
    cls = classes.view(-1, 1)
    p0 = predict(x01).gather(1, cls).squeeze(1).double().numpy()
    npix, imgs = ranks[0].size, x01.numpy()
    out: dict[str, np.ndarray] = {}
    for order in ORDERS:
        cols = [p0]
        for f in fractions:
            k = round(f * npix)
            removed = ranks < k if order == "morf" else ranks >= npix - k
            pairs = zip(imgs, removed, strict=True)
            batch = np.stack([noisy_linear_impute(im, rm, rng=rng) for im, rm in pairs])
            xb = torch.from_numpy(batch.astype(np.float32)).clamp_(0, 1)
            cols.append(predict(xb).gather(1, cls).squeeze(1).double().numpy())
        out[order] = np.stack(cols, 1)
    return out


def road_auc(curves: np.ndarray, fractions: Sequence[float] = FRACTIONS) -> np.ndarray:
    """Per row, the trapezoid area under a curve sampled at 0 and ``fractions``, divided by the span
    (the curve's mean over the removal fractions)."""
    f = np.r_[0.0, np.asarray(fractions, dtype=np.float64)]
    c = np.asarray(curves, dtype=np.float64)
    return ((c[:, 1:] + c[:, :-1]) * np.diff(f)).sum(axis=1) / (2 * (f[-1] - f[0]))


def float_predictor(model: torch.nn.Module, data_config: dict[str, Any], batch: int = 128) -> Callable:
    """float images in [0, 1] (N, 3, S, S) -> softmax probabilities (N, K), normalised with the model's
    mean / std (as ``timm_galaxy_attn.data.normalize_batch`` does for uint8)."""
    mean = torch.tensor(data_config["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(data_config["std"], dtype=torch.float32).view(1, -1, 1, 1)

    @torch.no_grad()
    def predict(x: torch.Tensor) -> torch.Tensor:
        chunks = [model((x[i : i + batch] - mean) / std) for i in range(0, len(x), batch)]
        return torch.cat(chunks).float().softmax(-1)

    return predict


def part_road(
    predict: Callable[[torch.Tensor], torch.Tensor],
    x_uint8: torch.Tensor,
    maps: dict[str, np.ndarray],
    classes: torch.Tensor,
    explainers: Sequence[str],
    references: Sequence[str],
    fractions: Sequence[float] = FRACTIONS,
) -> dict[str, Any]:
    """ROAD MoRF / LeRF curves and AUCs of every map, and paired AUC differences of each explainer
    against each reference map (per image, bootstrap intervals)."""
    import faithfulness_lib as lib

    x01 = x_uint8.float() / 255
    out: dict[str, Any] = {"images": len(x_uint8), "fractions": list(fractions), "noise": NOISE, "maps": {}}
    aucs: dict[str, dict[str, np.ndarray]] = {}
    for name, m in maps.items():
        curves = road_curves(predict, x01, lib.upsample(m, x_uint8.shape[-1]), classes, fractions)
        aucs[name] = {o: road_auc(c, fractions) for o, c in curves.items()}
        out["maps"][name] = {
            **{f"{o}_auc": lib.bootstrap_mean(aucs[name][o]) for o in ORDERS},
            **{f"{o}_curve": curves[o].mean(0).tolist() for o in ORDERS},
        }
    out["paired"] = {
        f"{name}-{ref}": {o: lib.bootstrap_mean(aucs[name][o] - aucs[ref][o]) for o in ORDERS}
        for name in explainers
        for ref in references
        if name != ref and name in aucs and ref in aucs
    }
    return out
