"""What hub/publish.py's parts share: the error type, file names, the dataset descriptions, JSON reading."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CARD_NAME = "README.md"
RESULTS_TABLE = "results_table.md"
FIGURES = "figures"
CAPTIONS = "captions.json"  # figures/captions.json: {file name: caption}


class PublishError(RuntimeError):
    """A run folder or repository that cannot be published as asked (the message says why and what to do)."""


@dataclass(frozen=True)
class DatasetInfo:
    """How the card names a training set, and the references (CITATION.cff BibTeX keys) its data needs."""

    title: str
    hub_id: str  # the `datasets:` entry of the card metadata
    description: str
    citations: tuple[str, ...]


_SDSS_GZ1 = ("york2000sdss", "lintott2008galaxyzoo", "lintott2011galaxyzoo")
DATASETS = {
    "galaxy10_decals": DatasetInfo(
        "Galaxy10 DECaLS",
        "matthieulel/galaxy10_decals",
        "17,736 colour (g, r, z) 256x256 cutouts from the DESI Legacy Imaging Surveys (DECaLS) in 10 "
        "morphology classes from Galaxy Zoo DECaLS votes, assembled by Leung & Bovy for astroNN",
        ("leung2019astronn", "dey2019legacy", "walmsley2022gzdecals"),
    ),
    "galaxy10_sdss": DatasetInfo(
        "Galaxy10 SDSS",
        "galaxy10_sdss",
        "21,785 colour 69x69 SDSS cutouts in 10 morphology classes from Galaxy Zoo votes, assembled by "
        "Leung & Bovy for astroNN",
        ("leung2019astronn", *_SDSS_GZ1),
    ),
    "gz1_sdss": DatasetInfo(
        "SDSS cutouts with Galaxy Zoo 1 labels",
        "gz1_sdss",
        "5,665 real SDSS colour cutouts (423x423) with Galaxy Zoo 1 majority labels in 6 classes "
        "(elliptical, clockwise spiral, anticlockwise spiral, edge-on, don't know, merger); 70% ellipticals",
        _SDSS_GZ1,
    ),
    "synthetic": DatasetInfo(
        "synthetic galaxies (timm-galaxy-attn test set)",
        "synthetic",
        "images drawn by timm_galaxy_attn.data.make_synthetic_galaxies: a smoke test of the code, not a "
        "scientific result",
        (),
    ),
}
# Always credited: the paper, the network, Galaxy10/astroNN, SDSS and Galaxy Zoo (their work made the task).
ALWAYS_CITED = (
    "misquith2023galaxy",
    "jetley2018learn",
    "leung2019astronn",
    "york2000sdss",
    "lintott2008galaxyzoo",
)


def read_json(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``, or a PublishError saying what is missing or broken."""
    if not path.is_file():
        raise PublishError(f"{what} not found: {path}. Is this the --output-dir of a finished training run?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PublishError(f"{path} is not valid JSON ({e}); rerun the training or restore the file.") from e


def read_metrics(path: Path) -> dict[str, Any]:
    """A run's metrics.json, checked for a complete ``test`` section."""
    metrics = read_json(path, "metrics.json")
    test = metrics.get("test")
    need = ("accuracy", "macro_f1", "balanced_accuracy", "per_class", "confusion_matrix")
    if not isinstance(test, dict) or any(k not in test for k in need):
        raise PublishError(
            f"{path} has no complete 'test' section (needs {', '.join(need)}); it was not written by a "
            "finished training/train.py run."
        )
    return metrics


def dataset_key(metrics: dict[str, Any]) -> str:
    """The training set's tag (e.g. ``gz1_sdss``) as metrics.json records it."""
    return str(metrics.get("dataset_tag") or metrics.get("dataset") or "unknown")


def dataset_info(metrics: dict[str, Any]) -> DatasetInfo:
    """The card's description of the training set (a generic one for sets it does not know)."""
    key = dataset_key(metrics)
    if key in DATASETS:
        return DATASETS[key]
    return DatasetInfo(f"`{key}`", Path(key).stem or key, f"the dataset `{key}`", _SDSS_GZ1[:2])


def check_repo_id(repo_id: str) -> None:
    """Refuse a Hub repository id that is not ORG/NAME."""
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or any(c.isspace() for c in repo_id):
        raise PublishError(f"--repo-id must look like ORG/NAME, got {repo_id!r}.")
