"""The command line of ``training/train.py``: one argument group per concern, each dest a TrainConfig field.

Recipe-controlled options default to None (= take the recipe's value, see :func:`.config.resolve_config`).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

from .config import TrainConfig
from .data import KNOWN_SOURCES
from .recipes import RECIPES

__all__ = ["build_parser", "parse_args"]

# Fields a run records itself; they are not options.
RECORDED = ("command", "timm_galaxy_attn_version")


def _data_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        default=None,
        help=f"a load_galaxy_dataset source: {', '.join(KNOWN_SOURCES)}, or a path (.h5, parquet, "
        "image folder)",
    )
    g.add_argument(
        "--data-path", default=None, help="local file/folder for a named source (else its default)"
    )
    g.add_argument(
        "--dataset-name",
        default=None,
        help="class-name set of a path source (galaxy10_decals, galaxy10_sdss, gz1_sdss): picks "
        "its data config and mirror label swap",
    )
    g.add_argument(
        "--group-column",
        default=None,
        help="a column of a parquet source whose equal values stay on one side of the split (object id, IAU "
        "name; IAU names without ra/dec columns also join the 10-arcsec sky grouping)",
    )
    g.add_argument("--split", default="grouped", help="split rule of load_galaxy_dataset ('grouped', 'hub')")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation/test split")
    g.add_argument("--val-fraction", type=float, default=0.1)
    g.add_argument("--test-fraction", type=float, default=0.1)
    g.add_argument(
        "--synthetic-per-class", type=int, default=200, help="images per class of --dataset synthetic"
    )
    g.add_argument("--max-train-samples", type=int, default=None, help="use only this many training images")
    g.add_argument("--image-size", type=int, default=None, help="input size (default: the data config's)")
    g.add_argument(
        "--crop-pct", type=float, default=None, help="centre-crop fraction (default: data config's)"
    )
    g.add_argument(
        "--mean", type=float, nargs=3, default=None, help="per-channel mean (default: data config's)"
    )
    g.add_argument(
        "--std", type=float, nargs=3, default=None, help="per-channel std (default: data config's)"
    )


def _model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default="galaxy_attn_vgg_small",
        help="any timm model name; with --pretrained also a tag with weights, local-dir:FOLDER or "
        "hf-hub:ORG/NAME",
    )
    g.add_argument(
        "--pretrained",
        action="store_true",
        help="fine-tune: start from the weights of --model with a fresh classifier for the dataset's "
        "classes; the data config (input size, crop, mean/std) comes from the weights' pretrained_cfg",
    )
    g.add_argument(
        "--freeze-backbone",
        action="store_true",
        help="with --pretrained: train only the head (classifier + attention estimators); BatchNorm "
        "statistics of the backbone stay the pretrained ones",
    )
    g.add_argument(
        "--backbone-lr-scale",
        type=float,
        default=1.0,
        help="with --pretrained: learning rate of the pretrained non-head parameters = lr * this",
    )
    g.add_argument("--drop-rate", type=float, default=None, help="dropout before the classifier")
    g.add_argument("--stem-stride", type=int, default=None, choices=(1, 2, 4), help="galaxy_attn_vgg only")
    g.add_argument("--compatibility", default=None, choices=("pc", "dp"), help="galaxy_attn_vgg only")
    g.add_argument("--normalize", default=None, choices=("softmax", "sigmoid"), help="galaxy_attn_vgg only")
    g.add_argument("--attn-position", default=None, choices=("before", "after"), help="galaxy_attn_vgg only")
    g.add_argument(
        "--no-attention",
        dest="attention",
        action="store_const",
        const=False,
        default=None,
        help="galaxy_attn_vgg ablation: classifier on the global feature g, no attention",
    )


def _schedule_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--recipe", choices=sorted(RECIPES), default="default")
    g.add_argument("--epochs", type=int, default=None)
    g.add_argument("--batch-size", type=int, default=None, help="per process")
    g.add_argument("--optimizer", choices=("sgd", "adamw"), default=None)
    g.add_argument("--lr", type=float, default=None)
    g.add_argument("--momentum", type=float, default=None)
    g.add_argument("--weight-decay", type=float, default=None)
    g.add_argument("--sched", choices=("step", "cosine", "constant"), default=None)
    g.add_argument("--decay-epochs", type=int, default=None, help="step schedule: epochs between decays")
    g.add_argument("--decay-rate", type=float, default=None, help="step schedule: lr factor per decay")
    g.add_argument("--warmup-epochs", type=float, default=None)
    g.add_argument("--label-smoothing", type=float, default=None)
    g.add_argument(
        "--balance",
        choices=("none", "loss", "sampler"),
        default=None,
        help="class balancing: weights in the loss or a weighted sampler",
    )
    g.add_argument(
        "--balance-power",
        type=float,
        default=None,
        help="class weight = count^-power (1: inverse frequency, 0.5: inverse square root)",
    )


def _optimisation_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("optimisation (defaults come from --recipe)")
    _schedule_arguments(g)
    g.add_argument("--rotate", choices=("any", "90", "none"), default=None, help="rotation augmentation")
    g.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mirror flips (with the dataset's mirror label swap)",
    )
    g.add_argument("--max-shift", type=float, default=None, help="random shift, fraction of the image side")
    g.add_argument("--brightness", type=float, default=None, help="brightness jitter (factor in 1 +- v)")
    g.add_argument("--contrast", type=float, default=None, help="contrast jitter (factor in 1 +- v)")
    g.add_argument(
        "--mixed-precision",
        choices=("auto", "no", "bf16", "fp16"),
        default=None,
        help="auto: bf16 where the device runs it natively, else no (fp16 on GPUs without bf16)",
    )
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--clip-grad", type=float, default=None, help="gradient norm clip (0: off)")
    g.add_argument("--seed", type=int, default=0, help="seed of initialisation, data order and augmentation")
    g.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    g.add_argument(
        "--compile", action="store_true", help="train through torch.compile(model) (evaluation stays eager)"
    )


def _run_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--output-dir", required=True)
    g.add_argument(
        "--resume", action="store_true", help="continue the run in --output-dir from its last checkpoint"
    )
    g.add_argument(
        "--checkpoint-every-steps",
        type=int,
        default=0,
        help="also checkpoint every N optimizer steps (0: only at the end of each epoch)",
    )
    g.add_argument("--keep-checkpoints", type=int, default=1, help="how many step checkpoints to keep")
    g.add_argument("--num-heatmaps", type=int, default=8, help="validation galaxies in the attention grids")
    g.add_argument("--eval-batch-size", type=int, default=256)
    g.add_argument("--log-every", type=int, default=10, help="TensorBoard step logging interval")
    g.add_argument(
        "--stop-after-steps",
        type=int,
        default=None,
        help="debug: stop (as if killed) after this many optimizer steps of the whole run",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line; its dests are exactly the option fields of :class:`TrainConfig`."""
    p = argparse.ArgumentParser(
        description="Train galaxy_attn_vgg (or any timm model) on a galaxy dataset with accelerate.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for add in (_data_arguments, _model_arguments, _optimisation_arguments, _run_arguments):
        add(p)
    dests = {a.dest for a in p._actions if a.dest != "help"}
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - set(RECORDED)
    if dests != fields:  # a new option needs its TrainConfig field (and the other way round)
        raise AssertionError(f"parser and TrainConfig differ: {sorted(dests ^ fields)}")
    return p


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Return the parsed arguments and the subset typed on the command line (``dest -> value``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dataset is None and not args.resume:
        parser.error("the following arguments are required: --dataset (only --resume reads it from the run)")
    quiet = build_parser()
    for action in quiet._actions:  # re-parse with no defaults: what is left was typed
        if action.dest != "help":
            action.default = argparse.SUPPRESS
            action.required = False
    return args, vars(quiet.parse_args(argv))
