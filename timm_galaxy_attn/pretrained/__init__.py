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

__all__ = ["DEFAULT_TAG", "PRETRAINED_DIR", "SHIPPED_TAGS", "pretrained_path"]

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
