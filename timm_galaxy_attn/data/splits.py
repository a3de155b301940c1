"""Leak-free splits: group duplicates and same-sky-position images, then a stratified split of groups.

Rule (``SPLIT_RULE``): images with identical pixels (same SHA-1 of the decoded uint8 array and shape),
whose sky positions lie within ``match_arcsec`` (10") of each other, or (when a group key is given, e.g. an
object id or IAU name column) with the same key are joined into one group
(union-find through connected components); each group takes the most common label of its members;
within each class the groups are shuffled with ``numpy.random.default_rng(seed)`` and laid end to end,
and each group goes to test, validation or train according to where its middle falls on the
[0, n_class) line cut at about ``n_class * test_fraction`` and ``n_class * (test_fraction + val_fraction)``
(integers by largest remainder, so the split sizes add up to the fractions of the whole set).
So split sizes follow the fractions per class (stratified) and no group is ever cut (grouped).
Pinned rows (``pinned``: a split index per row, e.g. the split of the same galaxy in another dataset) take
their group to that split (the largest pin of the group: test over validation over train); the free groups
of each class fill what the pinned ones left of each split's share.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

__all__ = [
    "MATCH_THRESHOLD",
    "PIN_COLUMN",
    "SPLIT_NAMES",
    "SPLIT_RULE",
    "SplitResult",
    "content_descriptors",
    "group_images",
    "grouped_stratified_split",
    "iau_name_to_radec",
    "match_images",
    "pixel_hash",
    "positions_within",
]

SPLIT_NAMES = ("train", "validation", "test")
PIN_COLUMN = "gz1_sdss_split"  # the split of the same galaxy in gz1_sdss ("" when it is not there)
SPLIT_RULE = (
    "grouped stratified: union of (identical decoded pixels) and (sky separation <= {arcsec} arcsec) "
    "groups; per class, groups shuffled with numpy default_rng(seed) and cut at the test/validation "
    "fractions by group midpoint; a group never spans two splits"
)


def pixel_hash(pixels: np.ndarray) -> bytes:
    """SHA-1 digest of a decoded image array (shape and dtype included)."""
    arr = np.ascontiguousarray(pixels)
    h = hashlib.sha1(f"{arr.shape}{arr.dtype}".encode())
    h.update(arr.data)
    return h.digest()


_IAU_NAME = re.compile(r"J(\d{2})(\d{2})(\d{2}(?:\.\d*)?)([+-])(\d{2})(\d{2})(\d{2}(?:\.\d*)?)$")


def iau_name_to_radec(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Positions (degrees) in IAU designations ``[PREFIX ]Jhhmmss.ss+ddmmss.s``; None unless all parse.

    The designation truncates the coordinates (0.01 s of RA, 0.1" of Dec), far below the 10" match radius.
    """
    ra, dec = np.empty(len(names)), np.empty(len(names))
    for i, name in enumerate(names):
        m = _IAU_NAME.search(str(name).strip())
        if m is None:
            return None
        h, mi, s, sign, d, am, asec = m.groups()
        ra[i] = 15.0 * (int(h) + int(mi) / 60 + float(s) / 3600)
        dec[i] = (1 if sign == "+" else -1) * (int(d) + int(am) / 60 + float(asec) / 3600)
    return ra, dec


def positions_within(ra: np.ndarray, dec: np.ndarray, arcsec: float) -> np.ndarray:
    """Index pairs (M, 2) of positions (degrees) separated by at most ``arcsec``; NaNs are skipped.

    A KD-tree on unit vectors: the chord ``2 sin(theta / 2)`` is exact on the sphere, also near the poles
    and across ra = 0/360.
    """
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(ra) & np.isfinite(dec))
    if len(ok) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    r, d = np.deg2rad(ra[ok]), np.deg2rad(dec[ok])
    xyz = np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=1)
    chord = 2 * np.sin(np.deg2rad(arcsec / 3600) / 2)
    pairs = cKDTree(xyz).query_pairs(chord * (1 + 1e-9), output_type="ndarray")
    return ok[pairs].astype(np.int64) if len(pairs) else np.zeros((0, 2), dtype=np.int64)


def group_images(
    hashes: list[bytes] | np.ndarray,
    ra: np.ndarray | None = None,
    dec: np.ndarray | None = None,
    match_arcsec: float = 10.0,
    keys: Sequence | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Group ids (N,) joining identical-pixel images, images within ``match_arcsec`` and images with equal
    ``keys`` (optional, one hashable value per image, e.g. an object id), plus counts."""
    n = len(hashes)
    dup = _equal_value_edges(np.asarray(hashes, dtype=object).astype("S"))
    same = _equal_value_edges(np.asarray([str(k) for k in keys])) if keys is not None else dup[:0]
    sky = (
        positions_within(ra, dec, match_arcsec)
        if ra is not None and dec is not None
        else np.zeros((0, 2), int)
    )
    edges = np.concatenate([dup, same, sky]).astype(np.int64)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, groups = connected_components(graph, directed=False)
    sizes = np.bincount(groups)
    stats = {
        "identical_pixel_pairs": int(len(dup)),
        "sky_pairs_within_arcsec": int(len(sky)),
        **({"same_key_pairs": int(len(same))} if keys is not None else {}),
        "groups": int(len(sizes)),
        "multi_image_groups": int((sizes > 1).sum()),
        "images_in_multi_image_groups": int(sizes[sizes > 1].sum()),
    }
    return groups, stats


def _equal_value_edges(values: np.ndarray) -> np.ndarray:
    """Edges (M, 2) from each row to the first row holding the same value (none for unique values)."""
    n = len(values)
    _, inverse = np.unique(values, return_inverse=True)
    inverse = inverse.ravel()
    first = np.full(inverse.max(initial=-1) + 1, -1, dtype=np.int64)
    first[inverse[::-1]] = np.arange(n)[::-1]
    edges = np.stack([np.arange(n), first[inverse]], axis=1)
    return edges[edges[:, 0] != edges[:, 1]]


def _group_pins(groups: np.ndarray, n_groups: int, pinned: np.ndarray | None) -> np.ndarray:
    """Split index per group from per-row pins (-1 free; a group takes the largest pin of its rows)."""
    gpin = np.full(n_groups, -1, dtype=np.int64)
    if pinned is None:
        return gpin
    pinned = np.asarray(pinned, dtype=np.int64)
    if pinned.shape != groups.shape or ((pinned < -1) | (pinned > 2)).any():
        raise ValueError(
            f"pinned must hold one split index per row (-1 free, 0 train, 1 validation, 2 test); got shape "
            f"{pinned.shape} for {len(groups)} rows, values {np.unique(pinned)[:5].tolist()}"
        )
    np.maximum.at(gpin, groups, pinned)
    return gpin


def _apportion(class_sizes: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Integer per-class counts near ``class_sizes * fraction`` summing to ``round(N * fraction)``.

    Largest remainders first (ties in random order), so small classes are not all rounded down.
    """
    exact = class_sizes * fraction
    base = np.floor(exact).astype(np.int64)
    extra = int(round(class_sizes.sum() * fraction)) - int(base.sum())
    if extra > 0:
        order = np.lexsort((rng.random(len(exact)), -(exact - base)))
        base[order[:extra]] += 1
    return np.minimum(base, class_sizes)


@dataclass
class SplitResult:
    """Row indices per split and what the split did (JSON-able ``info``)."""

    indices: dict[str, np.ndarray]
    info: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.info, sort_keys=True)


def grouped_stratified_split(
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    class_names: tuple[str, ...] | None = None,
    pinned: np.ndarray | None = None,
) -> SplitResult:
    """Split rows into train/validation/test, stratified by label, never cutting a group (module doc).

    Args:
        labels: class id per row. groups: group id per row (``group_images``).
        seed: shuffle seed. val_fraction, test_fraction: shares of validation and test.
        class_names: recorded in ``info``.
        pinned: optional split index per row (0 train, 1 validation, 2 test, -1 free).
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in [0, 1) with sum < 1"
        )
    labels = np.asarray(labels, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    n_groups = int(groups.max(initial=-1) + 1)
    sizes = np.bincount(groups, minlength=n_groups)
    # label of a group: its most common label (ties: the smaller id)
    n_cls = int(labels.max(initial=-1) + 1)
    counts = np.zeros((n_groups, max(n_cls, 1)), dtype=np.int64)
    np.add.at(counts, (groups, labels), 1)
    glabel = counts.argmax(axis=1)
    mixed = int(((counts > 0).sum(axis=1) > 1).sum())

    rng = np.random.default_rng(seed)
    class_sizes = np.bincount(labels, minlength=n_cls)
    cut_test = _apportion(class_sizes, test_fraction, rng)
    cut_val = _apportion(class_sizes, test_fraction + val_fraction, rng)
    gpin = _group_pins(groups, n_groups, pinned)
    gsplit = np.zeros(n_groups, dtype=np.int64)  # 0 train, 1 validation, 2 test
    for c in range(n_cls):
        g = np.flatnonzero(glabel == c)
        fixed, g = g[gpin[g] >= 0], g[gpin[g] < 0]
        gsplit[fixed] = gpin[fixed]
        taken = np.bincount(gpin[fixed], weights=sizes[fixed], minlength=3)
        want_test = max(cut_test[c] - taken[2], 0)
        want_val = want_test + max(cut_val[c] - cut_test[c] - taken[1], 0)
        if len(g) == 0:
            continue
        g = g[rng.permutation(len(g))]
        end = np.cumsum(sizes[g])
        mid = end - sizes[g] / 2
        gsplit[g] = np.where(mid < want_test, 2, np.where(mid < want_val, 1, 0))
    row_split = gsplit[groups]
    indices = {name: np.flatnonzero(row_split == k) for k, name in enumerate(SPLIT_NAMES)}
    class_counts = {name: np.bincount(labels[idx], minlength=n_cls).tolist() for name, idx in indices.items()}
    info = {
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction),
        "counts": {name: int(len(idx)) for name, idx in indices.items()},
        "class_counts": class_counts,
        "groups_with_mixed_labels": mixed,
    }
    if pinned is not None:
        info["pinned_rows"] = {
            name: int((np.asarray(pinned) == k).sum()) for k, name in enumerate(SPLIT_NAMES)
        }
    if class_names is not None:
        info["class_names"] = list(class_names)
    return SplitResult(indices=indices, info=info)


# Image-content matching of the same sky object in two cutout sets of different scale (module
# ``gz2_kaggle``): own code, as no kept library matches astronomical cutouts across pixel scales.
MATCH_THRESHOLD = 0.5  # fine-descriptor correlation from which two cutouts count as one object
_COARSE_CROPS = tuple(float(c) for c in np.geomspace(1.0, 0.45, 14))
_FINE_CROPS = tuple(float(c) for c in np.geomspace(1.0, 0.45, 24))


def content_descriptors(data: bytes, crops: Sequence[float], fine: bool) -> np.ndarray:
    """Unit vectors (len(crops), D) of an encoded image's central crops, one per crop fraction.

    Grey, log-stretched; coarse (32 px): minus the mean radial profile (the round part of any galaxy);
    fine (64 px): minus a 3 px Gaussian blur (what is left: stars, neighbours, arms at their places).
    """
    import io

    from PIL import Image, ImageFilter

    im = Image.open(io.BytesIO(data)).convert("L")
    size = 64 if fine else 32
    yy, xx = np.mgrid[:size, :size]
    ring = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2).astype(np.int64).ravel()
    out = np.empty((len(crops), size * size), dtype=np.float32)
    for k, crop in enumerate(crops):
        side = max(int(round(min(im.size) * crop)), 1)
        left, top = (im.size[0] - side) // 2, (im.size[1] - side) // 2
        small = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
        a = np.log1p(np.asarray(small, dtype=np.float32)).ravel()
        if fine:
            a = a - np.log1p(np.asarray(small.filter(ImageFilter.GaussianBlur(3)), dtype=np.float32)).ravel()
        else:
            a = a - (np.bincount(ring, a) / np.bincount(ring))[ring]
        a = a - a.mean()
        out[k] = a / (np.linalg.norm(a) + 1e-6)
    return out


def match_images(
    query: Sequence[bytes],
    ref: Sequence[bytes],
    query_crop: float = 0.8,
    ref_crops: Sequence[float] | None = None,
    threshold: float = MATCH_THRESHOLD,
    exclude_self: bool = False,
) -> np.ndarray:
    """Pairs (M, 3) ``[query index, ref index, score * 1000]`` of images that show the same object.

    Each query's best reference over the crops (coarse descriptors) is checked with the fine ones and
    kept when their best correlation reaches ``threshold``. ``ref_crops`` (default 1.0 down to 0.45) are
    the scales searched; ``exclude_self`` (query is ref) skips each image's match with itself.
    """
    coarse_crops = _COARSE_CROPS if ref_crops is None else tuple(ref_crops)
    fine_crops = _FINE_CROPS if ref_crops is None else tuple(ref_crops)
    if len(query) == 0 or len(ref) == 0:
        return np.zeros((0, 3), dtype=np.int64)
    q = np.stack([content_descriptors(b, [query_crop], False)[0] for b in query])
    r = np.stack([content_descriptors(b, coarse_crops, False) for b in ref])  # (M, K, D)
    best = np.full(len(q), -np.inf, dtype=np.float32)
    arg = np.zeros(len(q), dtype=np.int64)
    for k in range(len(coarse_crops)):
        for start in range(0, len(q), 1024):
            s = q[start : start + 1024] @ r[:, k].T
            if exclude_self:
                s[np.arange(len(s)), np.arange(start, start + len(s))] = -np.inf
            top = s.argmax(axis=1)
            score = s[np.arange(len(s)), top]
            better = score > best[start : start + len(s)]
            best[start : start + len(s)][better] = score[better]
            arg[start : start + len(s)][better] = top[better]
    pairs = []
    for i, j in enumerate(arg):
        a = content_descriptors(query[i], [query_crop], True)[0]
        score = float((content_descriptors(ref[j], fine_crops, True) @ a).max())
        if score >= threshold:
            pairs.append((i, int(j), int(round(score * 1000))))
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 3)
