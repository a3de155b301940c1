"""Loading the catalogue's model: a timm name with tag, a local folder, a Hub repository or a module.

Weights are read from safetensors files only (never pickled ``.bin``/``.pth`` files). A name whose weights
cannot be had is a :class:`ModelLoadError` whose message says what to do, unless random weights are allowed.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn as nn

from .._io import sha256_file
from ..labels import MIRROR_LABEL_SWAPS, dataset_of_label_names, label_names_of

__all__ = ["LoadedModel", "ModelLoadError", "load_model"]


class ModelLoadError(RuntimeError):
    """The model or its weights cannot be loaded; the message says why and what to do."""


@dataclasses.dataclass
class LoadedModel:
    """A model ready for inference and the facts the catalogue records about it."""

    model: nn.Module
    name: str
    weights_sha256: str | None
    weights_file: str | None
    label_names: tuple[str, ...]
    dataset: str | None
    pretrained_cfg: dict[str, Any]


def _load_safetensors_into(model: nn.Module, path: Path, name: str) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path), device="cpu")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelLoadError(
            f"Weights {path} do not fit model {name!r}: missing keys {missing[:5]}, unexpected keys "
            f"{unexpected[:5]}. The folder's config.json and model.safetensors must come from the same model."
        )


def _hub_safetensors(repo_id: str, name: str) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, "model.safetensors"))
    except Exception as exc:  # offline cache miss, missing repo or file, network error
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
        where = (
            "is not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
            if offline
            else "could not be fetched"
        )
        raise ModelLoadError(
            f"No weights for {name!r}: model.safetensors of the Hub repository {repo_id!r} {where} "
            f"({type(exc).__name__}). Fix: run once with network access to cache it, pass a local model "
            "folder (--model path/to/model, a folder with config.json + model.safetensors as written by "
            "training/train.py), or add --allow-random-weights for a smoke test with untrained weights "
            "(its predictions mean nothing). timm itself (pretrained=True) would stop with a cache error "
            "here, or, for a name without a weights source, silently fall back to random weights."
        ) from exc


def _dataset_of(label_names: Sequence[str], pretrained_cfg: dict[str, Any]) -> str | None:
    dataset = dataset_of_label_names(label_names)
    if dataset is not None:
        return dataset
    tag = pretrained_cfg.get("tag")
    return tag if tag in MIRROR_LABEL_SWAPS else None


def _from_folder(spec: str) -> tuple[nn.Module, Path]:
    import timm

    folder = Path(spec.removeprefix("local-dir:"))
    if not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"Model folder {folder} has no config.json. A model folder holds config.json (timm format) "
            "and model.safetensors, as written by training/train.py into RUN_DIR/model."
        )
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelLoadError(
            f"Model folder {folder} has no model.safetensors. Only safetensors weights are loaded "
            "(never pickled .bin/.pth files); convert them with safetensors.torch.save_file."
        )
    return timm.create_model(f"local-dir:{folder}", pretrained=False), weights


def _from_hub(spec: str) -> tuple[nn.Module, Path]:
    import timm

    repo_id = spec.removeprefix("hf-hub:")
    try:
        model = timm.create_model(spec, pretrained=False)
    except Exception as exc:
        raise ModelLoadError(
            f"Cannot read config.json of the Hub repository {repo_id!r} ({type(exc).__name__}: {exc}). "
            "Offline, the repository must be in the Hugging Face cache; or pass a local model folder."
        ) from exc
    return model, _hub_safetensors(repo_id, spec)


def _named_weights(model: nn.Module, spec: str) -> Path:
    """The weights of the timm name ``spec``: shipped with the package, else from its Hub repository."""
    import timm

    packaged, hub_id = model.pretrained_cfg.get("file"), model.pretrained_cfg.get("hf_hub_id")
    if packaged:  # shipped with the package: no download
        return Path(packaged)
    if not hub_id:
        raise ModelLoadError(
            f"{spec!r} has no pretrained weights. Pass a tag with weights "
            f"({', '.join(timm.list_pretrained('galaxy_attn*'))}), a local model folder, or "
            "--allow-random-weights for a smoke test."
        )
    return _hub_safetensors(hub_id, spec)


def _from_name(spec: str, allow_random_weights: bool) -> tuple[nn.Module, Path | None]:
    import timm

    arch = spec.split(".", 1)[0]
    if not timm.is_model(arch):
        known = ", ".join(timm.list_models("galaxy_attn*"))
        shipped = ", ".join(timm.list_pretrained("galaxy_attn*"))
        raise ModelLoadError(
            f"Unknown model {spec!r}: not a folder, not hf-hub:ORG/NAME, not a timm model. "
            f"Models of this package: {known} (with weights: {shipped})."
        )
    default = timm.models.get_pretrained_cfg(arch)
    if spec == arch and default is not None and default.has_weights and default.tag:
        spec = f"{arch}.{default.tag}"  # as timm.create_model(arch, pretrained=True): its default tag
    try:
        model = timm.create_model(spec, pretrained=False)
    except RuntimeError as exc:
        raise ModelLoadError(f"Cannot create {spec!r}: {exc}") from exc
    try:
        return model, _named_weights(model, spec)
    except ModelLoadError:
        if not allow_random_weights:
            raise
        warnings.warn(
            f"{spec}: no weights available; using RANDOM weights (--allow-random-weights). "
            "Predictions are meaningless.",
            stacklevel=3,
        )
        return model, None


def load_model(spec: str | os.PathLike | nn.Module, *, allow_random_weights: bool = False) -> LoadedModel:
    """Load the model named by ``spec`` for inference, with safetensors weights only.

    ``spec`` is a timm name with tag (``galaxy_attn_vgg_tiny_s4.gz_sdss``: the weights shipped in the
    package; a config with only a Hub id reads the Hugging Face cache when offline), a local folder
    (``DIR`` or ``local-dir:DIR``, with config.json in timm format and model.safetensors), a Hub
    repository (``hf-hub:ORG/NAME``), or an ``nn.Module``.
    A name whose weights cannot be had is an error unless ``allow_random_weights`` (then the model is
    randomly initialised and ``weights_sha256`` is None).

    Args:
        spec: The model's name, folder, Hub id or module (above).
        allow_random_weights: Accept a name without weights (random initialisation).
    """
    if isinstance(spec, nn.Module):
        cfg = dict(getattr(spec, "pretrained_cfg", None) or {})
        labels = label_names_of(cfg, spec.num_classes)
        return LoadedModel(
            spec.eval(), type(spec).__name__, None, None, labels, _dataset_of(labels, cfg), cfg
        )
    spec = str(spec)
    weights: Path | None
    if spec.startswith("local-dir:") or Path(spec).is_dir():
        model, weights = _from_folder(spec)
    elif spec.startswith("hf-hub:"):
        model, weights = _from_hub(spec)
    else:
        model, weights = _from_name(spec, allow_random_weights)
    if weights is not None:
        _load_safetensors_into(model, weights, spec)
    cfg = dict(model.pretrained_cfg)
    labels = label_names_of(cfg, model.num_classes)
    return LoadedModel(
        model=model.eval(),
        name=spec,
        weights_sha256=sha256_file(weights) if weights is not None else None,
        weights_file=str(weights) if weights is not None else None,
        label_names=labels,
        dataset=_dataset_of(labels, cfg),
        pretrained_cfg=cfg,
    )
