"""Galaxy datasets, leak-free splits, transforms and a synthetic Galaxy10-like set.

``load_galaxy_dataset`` reads Galaxy10 (astroNN HDF5 or Hub parquet), the real ``gz1_sdss`` sample,
parquet files, image folders or the synthetic set into a cached ``datasets.DatasetDict``;
``prepare_tensors`` / ``BatchAugment`` / ``normalize_batch`` are the fast uint8-tensor training path,
``eval_transform`` / ``train_transform`` the per-image PIL path (timm's eval transform).
"""

from .hdf5 import GalaxyDataError
from .load import load_galaxy_dataset, split_info
from .sources import SOURCE_CROP_PCT, DataSourceUnavailable
from .splits import group_images, grouped_stratified_split
from .synthetic import SyntheticGalaxies, make_synthetic_galaxies
from .transforms import BatchAugment, eval_transform, normalize_batch, prepare_tensors, train_transform

__all__ = [
    "SOURCE_CROP_PCT",
    "BatchAugment",
    "eval_transform",
    "normalize_batch",
    "prepare_tensors",
    "train_transform",
    "DataSourceUnavailable",
    "GalaxyDataError",
    "SyntheticGalaxies",
    "group_images",
    "grouped_stratified_split",
    "load_galaxy_dataset",
    "make_synthetic_galaxies",
    "split_info",
]
