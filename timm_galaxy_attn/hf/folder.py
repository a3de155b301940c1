"""Write one model folder that timm and transformers both load.

``save_pretrained_folder(model, folder, label_names=...)`` writes

* ``model.safetensors``: the timm state dict (plain timm keys);
* ``config.json``: timm's keys (``architecture``, ``num_classes``, ``label_names``, ``model_args``,
  ``pretrained_cfg``) and transformers' (``model_type``, ``id2label``, ``label2id``, ``architectures``);
* ``preprocessor_config.json``: the GalaxyAttnImageProcessor of the same data config.

The folder loads with ``timm.create_model("local-dir:FOLDER")``, ``"hf-hub:ORG/NAME"`` once uploaded,
``AutoModelForImageClassification.from_pretrained(FOLDER)`` and ``pipeline("image-classification", FOLDER)``.
Not ``timm.models.save_for_hf``: it writes timm's config.json alone (no ``model_type``, ``id2label``, nor
``preprocessor_config.json``) in place, where this writes one GalaxyAttnConfig for both and swaps the whole
folder in atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import safetensors.torch
import timm.data
import torch
import torch.nn as nn
from timm.models import filter_pretrained_cfg

from .._io import atomic_write, replace_dir
from ..catalog.geometry import DATA_CONFIG_KEYS
from ..model import MODEL_PRESETS, GalaxyAttnVGG, config_architecture, preset_widths
from .configuration_galaxy_attn import GalaxyAttnConfig, check_label_names
from .image_processing_galaxy_attn import GalaxyAttnImageProcessor

__all__ = ["save_pretrained_folder", "config_from_timm_model", "recast_folder_weights", "FOLDER_FILES"]

FOLDER_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")
# pretrained_cfg keys that describe where the source weights came from, not the weights being written.
_SOURCE_KEYS = ("url", "file", "state_dict", "hf_hub_id", "hf_hub_filename", "source", "tag", "architecture")


def _timm_model(model: nn.Module) -> GalaxyAttnVGG:
    inner = getattr(model, "timm_model", model)  # a GalaxyAttnForImageClassification holds it here
    inner = getattr(inner, "module", inner)  # DistributedDataParallel / accelerate wrappers
    inner = getattr(inner, "_orig_mod", inner)  # torch.compile
    if not isinstance(inner, GalaxyAttnVGG):
        raise TypeError(
            f"save_pretrained_folder writes GalaxyAttnVGG models, got {type(model).__name__}. Pass the model "
            "from "
            "timm.create_model('galaxy_attn_vgg_small', ...) (unwrapped: accelerator.unwrap_model(model))."
        )
    return inner


def config_from_timm_model(
    model: nn.Module,
    label_names: Sequence[str],
    *,
    data_config: Mapping[str, Any] | None = None,
    pretrained_cfg: Mapping[str, Any] | None = None,
) -> GalaxyAttnConfig:
    """The GalaxyAttnConfig describing ``model`` (a GalaxyAttnVGG), its classes and its preprocessing.

    ``data_config`` (timm keys input_size, interpolation, crop_pct, crop_mode, mean, std) is the eval
    preprocessing the weights were trained and scored with; by default the model's own
    (``timm.data.resolve_model_data_config``). ``pretrained_cfg`` adds or overrides pretrained_cfg entries
    (e.g. ``hf_hub_id``, ``description``).
    """
    timm_model = _timm_model(model)
    names = check_label_names(label_names)
    if len(names) != timm_model.num_classes:
        raise ValueError(
            f"{len(names)} label names for a classifier of {timm_model.num_classes} classes; give one name "
            "per "
            "class, in classifier order."
        )
    registered = timm_model.pretrained_cfg.get("architecture")
    if registered not in MODEL_PRESETS:
        raise ValueError(
            f"Cannot tell which GalaxyAttnVGG variant this model is (pretrained_cfg architecture="
            f"{registered!r}); create it with timm.create_model, one of {', '.join(MODEL_PRESETS)}."
        )
    architecture = config_architecture(registered)  # a variant's presets go to model_args
    cfg = filter_pretrained_cfg(dict(timm_model.pretrained_cfg), remove_source=True, remove_null=True)
    for key in _SOURCE_KEYS:
        cfg.pop(key, None)
    resolved = timm.data.resolve_model_data_config(timm_model, args=dict(data_config or {}))
    cfg.update({key: resolved[key] for key in DATA_CONFIG_KEYS if key in resolved})
    cfg["input_size"] = (timm_model.in_chans, *cfg["input_size"][1:])
    cfg.update(dict(pretrained_cfg or {}))
    cfg["num_classes"] = timm_model.num_classes
    cfg["label_names"] = names
    cfg = json.loads(json.dumps(cfg))  # tuples -> lists, as they will read back from config.json

    widths = list(timm_model.widths) if tuple(timm_model.widths) != preset_widths(architecture) else None
    return GalaxyAttnConfig.from_label_names(
        names,
        architecture=architecture,
        in_chans=timm_model.in_chans,
        compatibility=timm_model.compatibility,
        normalize=timm_model.normalize,
        attn_position=timm_model.attn_position,
        stem_stride=timm_model.stem_stride,
        attention=timm_model.attention,
        widths=widths,
        pretrained_cfg=cfg,
        architectures=["GalaxyAttnForImageClassification"],
    )


def recast_folder_weights(folder: str | os.PathLike, weights_dtype: torch.dtype) -> Path:
    """Rewrite a model folder's ``model.safetensors`` in ``weights_dtype`` (atomic) and record the float32
    compute dtype in its ``config.json``; the other files are kept."""
    folder = Path(folder)
    weights = folder / "model.safetensors"
    if not weights_dtype.is_floating_point:
        raise ValueError(
            f"weights_dtype must be a floating dtype (float32, float16, bfloat16), not {weights_dtype}."
        )
    state = safetensors.torch.load_file(str(weights))
    stored = {k: v.to(weights_dtype) if v.is_floating_point() else v for k, v in state.items()}
    atomic_write(weights, lambda tmp: safetensors.torch.save_file(stored, tmp, metadata={"format": "pt"}))
    config = json.loads((folder / "config.json").read_text())
    config["dtype"] = "float32"
    atomic_write(
        folder / "config.json",
        lambda tmp: tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n"),
    )
    return folder


def save_pretrained_folder(
    model: nn.Module,
    folder: str | os.PathLike,
    *,
    label_names: Sequence[str] | None = None,
    data_config: Mapping[str, Any] | None = None,
    pretrained_cfg: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` (GalaxyAttnVGG or GalaxyAttnForImageClassification) as one timm + transformers folder.

    Args:
        model: The trained model (unwrap DDP / accelerate first, or pass it as is: ``.module`` is followed).
        folder: Directory to create. Written to a temporary sibling and moved into place, so a crash never
            leaves a half-written folder.
        label_names: Class names in classifier order (e.g. ``timm_galaxy_attn.class_names("gz1_sdss")``);
            default: ``model.pretrained_cfg["label_names"]`` when it names ``num_classes`` classes.
        data_config: The eval preprocessing of the weights (timm data-config keys); default: the model's.
        pretrained_cfg: Extra pretrained_cfg entries to record (e.g. ``{"hf_hub_id": "org/name"}``).
        overwrite: Replace an existing folder; without it an existing non-empty folder is an error.

    Returns:
        The folder path.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} exists and is not a directory; choose another output folder.")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{folder} already holds files; pass overwrite=True to replace it, or choose another folder."
        )
    timm_model = _timm_model(model)
    if label_names is None:
        label_names = timm_model.pretrained_cfg.get("label_names")
        if label_names is None or len(label_names) != timm_model.num_classes:
            raise ValueError(
                f"Give label_names (one per class, {timm_model.num_classes} here): the model's "
                "pretrained_cfg "
                "does not name its classes."
            )
    config = config_from_timm_model(
        timm_model, label_names, data_config=data_config, pretrained_cfg=pretrained_cfg
    )
    processor = GalaxyAttnImageProcessor.from_pretrained_cfg(config.pretrained_cfg)
    state_dict = {k: v.detach().to("cpu").contiguous() for k, v in timm_model.state_dict().items()}

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        safetensors.torch.save_file(state_dict, tmp / "model.safetensors", metadata={"format": "pt"})
        config.dtype = torch.float32  # the compute dtype (recast_folder_weights may store fp16)
        config.to_json_file(tmp / "config.json", use_diff=True)
        processor.to_json_file(tmp / "preprocessor_config.json")
        replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
