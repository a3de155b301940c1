"""The shipped weights, as package data: one folder per timm tag, loadable offline from an installed wheel.

Each folder (``config.json``, ``preprocessor_config.json``, ``model.safetensors``, the model card
``README.md``) is a complete Hugging Face model folder, so the same files serve

* timm: ``timm.create_model(tag, pretrained=True)`` (the tag's ``file`` in ``default_cfgs`` points here);
* transformers: ``pipeline("image-classification", model=pretrained_path(tag))`` and
  ``AutoModelForImageClassification.from_pretrained(pretrained_path(tag))``;
* the catalogue: ``galaxy-attn predict IMAGES --model TAG`` (``DEFAULT_TAG`` without ``--model``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_TAG",
    "PRETRAINED_DIR",
    "SHIPPED_TAGS",
    "check_has_weights",
    "missing_weights_error",
    "pretrained_path",
]

PRETRAINED_DIR = Path(__file__).resolve().parent
# The tags with shipped weights, best first: what default_cfgs lists and what pretrained_path serves.
SHIPPED_TAGS: tuple[str, ...] = ("galaxy_attn_vgg_tiny_s4.gz1_sdss", "galaxy_attn_vgg.gz1_sdss")
DEFAULT_TAG = SHIPPED_TAGS[0]  # best on validation (docs/results.md): the catalogue's default model


def pretrained_path(tag: str = DEFAULT_TAG) -> Path:
    """The folder of the shipped weights of ``tag`` (``architecture.tag``: ``galaxy_attn_vgg.gz1_sdss``)."""
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
