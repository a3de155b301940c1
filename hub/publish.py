"""Build (and upload) the Hugging Face Hub repository of a trained GalaxyAttnVGG run.

    python hub/publish.py RUN_DIR --repo-id ORG/NAME --dry-run --out DIR
    python hub/publish.py RUN_DIR --repo-id ORG/NAME [--private] [--force]

RUN_DIR is the ``--output-dir`` of ``training/train.py``: ``metrics.json``, ``model/`` (the one timm +
transformers folder), ``confusion_matrix.png`` and ``attention/epoch_NNN.png``. The repository folder gets
the weights (safetensors), ``config.json``, ``preprocessor_config.json``, ``metrics.json``, the figures and
``README.md``: the model card, rendered from that folder's ``metrics.json`` and ``config.json`` only, so
``render_model_card(folder)`` regenerates it exactly (the shipped folders in ``timm_galaxy_attn/pretrained/``
are checked that way; ``python hub/model_card.py FOLDER`` rewrites a folder's card).

The parts: hub_common.py (errors, dataset descriptions), repo_folder.py (the folder), model_card.py with
model_card_template.md (the card), citations.py (its BibTeX, from CITATION.cff), upload.py (the upload).

Without ``--dry-run`` the folder is uploaded with ``huggingface_hub`` (token from ``HF_TOKEN`` or
``hf auth login``). A repository whose card names another dataset is not overwritten unless ``--force``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from hub_common import CARD_NAME, PublishError
from model_card import render_model_card
from repo_folder import build_repo_folder
from upload import upload_folder

from timm_galaxy_attn._io import atomic_write

__all__ = ["PublishError", "build_repo_folder", "render_model_card", "upload_folder", "main"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run_dir", type=Path, help="--output-dir of a finished training/train.py run")
    p.add_argument("--repo-id", required=True, help="Hub repository, ORG/NAME")
    p.add_argument("--dry-run", action="store_true", help="build the folder only, upload nothing")
    p.add_argument(
        "--out", type=Path, default=None, help="where to build the folder (default: RUN_DIR/hub_repo)"
    )
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace --out, and overwrite a repo whose card names another dataset",
    )
    p.add_argument("--model-card", type=Path, default=None, help="also copy the card to this file")
    p.add_argument(
        "--figure",
        action="append",
        nargs="+",
        default=[],
        metavar=("PNG", "CAPTION"),
        help="extra PNG for the card and, optionally, its caption (repeatable)",
    )
    p.add_argument(
        "--results-table", type=Path, default=None, help="markdown table (e.g. from benchmarks/) for the card"
    )
    return p.parse_args(argv)


def _figure_arg(values: list[str]) -> tuple[str, str]:
    """``--figure PNG [CAPTION]`` as a (path, caption) pair."""
    if len(values) > 2:
        raise PublishError(
            f"--figure {' '.join(values)}: give a PNG and at most one caption (quote a caption with spaces)."
        )
    return values[0], values[1] if len(values) == 2 else ""


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or args.run_dir / "hub_repo"
    try:
        folder = build_repo_folder(
            args.run_dir,
            args.repo_id,
            out,
            overwrite=args.force,
            figures_extra=[_figure_arg(f) for f in args.figure],
            results_table=args.results_table,
        )
        if args.model_card is not None:
            atomic_write(args.model_card, lambda tmp: shutil.copyfile(folder / CARD_NAME, tmp))
        print(f"Built {folder}: " + ", ".join(sorted(p.name for p in folder.iterdir())))
        if args.dry_run:
            print(f"Dry run: nothing uploaded. Read the card: {folder / CARD_NAME}")
            return 0
        url = upload_folder(folder, args.repo_id, private=args.private, force=args.force)
        print(f"Uploaded to https://huggingface.co/{args.repo_id} ({url})")
        return 0
    except PublishError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
