"""The ``galaxy-attn`` command line.

``galaxy-attn predict INPUT... --model NAME_OR_DIR --out catalog.parquet``:
A thin layer over :mod:`timm_galaxy_attn.catalog`. Several processes: ``accelerate launch -m
timm_galaxy_attn predict ...`` (each process takes a share of the inputs; the main one merges).
Exit status: 0 all rows predicted, 1 some inputs failed (their rows carry an ``error``), 2 usage error
(missing input, unusable model, existing output of another run).

``galaxy-attn render CATALOGUE --rows 0,5,10-20 --out DIR``: heatmap PNGs of chosen rows from the maps
stored by ``predict --maps`` (:mod:`timm_galaxy_attn.catalog.render`). Exit status: 0 written, 2 error.

``galaxy-attn export MODEL --format onnx|torchscript|exported-program --out FILE``: a thin layer over
:mod:`timm_galaxy_attn.export`. Exit status: 0 written and checked, 2 error (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .pretrained import DEFAULT_TAG

__all__ = ["build_parser", "main"]


def _planes(text: str) -> tuple[int, int, int]:
    try:
        planes = tuple(int(p) for p in text.split(","))
    except ValueError:
        planes = ()
    if len(planes) != 3 or sorted(planes) != [0, 1, 2]:
        raise argparse.ArgumentTypeError(f"{text!r}: give the cube planes for red,green,blue, e.g. 2,1,0")
    return planes  # type: ignore[return-value]


def _swaps(text: str) -> dict[int, int]:
    swaps: dict[int, int] = {}
    try:
        for pair in filter(None, text.split(",")):
            a, b = (int(v) for v in pair.split(":"))
            swaps[a], swaps[b] = b, a
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give class-id pairs that swap under a mirror, e.g. 1:2"
        ) from None
    return swaps


def _bands(text: str) -> str:
    bands = text.lower()
    if len(bands) != 3 or len(set(bands)) != 3 or any(b not in "ugrizy" for b in bands):
        raise argparse.ArgumentTypeError(f"{text!r}: give three distinct bands of ugrizy, e.g. grz")
    return bands


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``galaxy-attn``."""
    parser = argparse.ArgumentParser(
        prog="galaxy-attn", description="Galaxy morphology with an attention CNN."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "predict",
        help="classify galaxy cutouts into a catalogue (parquet/CSV)",
        description="Classify images, folders, astroNN HDF5 and FITS cutouts: one catalogue row per galaxy.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, .h5 files, FITS files")
    p.add_argument(
        "--model",
        default=DEFAULT_TAG,
        help=f"timm name with tag (default {DEFAULT_TAG}: the best shipped weights; "
        "timm.list_pretrained('galaxy_attn*') lists the others), a model folder, or hf-hub:ORG/NAME",
    )
    p.add_argument("--out", required=True, help="catalogue file, .parquet or .csv (CSV gets a .json sidecar)")
    _add_map_options(p)
    p.add_argument("--tta", choices=("none", "d4"), default="none", help="d4: mean over 8 rotations/flips")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-size", type=int, help="model input size (default: the model's pretrained_cfg)")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="auto (default): bf16 autocast where the device runs bf16 natively, else fp32 (fp16 on GPUs)",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels_last memory format (default: where it helps)",
    )
    p.add_argument(
        "--num-workers",
        type=int,
        default=0,
        help="decoding processes (0: on the CPU each inference thread decodes its own batches; on a GPU, "
        "one decoding thread)",
    )
    p.add_argument(
        "--device", help="cpu, cuda, cuda:1 ... (default: cuda when available; accelerate's under launch)"
    )
    p.add_argument(
        "--allow-random-weights", action="store_true", help="run with random weights if none are found"
    )
    p.add_argument(
        "--mirror-swap", type=_swaps, help="class ids that swap under a mirror for --tta d4, e.g. 1:2"
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (inductor; tens of seconds first; not with --maps/--heatmaps)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an --out made by a different run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_fits_options(p)
    _add_render_parser(sub)
    _add_export_parser(sub)
    return parser


def _add_fits_options(p: argparse.ArgumentParser) -> None:
    """How predict turns FITS cubes and band files into RGB."""
    fits = p.add_argument_group("FITS")
    fits.add_argument(
        "--fits-planes", type=_planes, default=(2, 1, 0), help="cube planes for R,G,B (default 2,1,0)"
    )
    fits.add_argument("--fits-bands", type=_bands, help="three bands to use when a group has more, e.g. grz")
    fits.add_argument(
        "--lupton-stretch", type=float, default=0.5, help="make_lupton_rgb stretch (default 0.5)"
    )
    fits.add_argument("--lupton-q", type=float, default=8.0, help="make_lupton_rgb Q (default 8)")
    fits.add_argument("--lupton-minimum", type=float, default=0.0, help="make_lupton_rgb minimum (default 0)")


def _add_map_options(p: argparse.ArgumentParser) -> None:
    """predict's attention-map outputs (PNGs, stored arrays) and JPEG decoding."""
    p.add_argument("--heatmaps", metavar="DIR", help="write one attention heatmap PNG per galaxy into DIR")
    p.add_argument(
        "--maps",
        action="store_true",
        help="store the 3 attention maps per galaxy (uint8) in OUT.maps.h5 (PNGs: galaxy-attn render)",
    )
    p.add_argument(
        "--jpeg-draft",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="decode JPEGs at 1/2, 1/4, 1/8 scale where the crop keeps its pixels: faster on large JPEGs, "
        "pixels no longer timm's exactly (default off)",
    )


def _add_render_parser(sub) -> None:
    p = sub.add_parser(
        "render",
        help="heatmap PNGs of chosen catalogue rows from the maps stored by predict --maps",
        description="Render attention heatmap PNGs for catalogue rows from CATALOGUE.maps.h5.",
    )
    p.add_argument("catalogue", metavar="CATALOGUE", help="a catalogue written by galaxy-attn predict --maps")
    p.add_argument("--rows", required=True, help="catalogue rows (the index column): 0,5,10-20 or all")
    p.add_argument("--out", required=True, help="folder for the PNGs")
    p.add_argument("--maps", help="the maps sidecar (default: CATALOGUE.maps.h5)")


def _render(args: argparse.Namespace) -> int:
    from .catalog.maps import MapsError
    from .catalog.render import parse_rows, render

    try:
        written = render(args.catalogue, parse_rows(args.rows), args.out, maps=args.maps)
    except (MapsError, FileNotFoundError, ValueError) as exc:
        print(f"galaxy-attn render: error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(written)} heatmaps in {args.out}", file=sys.stderr)
    return 0


def _add_export_parser(sub) -> None:
    from .export import FORMATS

    p = sub.add_parser(
        "export",
        help="export a model to ONNX, TorchScript or a torch.export program",
        description="Export a model (fp32, dynamic batch) and check it against the eager model.",
    )
    p.add_argument("model", metavar="MODEL", help="timm name with tag, a model folder, or hf-hub:ORG/NAME")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, help="output file (.onnx, .pt, .pt2)")
    p.add_argument(
        "--check-images", nargs="+", metavar="PATH", help="images or folders for the check (default: random)"
    )
    p.add_argument("--image-size", type=int, help="input size (default: the model's pretrained_cfg)")
    p.add_argument("--atol", type=float, default=1e-3, help="largest allowed |logit - eager| (default 1e-3)")
    p.add_argument(
        "--allow-random-weights", action="store_true", help="export random weights if none are found"
    )


def _export(args: argparse.Namespace) -> int:
    from .catalog import ModelLoadError
    from .export import ExportError, export_model

    try:
        result = export_model(
            args.model,
            args.format,
            args.out,
            images=args.check_images,
            image_size=args.image_size,
            atol=args.atol,
            allow_random_weights=args.allow_random_weights,
        )
    except (ModelLoadError, ExportError, FileNotFoundError, ValueError) as exc:
        print(f"galaxy-attn export: error: {exc}", file=sys.stderr)
        return 2
    print(result.text(), file=sys.stderr)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .catalog import FitsOptions, ModelLoadError, PredictOptions, run_predict

    options = PredictOptions(
        tta=args.tta,
        image_size=args.image_size,
        precision=args.precision,
        channels_last=args.channels_last,
        heatmaps=args.heatmaps,
        maps=args.maps,
        jpeg_draft=args.jpeg_draft,
        compile=args.compile,
        mirror_label_swaps=args.mirror_swap,
        fits=FitsOptions(
            planes=args.fits_planes,
            stretch=args.lupton_stretch,
            q=args.lupton_q,
            minimum=args.lupton_minimum,
            bands=args.fits_bands,
        ),
    )
    try:
        summary = run_predict(
            args.inputs,
            args.model,
            args.out,
            options=options,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            device=args.device,
            allow_random_weights=args.allow_random_weights,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (ModelLoadError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"galaxy-attn predict: error: {exc}", file=sys.stderr)
        return 2
    if not summary.is_main_process:
        return 0
    print(summary.text(), file=sys.stderr)
    return 1 if summary.n_errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``galaxy-attn`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "predict":
        return _predict(args)
    if args.command == "export":
        return _export(args)
    if args.command == "render":
        return _render(args)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
