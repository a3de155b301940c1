"""The command line of ``training/train.py``, generated from the fields of :class:`.config.TrainConfig`.

One option per field: ``--field-name`` (or the field's ``flag``), its type from the annotation, help, choices
and group from the field's metadata. The parser holds no defaults (every one is ``argparse.SUPPRESS``), so
parsing returns exactly the options typed and the defaults stay in TrainConfig and the recipes; ``--help``
shows them.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any

from .config import GROUPS, RECORDED, TrainConfig
from .recipes import RECIPES

__all__ = ["build_parser", "parse_args"]

_GROUP_TITLES = {"optimisation": "optimisation (defaults come from --recipe)"}


def _base_type(hint: Any) -> Any:
    """``int`` of ``int | None``; ``list[float]`` stays as it is."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _default_note(field: dataclasses.Field) -> str:
    """The default as --help states it: each recipe's value for a recipe option, else the field's."""
    if field.metadata.get("recipe"):
        return " (--recipe " + ", ".join(f"{name}: {r[field.name]}" for name, r in RECIPES.items()) + ")"
    if field.default in (None, False) or field.metadata.get("required"):
        return ""
    return f" (default: {field.default})"


def _add_option(group: argparse._ArgumentGroup, field: dataclasses.Field, hint: Any) -> None:
    """``group.add_argument`` for one field (no default: only what is typed reaches the namespace)."""
    meta = {k: v for k, v in field.metadata.items() if k not in ("help", "group", "recipe", "flag")}
    flag = field.metadata.get("flag", "--" + field.name.replace("_", "-"))
    kwargs: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS, **meta}
    kwargs["help"] = field.metadata["help"] + _default_note(field)
    kind = _base_type(hint)
    if kind is bool:
        if "const" in meta:
            kwargs["action"] = "store_const"  # a flag that sets the field to its const (--no-attention)
        elif field.metadata.get("recipe"):
            kwargs["action"] = argparse.BooleanOptionalAction  # --flip / --no-flip over the recipe's value
        else:
            kwargs["action"] = "store_true"
    elif typing.get_origin(kind) is list:
        kwargs["type"] = typing.get_args(kind)[0]
    else:
        kwargs["type"] = kind
    group.add_argument(flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The command line; its dests are exactly the option fields of :class:`.config.TrainConfig`."""
    p = argparse.ArgumentParser(
        description="Train galaxy_attn_vgg (or any timm model) on a galaxy dataset with accelerate."
    )
    groups = {name: p.add_argument_group(_GROUP_TITLES.get(name, name)) for name in GROUPS}
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name not in RECORDED:
            _add_option(groups[field.metadata["group"]], field, hints[field.name])
    return p


def parse_args(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The options typed on the command line, ``field -> value`` (exits with code 2 on a bad one).

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    typed = vars(parser.parse_args(argv))
    if "dataset" not in typed and not typed.get("resume"):
        parser.error("the following arguments are required: --dataset (only --resume reads it from the run)")
    return typed
