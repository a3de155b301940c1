"""The shipped weights, as package data: one folder per timm tag, loadable offline from an installed wheel.

Each folder (``config.json``, ``preprocessor_config.json``, ``model.safetensors``, the model card
``README.md``) is a complete Hugging Face model folder, so the same files serve

* timm: ``timm.create_model(tag, pretrained=True)`` (the tag's ``file`` in ``default_cfgs`` points here);
* transformers: ``pipeline("image-classification", model=pretrained_path(tag))`` and
  ``AutoModelForImageClassification.from_pretrained(pretrained_path(tag))``;
* the catalogue: ``galaxy-attn predict IMAGES --model TAG`` (``DEFAULT_TAG`` without ``--model``).

``default_cfgs`` here is the one list of the architectures' pretrained configs and tags (``model.py``
registers it with timm); ``SHIPPED_TAGS`` is derived from it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from timm.models import generate_default_cfgs

from ..labels import GALAXY10_DECALS_CLASSES, GZ1_SDSS_CLASSES

__all__ = [
    "DEFAULT_TAG",
    "GALAXY_MEAN",
    "GALAXY_STD",
    "PRETRAINED_DIR",
    "SHIPPED_TAGS",
    "architecture_cfg",
    "check_has_weights",
    "check_not_retired",
    "default_cfgs",
    "missing_weights_error",
    "pretrained_path",
    "shipped_model_args",
]

PRETRAINED_DIR = Path(__file__).resolve().parent

# Per-channel statistics of the gz1_sdss train split (split seed 0, central half; validation and test not
# looked at), from `python benchmarks/data_stats.py` (benchmarks/results/data_stats.json). Used for every
# config: Galaxy10 itself cannot be read here, and its images are the same kind of survey cutout.
GALAXY_MEAN = (0.0813, 0.0695, 0.0515)
GALAXY_STD = (0.1281, 0.1058, 0.0861)


def _cfg(label_names: Sequence[str] = GALAXY10_DECALS_CLASSES, **kwargs: Any) -> dict[str, Any]:
    """A pretrained config; the defaults are the untagged one: Galaxy10 DECaLS' classes, the galaxy-filled
    central half at 32 px as in the paper (the crop of each data source: ``data.SOURCE_CROP_PCT``)."""
    return {
        "num_classes": len(label_names),
        "label_names": tuple(label_names),
        "input_size": (3, 32, 32),
        "pool_size": None,
        "crop_pct": 0.5,
        "interpolation": "bicubic",
        "mean": GALAXY_MEAN,
        "std": GALAXY_STD,
        "first_conv": "stages.0.0.conv",
        "classifier": "fc",
        "license": "apache-2.0",
        **kwargs,
    }


def _shipped(tag: str, **kwargs: Any) -> dict[str, Any]:
    """The config of a tag with shipped weights: the packaged file (offline, no download) and the Hub
    repository it is published to."""
    return _cfg(
        file=str(PRETRAINED_DIR / tag / "model.safetensors"),
        hf_hub_id=f"timm-galaxy-attn/{tag}",
        **kwargs,
    )


_S4 = dict(input_size=(3, 128, 128), min_input_size=(3, 128, 128))  # stem stride 4: 128 px for 32 px's cost

# The one list of architectures and tags. A tag is listed only where trained weights ship
# (timm_galaxy_attn/pretrained/<tag>/, the card beside them); the architectures without weights keep their
# untagged config (random initialisation).
default_cfgs = generate_default_cfgs(
    {
        # the paper's widths with the stride-4 stem (its config.json's model_args), trained like the tiny one
        "galaxy_attn_vgg.gz_sdss": _shipped("galaxy_attn_vgg.gz_sdss", label_names=GZ1_SDSS_CLASSES, **_S4),
        "galaxy_attn_vgg_small": _cfg(),
        "galaxy_attn_vgg_small_s4": _cfg(**_S4),
        # GZ1 classes trained jointly with a Galaxy Zoo 2 vote head (vote_head.safetensors beside the weights)
        "galaxy_attn_vgg_tiny_s4.gz_sdss": _shipped(
            "galaxy_attn_vgg_tiny_s4.gz_sdss", label_names=GZ1_SDSS_CLASSES, **_S4
        ),
        "galaxy_attn_vgg_tiny_s4.gz1_sdss": _shipped(
            "galaxy_attn_vgg_tiny_s4.gz1_sdss", label_names=GZ1_SDSS_CLASSES, **_S4
        ),
    }
)
# The configs of architectures built without weights where these differ from their default tag's: the paper's
# network is 32 px with a stride-1 stem, its shipped weights 128 px with a stride-4 one.
UNTRAINED_CFGS: dict[str, dict[str, Any]] = {"galaxy_attn_vgg": _cfg()}
# Tags that shipped once and were withdrawn: what replaced them and how to get the old network back.
RETIRED_TAGS: dict[str, str] = {
    "galaxy_attn_vgg.gz1_sdss": "the paper network's 32 px weights were replaced by galaxy_attn_vgg.gz_sdss "
    "(128 px, stride-4 stem, trained with the Galaxy Zoo 2 votes, better on validation) to keep the wheel "
    "small; retrain them with `python benchmarks/accuracy.py --rows ours_vgg_32s1` (docs/results.md)",
}
# The tags whose weights ship with the package (a local file in their config).
SHIPPED_TAGS: tuple[str, ...] = tuple(
    f"{arch}.{tag}" for arch, cfg in default_cfgs.items() for tag, c in cfg.cfgs.items() if tag and c.file
)

# The best shipped weights on validation (benchmarks/results/pretrain_gz/validation.md): the catalogue's
# default model.
DEFAULT_TAG = "galaxy_attn_vgg_tiny_s4.gz_sdss"


def pretrained_path(tag: str = DEFAULT_TAG) -> Path:
    """The folder of the shipped weights of a tag.

    Args:
        tag: ``architecture.tag`` with shipped weights (``SHIPPED_TAGS``), e.g. ``galaxy_attn_vgg.gz_sdss``.

    Returns:
        The model folder (config.json, preprocessor_config.json, model.safetensors, README.md).
    """
    if tag not in SHIPPED_TAGS:
        raise ValueError(
            f"No shipped weights for {tag!r}. The tags with weights: {', '.join(SHIPPED_TAGS)} "
            "(timm.list_pretrained('galaxy_attn*') lists the same)."
        )
    folder = PRETRAINED_DIR / tag
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"The weights of {tag!r} are missing from {folder}: the package is incomplete. Reinstall "
            "timm-galaxy-attn (pip install --force-reinstall timm-galaxy-attn)."
        )
    return folder


def _resolve_cfg(variant: str, kwargs: dict[str, Any]):
    from timm.models._builder import resolve_pretrained_cfg

    return resolve_pretrained_cfg(variant, kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay"))


def architecture_cfg(arch: str) -> dict[str, Any]:
    """The config of ``arch`` built without weights or a tag: ``UNTRAINED_CFGS`` (``galaxy_attn_vgg``: the
    paper's 32 px, not the 128 px of its default tag), else its default tag's."""
    from timm.models import get_pretrained_cfg

    return dict(UNTRAINED_CFGS.get(arch) or get_pretrained_cfg(arch).to_dict())


def shipped_model_args(variant: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The architecture options the shipped weights ``variant`` resolves to were trained with (their
    config.json's ``model_args``: ``galaxy_attn_vgg.gz_sdss`` has the stride-4 stem), {} for other configs;
    ``kwargs`` are the model function's (``pretrained_cfg``, ``pretrained_cfg_overlay``)."""
    tag = _resolve_cfg(variant, kwargs).tag
    name = f"{variant}.{tag}" if tag else variant
    if name not in SHIPPED_TAGS:
        return {}
    return json.loads((PRETRAINED_DIR / name / "config.json").read_text())["model_args"]


def check_has_weights(variant: str, kwargs: dict[str, Any]) -> None:
    """pretrained=True on a config without weights is an error (timm itself only warns and initialises
    at random); ``kwargs`` are the model function's (``pretrained_cfg``, ``pretrained_cfg_overlay``)."""
    cfg = _resolve_cfg(variant, kwargs)
    if not cfg.has_weights:  # hf-hub: and local-dir: configs carry hf_hub_id / file
        name = f"{variant}.{cfg.tag}" if cfg.tag else variant
        raise RuntimeError(
            f"No pretrained weights exist for {name!r}. The tags with weights: {', '.join(SHIPPED_TAGS)} "
            "(timm.list_pretrained('galaxy_attn*')); or pass pretrained=False for random initialisation."
        )


def check_not_retired(variant: str, kwargs: dict[str, Any]) -> None:
    """A withdrawn tag (``RETIRED_TAGS``) is an error that says what replaced it (timm would only call the
    tag invalid); ``kwargs`` are the model function's."""
    tag = kwargs.get("pretrained_cfg")
    name = f"{variant}.{tag}" if isinstance(tag, str) else variant
    if name in RETIRED_TAGS:
        raise RuntimeError(
            f"{name!r} was withdrawn: {RETIRED_TAGS[name]}. The tags with weights: {', '.join(SHIPPED_TAGS)}."
        )


def missing_weights_error(variant: str, kwargs: dict[str, Any], error: BaseException) -> RuntimeError | None:
    """The error naming the Hub repository and the fix when ``error`` (from building ``variant`` with
    pretrained weights) means the weights are not in the local cache and cannot be downloaded; else None."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    cfg = _resolve_cfg(variant, kwargs).to_dict()
    repo = cfg.get("hf_hub_id") or "(no hf_hub_id)"
    tag = f"{variant}.{cfg['tag']}" if cfg.get("tag") else variant
    return RuntimeError(
        f"The weights of {tag!r} live in the Hugging Face Hub repository {repo!r}, which is not in the "
        "local cache and cannot be downloaded (offline or no network). Download it where there is a "
        f"network (`hf download {repo}`) and copy the cache, or load a local folder with "
        "timm.create_model('local-dir:PATH')."
    )
