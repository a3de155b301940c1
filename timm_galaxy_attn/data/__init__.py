"""Galaxy datasets, splits, transforms and the synthetic set."""

from .synthetic import SyntheticGalaxies, make_synthetic_galaxies
