"""A synthetic Galaxy10-DECaLS-like set: ten morphology classes rendered with numpy, with masks.

Each image is a sky (background level, Gaussian noise), a few field stars and one galaxy whose
class-defining structure is drawn explicitly and returned as a boolean mask (the bulge of an edge-on
disk, the bar of a barred spiral, the arms of spirals, the second nucleus of a merger, the tidal debris
of a disturbed galaxy, the body of smooth galaxies). Light is drawn in flux units, convolved with a
Gaussian PSF, noised and stretched with an asinh curve, as survey colour cutouts are.

Everything is vectorised over a batch of images of one class, so 10k 64x64 images take a few seconds.
Class ids and names are those of Galaxy10 DECaLS (``timm_galaxy_attn.labels``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..labels import GALAXY10_DECALS_CLASSES

__all__ = ["SyntheticGalaxies", "make_synthetic_galaxies"]

# Colours (relative RGB flux) of old stellar populations (bulges, ellipticals) and young disks.
_RED = np.array([1.0, 0.78, 0.52], dtype=np.float32)
_BLUE = np.array([0.62, 0.78, 1.0], dtype=np.float32)
_CHUNK = 512  # images rendered at once: bounds memory at (512, 3, H, W) float32


@dataclass
class SyntheticGalaxies:
    """Images (N, H, W, 3) uint8, labels (N,) int64, masks (N, H, W) bool, class names."""

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


class _Batch:
    """Random draws and coordinate grids for a batch of ``n`` images of side ``size``."""

    def __init__(self, rng: np.random.Generator, n: int, size: int):
        self.rng, self.n, self.size = rng, n, size
        c = (np.arange(size, dtype=np.float32) - (size - 1) / 2) / (size / 2)  # [-1, 1] across the image
        self.yy, self.xx = np.meshgrid(c, c, indexing="ij")
        # galaxy centre: a small offset from the image centre, as in survey cutouts
        self.cx = self.u(-0.06, 0.06)
        self.cy = self.u(-0.06, 0.06)

    def u(self, lo: float, hi: float) -> np.ndarray:
        """Uniform draws, shape (n, 1, 1) for broadcasting over the image."""
        return self.rng.uniform(lo, hi, size=(self.n, 1, 1)).astype(np.float32)

    def frame(self, theta: np.ndarray, cx=None, cy=None) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates along (a) and across (b) the major axis at position angle ``theta``."""
        x = self.xx[None] - (self.cx if cx is None else cx)
        y = self.yy[None] - (self.cy if cy is None else cy)
        ct, st = np.cos(theta), np.sin(theta)
        return x * ct + y * st, -x * st + y * ct


def _sersic(r: np.ndarray, re: np.ndarray, n: float) -> np.ndarray:
    """Sersic profile, 1 at the effective radius ``re`` (so cores are bright, as real bulges)."""
    b = 2.0 * n - 1.0 / 3.0
    return np.exp(-b * ((r / re) ** (1.0 / n) - 1.0)).astype(np.float32)


def _sech2(x: np.ndarray) -> np.ndarray:
    e = np.exp(-2 * np.abs(x))
    return 4 * e / (1 + e) ** 2


def _colour(b: _Batch, base: np.ndarray, jitter: float = 0.08) -> np.ndarray:
    """Per-image colour (n, 3, 1, 1) around ``base``."""
    col = base[None] * (1 + b.rng.normal(0, jitter, size=(b.n, 3))).astype(np.float32)
    return np.clip(col, 0.2, 1.5)[:, :, None, None]


def _smooth(b: _Batch, q_lo: float, q_hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Smooth elliptical (de Vaucouleurs-like) galaxy of axis ratio in [q_lo, q_hi]."""
    q = b.u(q_lo, q_hi)
    a, c = b.frame(b.u(0, np.pi))
    re = b.u(0.1, 0.2)
    r = np.sqrt(a**2 + (c / q) ** 2)
    light = 0.3 * _sersic(r, re, b.u(2.0, 3.0))
    rgb = light[:, None] * _colour(b, _RED)
    return rgb, r < 1.5 * re


def _round(b: _Batch):
    return _smooth(b, 0.85, 1.0)


def _in_between(b: _Batch):
    return _smooth(b, 0.5, 0.72)


def _cigar(b: _Batch):
    return _smooth(b, 0.2, 0.36)


def _edge_on(b: _Batch, bulge: bool):
    a, c = b.frame(b.u(0, np.pi))
    length = b.u(0.45, 0.7)
    thick = b.u(0.025, 0.045)
    disk = 1.6 * np.exp(-np.abs(a) / (0.35 * length)) * _sech2(c / thick)
    disk = disk * (np.abs(a) < 1.5 * length)
    # a faint dust lane along the mid-plane
    disk = disk * (1 - b.u(0.0, 0.35) * np.exp(-((c / (0.4 * thick)) ** 2)))
    rgb = disk[:, None] * _colour(b, 0.6 * _RED + 0.4 * _BLUE)
    if bulge:
        rb = b.u(0.07, 0.11)
        r = np.sqrt(a**2 + (c / b.u(0.7, 0.9)) ** 2)
        bl = 0.25 * _sersic(r, rb, 2.0)
        rgb = rgb + bl[:, None] * _colour(b, _RED)
        mask = r < 1.6 * rb
    else:
        mask = (np.abs(c) < 2 * thick) & (np.abs(a) < length)
    return rgb, mask


def _edge_on_without(b: _Batch):
    return _edge_on(b, bulge=False)


def _edge_on_with(b: _Batch):
    return _edge_on(b, bulge=True)


def _spiral(b: _Batch, pitch_deg: tuple[float, float], bar: bool, arm_width: float):
    """Two-armed logarithmic spiral in a disk seen at a random inclination, optionally barred."""
    q = b.u(0.6, 1.0)
    a, c = b.frame(b.u(0, np.pi))
    c = c / q
    r = np.sqrt(a**2 + c**2) + 1e-4
    phi = np.arctan2(c, a)
    hd = b.u(0.16, 0.24)  # disk scale length
    disk = np.exp(-r / hd)
    pitch = np.deg2rad(b.u(*pitch_deg))
    r0 = b.u(0.12, 0.18) if bar else b.u(0.05, 0.09)
    chirality = np.where(b.rng.random((b.n, 1, 1)) < 0.5, -1.0, 1.0).astype(np.float32)
    wind = np.log(np.maximum(r, r0) / r0) / np.tan(pitch)
    phase = 2 * (phi - chirality * wind)  # two arms
    arm = np.exp((np.cos(phase) - 1) / arm_width)  # 1 on the arm ridge, falls off between arms
    envelope = np.clip((r - 0.6 * r0) / (0.4 * r0), 0, 1) * np.exp(-r / (1.3 * hd))
    arms = arm * envelope
    rgb = (0.25 * disk + 0.7 * arms)[:, None] * _colour(b, _BLUE)
    rb = b.u(0.035, 0.06)
    bulge = 0.2 * _sersic(r, rb, 2.0)
    rgb = rgb + bulge[:, None] * _colour(b, _RED)
    arm_mask = (arm > 0.5) & (envelope > 0.25)
    if not bar:
        return rgb, arm_mask
    # the bar: an elongated flat-topped structure through the centre, ending where the arms start
    # bar along the frame's major axis (a), reaching the radius where the arms start
    bar_light = np.exp(-((np.abs(a) / (1.1 * r0)) ** 4) - (c / (0.3 * r0)) ** 2)
    rgb = rgb + (0.9 * bar_light)[:, None] * _colour(b, 0.7 * _RED + 0.3 * _BLUE)
    return rgb, (bar_light > 0.4) | arm_mask


def _barred(b: _Batch):
    return _spiral(b, (14, 22), bar=True, arm_width=0.35)


def _tight(b: _Batch):
    return _spiral(b, (8, 13), bar=False, arm_width=0.3)


def _loose(b: _Batch):
    return _spiral(b, (24, 34), bar=False, arm_width=0.45)


def _merging(b: _Batch):
    """Two smooth galaxies close together inside a common envelope, joined by a faint bridge."""
    sep = b.u(0.24, 0.42)
    ang = b.u(0, 2 * np.pi)
    dx, dy = 0.5 * sep * np.cos(ang), 0.5 * sep * np.sin(ang)
    rgb = np.zeros((b.n, 3, b.size, b.size), np.float32)
    mask = np.zeros((b.n, b.size, b.size), bool)
    for sign, flux in ((1.0, b.u(0.7, 1.0)), (-1.0, b.u(0.5, 1.0))):
        a, c = b.frame(b.u(0, np.pi), b.cx + sign * dx, b.cy + sign * dy)
        re = b.u(0.07, 0.11)
        r = np.sqrt(a**2 + (c / b.u(0.7, 1.0)) ** 2)
        rgb += (0.3 * flux * _sersic(r, re, 2.5))[:, None] * _colour(b, _RED)
        mask |= r < 1.3 * re
    a, c = b.frame(ang)  # common halo stretched along the line joining the nuclei
    halo = np.exp(-np.sqrt((a / (0.9 * sep + 0.1)) ** 2 + (c / (0.45 * sep + 0.06)) ** 2) / 0.35)
    rgb += (0.3 * halo)[:, None] * _colour(b, _RED)
    return rgb, mask


def _disturbed(b: _Batch):
    """A lopsided, clumpy low-surface-brightness galaxy with a curved tidal tail."""
    q = b.u(0.5, 0.9)
    a, c = b.frame(b.u(0, np.pi))
    r = np.sqrt(a**2 + (c / q) ** 2)
    body = 0.6 * np.exp(-r / b.u(0.1, 0.16)) * (1 + 0.5 * np.tanh(4 * a))  # lopsided
    rgb = body[:, None] * _colour(b, _BLUE)
    mask = np.zeros((b.n, b.size, b.size), bool)
    # clumps (star-forming knots) scattered around the body
    for _ in range(5):
        rad, ang = b.u(0.05, 0.3), b.u(0, 2 * np.pi)
        ka, kc = b.frame(ang * 0, b.cx + rad * np.cos(ang), b.cy + rad * np.sin(ang))
        s = b.u(0.025, 0.045)
        k = b.u(0.3, 0.8) * np.exp(-(ka**2 + kc**2) / (2 * s**2))
        rgb += k[:, None] * _colour(b, _BLUE)
        mask |= k > 0.15
    # a tidal tail: an arc of a circle leaving the body, fading outwards
    ang0 = b.u(0, 2 * np.pi)
    rc = b.u(0.35, 0.55)
    ox, oy = b.cx + rc * np.cos(ang0), b.cy + rc * np.sin(ang0)
    x, y = b.xx[None] - ox, b.yy[None] - oy
    d = np.sqrt(x**2 + y**2)
    t = np.angle(np.exp(1j * (np.arctan2(y, x) - ang0 - np.pi)))  # angle from the body along the arc
    side = np.where(b.rng.random((b.n, 1, 1)) < 0.5, -1.0, 1.0).astype(np.float32)
    along = np.clip(side * t, 0, None)
    tail = np.exp(-(((d - rc) / 0.03) ** 2)) * np.exp(-along / 0.7) * (along < 1.6) * (side * t > 0)
    tail = b.u(0.25, 0.5) * tail
    rgb += tail[:, None] * _colour(b, 0.5 * (_RED + _BLUE))
    mask |= tail > 0.08
    return rgb, mask


_RENDERERS: tuple[Callable[[_Batch], tuple[np.ndarray, np.ndarray]], ...] = (
    _disturbed,
    _merging,
    _round,
    _in_between,
    _cigar,
    _barred,
    _tight,
    _loose,
    _edge_on_without,
    _edge_on_with,
)


def _psf_blur(img: np.ndarray, sigma_px: np.ndarray) -> np.ndarray:
    """Convolve (n, 3, H, W) with a per-image Gaussian PSF of ``sigma_px`` (n,) pixels, via FFT."""
    size = img.shape[-1]
    f = np.fft.fftfreq(size).astype(np.float32)
    fr = np.fft.rfftfreq(size).astype(np.float32)
    k2 = f[:, None] ** 2 + fr[None, :] ** 2
    otf = np.exp(-2 * np.pi**2 * sigma_px[:, None, None, None] ** 2 * k2[None, None])
    return np.fft.irfft2(np.fft.rfft2(img) * otf, s=(size, size)).astype(np.float32)


def _stars(b: _Batch) -> np.ndarray:
    """Point sources (before the PSF) of random colour: up to ~8 field stars per image."""
    img = np.zeros((b.n, 3, b.size, b.size), np.float32)
    count = b.rng.poisson(b.size / 16, size=b.n).clip(0, 12)
    for k in range(int(count.max(initial=0))):
        on = count > k
        idx = np.flatnonzero(on)
        ys = b.rng.integers(0, b.size, size=len(idx))
        xs = b.rng.integers(0, b.size, size=len(idx))
        flux = (b.rng.pareto(1.8, size=len(idx)) + 0.15).clip(0, 12).astype(np.float32)
        temp = b.rng.uniform(0, 1, size=len(idx)).astype(np.float32)
        col = (1 - temp[:, None]) * np.array([1.0, 0.45, 0.2]) + temp[:, None] * np.array([0.45, 0.7, 1.0])
        img[idx, :, ys, xs] += flux[:, None] * col.astype(np.float32)
    return img * (b.size / 64) ** 2 * 2  # point flux scales with the pixel area of the galaxy frame


def _render_class(rng: np.random.Generator, cls: int, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    b = _Batch(rng, n, size)
    rgb, mask = _RENDERERS[cls](b)
    rgb = rgb * b.u(0.55, 1.6)[:, None]  # surface brightness overlaps between classes
    rgb = rgb + _stars(b)
    sigma = rng.uniform(0.8, 1.3, size=n).astype(np.float32) * size / 64  # PSF: about 1 px at 64 px
    rgb = _psf_blur(rgb, sigma)
    noise = rng.normal(0, 1, size=rgb.shape).astype(np.float32) * b.u(0.025, 0.045)[:, None]
    rgb = rgb + noise
    stretch = b.u(2.5, 4.0)[:, None]
    out = np.arcsinh(stretch * np.clip(rgb, -0.2, None)) / np.arcsinh(stretch * 1.5)
    sky = (np.array([0.125, 0.118, 0.118], np.float32) * (1 + rng.normal(0, 0.08, (n, 1))))[:, :, None, None]
    out = sky + 0.88 * out
    img = (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)
    return img, mask


def make_synthetic_galaxies(n_per_class: int, size: int = 64, seed: int = 0) -> SyntheticGalaxies:
    """Render ``n_per_class`` galaxies of each of the ten Galaxy10 DECaLS classes, ``size`` pixels square.

    Deterministic for a ``seed``; images come out shuffled. ``masks`` mark the structure that defines
    each image's class (see the module docstring).

    Args:
        n_per_class: Galaxies per class.
        size: Image side in pixels.
        seed: Random seed.
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    rng = np.random.default_rng(seed)
    images, masks, labels = [], [], []
    for cls in range(len(_RENDERERS)):
        for start in range(0, n_per_class, _CHUNK):
            n = min(_CHUNK, n_per_class - start)
            img, mask = _render_class(rng, cls, n, size)
            images.append(img)
            masks.append(mask)
            labels.append(np.full(n, cls, dtype=np.int64))
    order = rng.permutation(n_per_class * len(_RENDERERS))
    return SyntheticGalaxies(
        images=np.concatenate(images)[order],
        labels=np.concatenate(labels)[order],
        masks=np.concatenate(masks)[order],
        class_names=GALAXY10_DECALS_CLASSES,
    )
