"""Class names of the supported datasets: the one place they are written down.

Galaxy10 DECaLS and Galaxy10 SDSS are the astroNN datasets of Leung & Bovy (labels from Galaxy Zoo);
``gz1_sdss`` is the small real SDSS sample with Galaxy Zoo 1 majority labels kept in
``../shared/data/gz1_sdss`` (see its README). ``gz2_kaggle`` / ``gz2_kaggle_spiral`` are the Kaggle
Galaxy Zoo 2 galaxies (Willett et al. 2013; images SDSS) built by ``scripts/build_gz2_kaggle.py``: the
most voted answer of GZ2 task 1, and the spiral / non-spiral label of the Cosmic-Compendium repository
(docs/data_gz2.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

GALAXY10_DECALS_CLASSES: tuple[str, ...] = (
    "Disturbed",
    "Merging",
    "Round Smooth",
    "In-between Round Smooth",
    "Cigar Shaped Smooth",
    "Barred Spiral",
    "Unbarred Tight Spiral",
    "Unbarred Loose Spiral",
    "Edge-on without Bulge",
    "Edge-on with Bulge",
)

GALAXY10_SDSS_CLASSES: tuple[str, ...] = (
    "Disk, Face-on, No Spiral",
    "Smooth, Completely round",
    "Smooth, in-between round",
    "Smooth, Cigar shaped",
    "Disk, Edge-on, Rounded Bulge",
    "Disk, Edge-on, Boxy Bulge",
    "Disk, Edge-on, No Bulge",
    "Disk, Face-on, Tight Spiral",
    "Disk, Face-on, Medium Spiral",
    "Disk, Face-on, Loose Spiral",
)

GZ1_SDSS_CLASSES: tuple[str, ...] = (
    "Elliptical",
    "Spiral clockwise",
    "Spiral anticlockwise",
    "Edge-on",
    "Don't know",
    "Merger",
)

# ``label`` of gz2_kaggle: the most voted answer of GZ2 task 1 (ties: the first).
GZ2_KAGGLE_CLASSES: tuple[str, ...] = ("smooth", "features or disk", "star or artifact")
GZ2_SPIRAL_CLASSES: tuple[str, ...] = ("non-spiral", "spiral")

DATASET_CLASSES: dict[str, tuple[str, ...]] = {
    "galaxy10_decals": GALAXY10_DECALS_CLASSES,
    "galaxy10_sdss": GALAXY10_SDSS_CLASSES,
    "gz1_sdss": GZ1_SDSS_CLASSES,
    "gz2_kaggle": GZ2_KAGGLE_CLASSES,
    "gz2_kaggle_spiral": GZ2_SPIRAL_CLASSES,
}

# Labels that swap under a mirror flip (a clockwise spiral seen in a mirror winds anticlockwise).
# Rotations keep every label; flips must apply this map or not be used.
MIRROR_LABEL_SWAPS: dict[str, dict[int, int]] = {
    "galaxy10_decals": {},
    "galaxy10_sdss": {},
    "gz1_sdss": {1: 2, 2: 1},
    "gz2_kaggle": {},
    "gz2_kaggle_spiral": {},
}


def class_names(dataset: str) -> tuple[str, ...]:
    """Return the official class names of ``dataset`` (one of ``DATASET_CLASSES``)."""
    try:
        return DATASET_CLASSES[dataset]
    except KeyError:
        raise ValueError(
            f"Unknown dataset {dataset!r}; known datasets with fixed class names: {sorted(DATASET_CLASSES)}"
        ) from None


def label_names_of(pretrained_cfg: Mapping[str, Any], num_classes: int) -> tuple[str, ...]:
    """A model's class names: its cfg's ``label_names`` when they name every class, else ``class_0``..."""
    names = tuple(pretrained_cfg.get("label_names") or ())
    return names if len(names) == num_classes else tuple(f"class_{i}" for i in range(num_classes))


def dataset_of_label_names(names: Sequence[str]) -> str | None:
    """Return the dataset whose official class names are exactly ``names`` (in order), else None."""
    for dataset, official in DATASET_CLASSES.items():
        if tuple(names) == official:
            return dataset
    return None
