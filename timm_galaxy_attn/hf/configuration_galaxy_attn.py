"""GalaxyAttnConfig: the transformers configuration of a GalaxyAttnVGG, stored in timm's config.json layout.

One ``config.json`` serves timm and transformers. timm reads ``architecture``, ``num_classes``,
``label_names``, ``model_args`` and ``pretrained_cfg``; transformers reads ``model_type``, ``id2label`` and
``label2id``. The architecture options live once, in ``model_args`` (the keyword arguments of
``timm.create_model``); this class exposes them as attributes and writes them back there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from ..attention import COMPATIBILITIES, NORMALIZATIONS, check_choice
from ..model import ATTN_POSITIONS, CONFIG_ARCHITECTURES, STEM_STRIDES
from ..tta import TTA_MODES

__all__ = ["GalaxyAttnConfig", "MODEL_ARG_KEYS"]

# Options of GalaxyAttnVGG written to config.json["model_args"] (num_classes is timm's top-level key).
MODEL_ARG_KEYS = (
    "in_chans",
    "compatibility",
    "normalize",
    "attn_position",
    "stem_stride",
    "attention",
    "widths",
)


@strict
class GalaxyAttnConfig(PreTrainedConfig):
    r"""Configuration of :class:`GalaxyAttnForImageClassification`.

    Args:
        architecture: The timm model name (``model.CONFIG_ARCHITECTURES``: ``"galaxy_attn_vgg"`` or
            ``"galaxy_attn_vgg_small"``).
        in_chans: Input channels.
        compatibility: ``"pc"`` (parametrised, the paper's) or ``"dp"`` (dot product).
        normalize: ``"softmax"`` (the paper's) or ``"sigmoid"``.
        attn_position: ``"before"`` or ``"after"`` max-pooling.
        stem_stride: 1, 2 or 4.
        attention: False for the ablation without attention estimators.
        widths: Channels of the six blocks; None keeps the architecture's own.
        pretrained_cfg: timm's pretrained config of the weights (input size, crop, interpolation, mean, std,
            label names...), from which the image processor is derived.
        tta: Test-time augmentation of the model's eval-mode forward: ``"none"``, or ``"d4"`` (the mean class
            probabilities of the 8 rotations/mirror images, ``timm_galaxy_attn.tta``; the logits are their
            log, so ``softmax(logits)`` and the pipeline's scores are the TTA probabilities). The shipped
            weights set the mode chosen on validation.
        id2label / label2id: The class names (also written as timm's ``label_names``).

    Example::

        >>> config = GalaxyAttnConfig(architecture="galaxy_attn_vgg_small", id2label={0: "Smooth", 1: "Disk"})
        >>> config.num_labels
        2
    """

    model_type = "galaxy_attn_vgg"

    architecture: str = "galaxy_attn_vgg_small"
    in_chans: int = 3
    compatibility: str = "pc"
    normalize: str = "softmax"
    attn_position: str = "before"
    stem_stride: int = 1
    attention: bool = True
    widths: list[int] | None = None
    pretrained_cfg: dict[str, Any] | None = None
    tta: str = "none"

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.architecture not in CONFIG_ARCHITECTURES:
            raise ValueError(
                f"architecture={self.architecture!r} is not a GalaxyAttnVGG model; choose one of "
                f"{', '.join(map(repr, CONFIG_ARCHITECTURES))} (other options go to the other fields)."
            )
        check_choice("compatibility", self.compatibility, COMPATIBILITIES)
        check_choice("normalize", self.normalize, NORMALIZATIONS)
        check_choice("attn_position", self.attn_position, ATTN_POSITIONS)
        check_choice("tta", self.tta, TTA_MODES)
        if self.stem_stride not in STEM_STRIDES:
            raise ValueError(
                f"stem_stride={self.stem_stride!r} is not supported; choose one of {STEM_STRIDES}."
            )
        if self.widths is not None:
            self.widths = [int(w) for w in self.widths]

    @property
    def label_names(self) -> list[str]:
        """Class names in classifier order (timm's ``label_names``)."""
        return [self.id2label[i] for i in range(self.num_labels)]

    def timm_model_args(self) -> dict[str, Any]:
        """Keyword arguments of ``timm.create_model(self.architecture, ...)`` (without num_classes)."""
        args = {key: getattr(self, key) for key in MODEL_ARG_KEYS}
        if args["widths"] is None:
            del args["widths"]
        return args

    @classmethod
    def from_label_names(cls, label_names: Sequence[str], **kwargs: Any) -> GalaxyAttnConfig:
        """Build a config whose id2label / label2id come from ``label_names`` (unique, non-empty strings)."""
        names = check_label_names(label_names)
        return cls(id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)}, **kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> GalaxyAttnConfig:
        """Read a config.json dict: timm keys (``model_args``, ``label_names``, ``num_classes``) included."""
        config_dict = dict(config_dict)
        model_args = dict(config_dict.pop("model_args", None) or {})
        model_args.pop("num_classes", None)
        unknown = sorted(set(model_args) - set(MODEL_ARG_KEYS))
        if unknown:
            raise ValueError(
                f"config.json model_args has keys GalaxyAttnVGG does not take: {unknown}. Expected a subset "
                "of "
                f"{list(MODEL_ARG_KEYS)}; re-export the folder with "
                "timm_galaxy_attn.hf.save_pretrained_folder."
            )
        config_dict.update(model_args)
        num_classes = config_dict.pop("num_classes", None)
        label_names = config_dict.pop("label_names", None)
        for key in ("num_features", "global_pool"):  # informational timm keys
            config_dict.pop(key, None)
        if label_names is not None and config_dict.get("id2label") is None:
            names = check_label_names(label_names)
            config_dict["id2label"] = dict(enumerate(names))
            config_dict["label2id"] = {n: i for i, n in enumerate(names)}
        id2label = config_dict.get("id2label")
        if num_classes is not None and id2label is not None and len(id2label) != int(num_classes):
            raise ValueError(
                f"config.json says num_classes={num_classes} but has {len(id2label)} class names; "
                "the labels and the classifier must agree."
            )
        if num_classes is not None and id2label is None:
            kwargs.setdefault("num_labels", int(num_classes))
        return super().from_dict(config_dict, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Serialise in timm's layout plus the transformers keys (model_type, id2label, label2id)."""
        output = super().to_dict()
        for key in MODEL_ARG_KEYS:
            output.pop(key, None)
        output["model_args"] = self.timm_model_args()
        output["num_classes"] = self.num_labels
        output["label_names"] = self.label_names
        return output


def check_label_names(label_names: Sequence[str]) -> list[str]:
    """Return ``label_names`` as a list after checking they are unique, non-empty strings."""
    if isinstance(label_names, str) or not isinstance(label_names, Sequence):
        raise TypeError(f"label_names must be a sequence of class names, got {type(label_names).__name__}.")
    names = list(label_names)
    if not names:
        raise ValueError("label_names is empty; give one name per class, in classifier order.")
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ValueError(f"label_names must be non-empty strings, got {bad!r}.")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"label_names must be unique; repeated: {duplicates}.")
    return names
