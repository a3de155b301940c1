"""The typed configuration of a training run: one :class:`TrainConfig`, the only place its defaults live.

Every field is one option of ``training/train.py`` (``command`` and ``timm_galaxy_attn_version`` are recorded
by a new run); its metadata holds the help, choices and command-line group, from which
:func:`.arguments.build_parser` generates the parser. Recipe-controlled fields default to the ``default``
recipe; :func:`resolve_config` overlays the chosen recipe, then the options typed. ``train_config.json`` is
:meth:`TrainConfig.to_dict`; :func:`.checks.validate_config` checks a config once, before a run uses it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from timm_galaxy_attn.attention import COMPATIBILITIES, NORMALIZATIONS
from timm_galaxy_attn.model import ATTN_POSITIONS, STEM_STRIDES

from .errors import TrainingError
from .recipes import RECIPES

__all__ = ["GROUPS", "KNOWN_SOURCES", "RECORDED", "TrainConfig", "resolve_config"]

# The named sources of --dataset (load_galaxy_dataset's).
KNOWN_SOURCES = ("synthetic", "galaxy10_decals", "galaxy10_sdss", "gz1_sdss")

# Command-line groups, in the order --help lists them.
GROUPS = ("data", "model", "optimisation", "run")
# Fields a run records itself; they are not options.
RECORDED = ("command", "timm_galaxy_attn_version")


def _option(default: Any, help: str = "", group: str = "run", **argparse_kwargs: Any) -> Any:
    """A field that is an option: its default, ``--help`` text, group and extra ``add_argument`` kwargs."""
    return dataclasses.field(default=default, metadata={"help": help, "group": group, **argparse_kwargs})


def _recipe(key: str, help: str = "", group: str = "optimisation", **argparse_kwargs: Any) -> Any:
    """A recipe-controlled option: the ``default`` recipe's value unless a recipe or the user sets it."""
    return _option(RECIPES["default"][key], help, group, recipe=True, **argparse_kwargs)


@dataclasses.dataclass
class TrainConfig:
    """Every option of a run, in the order ``train_config.json`` lists them (recipe options first).

    Construct it with keywords (the rest take their defaults) or from ``training/train.py``'s command line
    (:func:`.arguments.parse_args` then :func:`resolve_config`).
    """

    # recipe-controlled (defaults: the ``default`` recipe)
    image_size: int | None = _recipe("image_size", "input size (None: the data config's)", "data")
    batch_size: int = _recipe("batch_size", "per process")
    epochs: int = _recipe("epochs")
    optimizer: str = _recipe(
        "optimizer", "timm optimizer (sgd: classical momentum)", choices=("sgd", "adamw")
    )
    lr: float = _recipe("lr", "peak learning rate (of the head when fine-tuning)")
    momentum: float = _recipe("momentum", "sgd momentum")
    weight_decay: float = _recipe("weight_decay", "weight decay of the weights (never of norms and biases)")
    sched: str = _recipe("sched", "LR schedule after the warm-up", choices=("step", "cosine", "constant"))
    decay_epochs: int = _recipe("decay_epochs", "step schedule: epochs between decays")
    decay_rate: float = _recipe("decay_rate", "step schedule: lr factor per decay")
    warmup_epochs: float = _recipe("warmup_epochs", "linear warm-up, in epochs")
    label_smoothing: float = _recipe("label_smoothing")
    balance: str = _recipe(
        "balance",
        "class balancing: weights in the loss or a weighted sampler",
        choices=("none", "loss", "sampler"),
    )
    balance_power: float = _recipe(
        "balance_power", "class weight = count^-power (1: inverse frequency, 0.5: inverse square root)"
    )
    rotate: str = _recipe("rotate", "rotation augmentation", choices=("any", "90", "none"))
    flip: bool = _recipe("flip", "mirror flips (with the dataset's mirror label swap)")
    max_shift: float = _recipe("max_shift", "random shift, fraction of the image side")
    brightness: float = _recipe("brightness", "brightness jitter (factor in 1 +- v)")
    contrast: float = _recipe("contrast", "contrast jitter (factor in 1 +- v)")
    mixed_precision: str = _recipe(
        "mixed_precision",
        "auto: bf16 where the device runs it natively, else no (fp16 on GPUs without bf16)",
        choices=("auto", "no", "bf16", "fp16"),
    )
    channels_last: bool = _recipe("channels_last", "channels_last memory format")
    clip_grad: float = _recipe("clip_grad", "gradient norm clip (0: off)")
    # data
    dataset: str | None = _option(
        None,
        f"a load_galaxy_dataset source: {', '.join(KNOWN_SOURCES)}, or a path (.h5, parquet, image folder); "
        "required unless --resume reads it from the run",
        "data",
    )
    data_path: str | None = _option(None, "local file/folder for a named source (else its default)", "data")
    dataset_name: str | None = _option(
        None,
        "class-name set of a path source (galaxy10_decals, galaxy10_sdss, gz1_sdss): picks its data config "
        "and mirror label swap",
        "data",
    )
    group_column: str | None = _option(
        None,
        "a column of a parquet source whose equal values stay on one side of the split (object id, IAU name; "
        "IAU names without ra/dec columns also join the 10-arcsec sky grouping)",
        "data",
    )
    split: str = _option("grouped", "split rule of load_galaxy_dataset ('grouped', 'hub')", "data")
    split_seed: int = _option(0, "seed of the train/validation/test split", "data")
    val_fraction: float = _option(0.1, "validation fraction of the split", "data")
    test_fraction: float = _option(0.1, "test fraction of the split", "data")
    synthetic_per_class: int = _option(200, "images per class of --dataset synthetic", "data")
    max_train_samples: int | None = _option(None, "use only this many training images", "data")
    joint: list[str] | None = _option(
        None,
        "also train a Galaxy Zoo 2 vote head on the training split of these sources (gz2_kaggle, "
        "gz2_kaggle_spiral; needs --dataset gz1_sdss; docs/pretraining.md)",
        "data",
        nargs="+",
    )
    joint_data_path: str | None = _option(
        None, "folder holding the --joint sources (default: $GZ2_KAGGLE_DIR or the data root)", "data"
    )
    joint_per_epoch: int | None = _option(
        None, "images of the --joint sources drawn per epoch (default: all of them)", "data"
    )
    vote_weight: float = _option(1.0, "with --joint: factor of the vote loss", "optimisation")
    crop_pct: float | None = _option(None, "centre-crop fraction (default: the data config's)", "data")
    mean: list[float] | None = _option(None, "per-channel mean (default: the data config's)", "data", nargs=3)
    std: list[float] | None = _option(None, "per-channel std (default: the data config's)", "data", nargs=3)
    # model
    model: str = _option(
        "galaxy_attn_vgg_small",
        "any timm model name; with --pretrained also a tag with weights, local-dir:FOLDER or hf-hub:ORG/NAME",
        "model",
    )
    pretrained: bool = _option(
        False,
        "fine-tune: start from the weights of --model with a fresh classifier for the dataset's classes; the "
        "data config (input size, crop, mean/std) comes from the weights' pretrained_cfg",
        "model",
    )
    freeze_backbone: bool = _option(
        False,
        "with --pretrained: train only the head (classifier + attention estimators); BatchNorm statistics of "
        "the backbone stay the pretrained ones",
        "model",
    )
    backbone_lr_scale: float = _option(
        1.0, "with --pretrained: learning rate of the pretrained non-head parameters = lr * this", "model"
    )
    initial_checkpoint: str | None = _option(
        None,
        "continue training these weights, classifier included (timm's option of the name): a model folder "
        "(model.safetensors, with --joint also vote_head.safetensors) or a .safetensors file of the same "
        "network as --model and its options build, e.g. a shipped tag's folder (docs/pretraining.md)",
        "model",
    )
    drop_rate: float | None = _option(None, "dropout before the classifier", "model")
    stem_stride: int | None = _option(None, "galaxy_attn_vgg only", "model", choices=STEM_STRIDES)
    compatibility: str | None = _option(None, "galaxy_attn_vgg only", "model", choices=COMPATIBILITIES)
    normalize: str | None = _option(None, "galaxy_attn_vgg only", "model", choices=NORMALIZATIONS)
    attn_position: str | None = _option(None, "galaxy_attn_vgg only", "model", choices=ATTN_POSITIONS)
    attention: bool | None = _option(
        None,
        "galaxy_attn_vgg ablation: classifier on the global feature g, no attention",
        "model",
        flag="--no-attention",
        const=False,
    )
    # run
    recipe: str = _option(
        "default", "the defaults of the optimisation options", "optimisation", choices=tuple(RECIPES)
    )
    seed: int = _option(0, "seed of initialisation, data order and augmentation", "optimisation")
    cpu: bool = _option(False, "train on the CPU even if a GPU is present", "optimisation")
    compile: bool = _option(
        False, "train through torch.compile(model) (evaluation stays eager)", "optimisation"
    )
    output_dir: str | None = _option(None, "the run folder", required=True)
    resume: bool = _option(False, "continue the run in --output-dir from its last checkpoint")
    checkpoint_every_steps: int = _option(
        0, "also checkpoint every N optimizer steps (0: only at the end of each epoch)"
    )
    keep_checkpoints: int = _option(1, "how many step checkpoints to keep")
    num_heatmaps: int = _option(8, "validation galaxies in the attention grids")
    eval_batch_size: int = _option(256, "batch size of validation and test")
    log_every: int = _option(10, "TensorBoard step logging interval")
    stop_after_steps: int | None = _option(
        None, "debug: stop (as if killed) after this many optimizer steps of the whole run"
    )
    # recorded by a new run
    command: str | None = None
    timm_galaxy_attn_version: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainConfig:
        """A config from ``values`` (e.g. a saved train_config.json); missing keys take their defaults.

        Args:
            values: Field names and values.

        Raises:
            TrainingError: A key is not a field of TrainConfig.
        """
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TrainingError(
                f"Unknown training options {', '.join(sorted(unknown))}: not fields of TrainConfig "
                "(a train_config.json of another version?)."
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Every field, in order (what ``train_config.json`` holds)."""
        return dataclasses.asdict(self)


def resolve_config(typed: Mapping[str, Any]) -> TrainConfig:
    """The run's config: the field defaults, then the chosen recipe, then the options typed (typed wins).

    Args:
        typed: The options typed on the command line (:func:`.arguments.parse_args`), field -> value.
    """
    values = {**RECIPES[typed.get("recipe", "default")], **typed}
    if values.get("pretrained") and "image_size" not in typed:
        values["image_size"] = None  # fine-tuning: the input size of the weights, not the recipe's
    return TrainConfig.from_mapping(values)
