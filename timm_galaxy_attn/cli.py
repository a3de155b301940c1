"""The ``galaxy-attn`` command line.

``galaxy-attn predict INPUT... --model NAME_OR_DIR --out catalog.parquet``:
A thin layer over :mod:`timm_galaxy_attn.catalog` that builds its
:class:`~timm_galaxy_attn.catalog.PredictOptions` (whose fields give the defaults). Several processes:
``accelerate launch -m timm_galaxy_attn predict ...`` (each process takes a block of the inputs; the main one
merges); independent jobs: ``--shard K/N`` (the K-th of N blocks, one catalogue each).
Exit status: 0 all rows predicted, 1 some inputs failed (their rows carry an ``error``), 2 usage error
(missing input, unusable model, existing output of another run).

``galaxy-attn embed INPUT... --out emb.parquet``: predict with the column ``embedding`` (the classifier's
input, :mod:`timm_galaxy_attn.catalog.embed`); same exit status. ``galaxy-attn similar EMB --query IMAGE -k
10`` (or ``--query-row N``): the nearest rows by cosine distance (:mod:`timm_galaxy_attn.catalog.similar`).
Exit status: 0 found, 2 error.

``galaxy-attn render CATALOG --rows 0,5,10-20 --out DIR``: heatmap PNGs of chosen rows from the maps
stored by ``predict --maps`` (:mod:`timm_galaxy_attn.catalog.render`). Exit status: 0 written, 2 error.

``galaxy-attn export MODEL --format onnx|torchscript|exported-program --out FILE``: a thin layer over
:mod:`timm_galaxy_attn.export`. Exit status: 0 written and checked, 2 error (nothing written).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from .catalog.inputs import BANDS_BY_WAVELENGTH
from .catalog.options import FitsOptions, PredictOptions, parse_shard
from .device import PRECISIONS
from .pretrained import DEFAULT_TAG
from .tta import TTA_MODES

__all__ = ["build_parser", "main"]

_DEFAULTS, _FITS = PredictOptions(), FitsOptions()


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
    if len(bands) != 3 or len(set(bands)) != 3 or any(b not in BANDS_BY_WAVELENGTH for b in bands):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give three distinct bands of {BANDS_BY_WAVELENGTH}, e.g. grz"
        )
    return bands


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    _add_run_options(p, embed=False)
    p = sub.add_parser(
        "embed",
        help="a catalogue with each galaxy's embedding (the classifier's input), for galaxy-attn similar",
        description="predict, plus the column 'embedding': the model's pooled attended features "
        "(forward_head(forward_features(x), pre_logits=True)), float32, one row per galaxy; resumable.",
    )
    _add_run_options(p, embed=True)
    _add_similar_parser(sub)
    _add_render_parser(sub)
    _add_export_parser(sub)
    return parser


def _add_run_options(p: argparse.ArgumentParser, embed: bool) -> None:
    """The options of a catalogue run (predict, embed): each ``dest`` is a field of PredictOptions."""
    p.set_defaults(embeddings=embed)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, .h5 files, FITS files")
    p.add_argument(
        "--model",
        default=DEFAULT_TAG,
        help=f"timm name with tag (default {DEFAULT_TAG}: the best shipped weights; "
        "timm.list_pretrained('galaxy_attn*') lists the others), a model folder, or hf-hub:ORG/NAME",
    )
    if embed:
        p.add_argument("--out", required=True, help="catalogue file, .parquet (the embeddings need parquet)")
        tta_help = "d4: probabilities: the mean over 8 rotations/flips; embedding: the identity view's"
    else:
        p.add_argument("--out", required=True, help="catalogue file, .parquet or .csv (CSV: a .json sidecar)")
        tta_help = "d4: mean over 8 rotations/flips"
    _add_map_options(p)
    p.add_argument("--tta", choices=TTA_MODES, default=_DEFAULTS.tta, help=tta_help)
    p.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size, help="default %(default)s")
    p.add_argument("--image-size", type=int, help="model input size (default: the model's pretrained_cfg)")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=_DEFAULTS.precision,
        help="auto (default): bf16 autocast where the device runs bf16 natively, else fp32 (fp16 on GPUs)",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=_DEFAULTS.channels_last,
        help="channels_last memory format (default: where it helps)",
    )
    p.add_argument(
        "--num-workers",
        type=int,
        default=_DEFAULTS.num_workers,
        help="decoding processes (0: on the CPU each inference thread decodes its own batches; on a GPU, "
        "one decoding thread)",
    )
    p.add_argument(
        "--device", help="cpu, cuda, cuda:1 ... (default: cuda when available; accelerate's under launch)"
    )
    p.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="only the K-th (from 0) of N contiguous, near-equal blocks of the sorted input listing, for N "
        "independent jobs (e.g. a SLURM array: --shard $SLURM_ARRAY_TASK_ID/N), one --out each; together "
        "they hold every input once, with the whole run's index",
    )
    p.add_argument(
        "--allow-random-weights", action="store_true", help="run with random weights if none are found"
    )
    p.add_argument(
        "--mirror-swap",
        dest="mirror_label_swaps",
        metavar="A:B,...",
        type=_swaps,
        help="class ids that swap under a mirror for --tta d4, e.g. 1:2",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (inductor; tens of seconds first; not with --maps/--heatmaps)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an --out made by a different run")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    _add_fits_options(p)


def _add_fits_options(p: argparse.ArgumentParser) -> None:
    """How predict turns FITS into RGB: each ``dest`` is ``fits_`` + a FitsOptions field."""
    fits = p.add_argument_group("FITS")
    fits.add_argument(
        "--fits-planes",
        type=_planes,
        default=_FITS.planes,
        metavar="R,G,B",
        help=f"cube planes for R,G,B (default {','.join(map(str, _FITS.planes))})",
    )
    fits.add_argument(
        "--fits-bands",
        type=_bands,
        metavar="BANDS",
        help="three bands to use when a group has more, e.g. grz",
    )
    for flag, field in (
        ("--lupton-stretch", "stretch"),
        ("--lupton-q", "q"),
        ("--lupton-minimum", "minimum"),
    ):
        fits.add_argument(
            flag,
            dest=f"fits_{field}",
            metavar="X",
            type=float,
            default=getattr(_FITS, field),
            help=f"make_lupton_rgb {'Q' if field == 'q' else field} (default %(default)s)",
        )


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
        default=_DEFAULTS.jpeg_draft,
        help="decode JPEGs at 1/2, 1/4, 1/8 scale where the crop keeps its pixels: faster on large JPEGs, "
        "pixels no longer timm's exactly (default off)",
    )


def _add_similar_parser(sub) -> None:
    p = sub.add_parser(
        "similar",
        help="the galaxies of an embedding catalogue nearest to a query (cosine distance)",
        description="Nearest neighbours in a catalogue written by galaxy-attn embed: the query is embedded "
        "by the catalogue's own model and preprocessing (or is one of its rows); exact cosine search "
        "(scikit-learn NearestNeighbors).",
    )
    p.add_argument("catalog", metavar="EMB", help="a .parquet catalogue written by galaxy-attn embed")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--query", metavar="IMAGE", help="an image or FITS cutout (one galaxy)")
    query.add_argument("--query-row", type=int, metavar="N", help="a row of the catalogue (its index)")
    p.add_argument("-k", type=int, default=10, help="how many neighbours (default 10)")
    p.add_argument("--model", help="the model for --query (default: the catalogue's; same weights only)")
    p.add_argument("--device", help="cpu, cuda ... for --query (default: cuda when available)")
    p.add_argument("--out", help="also write the neighbours to a .csv or .parquet file")


def _write_table(df, out: str | None) -> None:
    """``df`` into ``out`` (.csv or .parquet, atomically); ``df`` None: only check the suffix."""
    from ._io import atomic_write

    if out is None:
        return
    if not out.lower().endswith((".csv", ".parquet")):
        raise ValueError(f"--out {out} must end in .csv or .parquet.")
    if df is not None and out.lower().endswith(".csv"):
        atomic_write(out, lambda tmp: df.to_csv(tmp, index=False))
    elif df is not None:
        atomic_write(out, lambda tmp: df.to_parquet(tmp, index=False))


def _similar(args: argparse.Namespace) -> int:
    from .catalog.similar import SimilarError, similar

    try:
        _write_table(None, args.out)  # a bad --out is an error before the search
        df = similar(
            args.catalog,
            query=args.query,
            query_row=args.query_row,
            k=args.k,
            model=args.model,
            device=args.device,
        )
        _write_table(df, args.out)
    except (SimilarError, ValueError, OSError) as exc:
        print(f"galaxy-attn similar: error: {exc}", file=sys.stderr)
        return 2
    shown = df.dropna(axis=1, how="all")  # e.g. row and hdu, for image files
    print(shown.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.4f}"))
    return 0


def _add_render_parser(sub) -> None:
    p = sub.add_parser(
        "render",
        help="heatmap PNGs of chosen catalogue rows from the maps stored by predict --maps",
        description="Render attention heatmap PNGs for catalogue rows from CATALOGUE.maps.h5.",
    )
    p.add_argument("catalog", metavar="CATALOG", help="a catalogue written by galaxy-attn predict --maps")
    p.add_argument("--rows", required=True, help="catalogue rows (the index column): 0,5,10-20 or all")
    p.add_argument("--out", required=True, help="folder for the PNGs")
    p.add_argument("--maps", help="the maps sidecar (default: CATALOG.maps.h5)")


def _render(args: argparse.Namespace) -> int:
    from .catalog.maps import MapsError
    from .catalog.render import parse_rows, render

    try:
        written = render(args.catalog, parse_rows(args.rows), args.out, maps=args.maps)
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


def _options(args: argparse.Namespace) -> PredictOptions:
    """The PredictOptions of parsed ``predict``/``embed`` arguments (a ValueError names a bad value)."""
    fits = FitsOptions(**{f.name: getattr(args, f"fits_{f.name}") for f in dataclasses.fields(FitsOptions)})
    names = {f.name for f in dataclasses.fields(PredictOptions)} - {"fits"}
    return PredictOptions(**{k: v for k, v in vars(args).items() if k in names}, fits=fits)


def _predict(args: argparse.Namespace) -> int:
    from .catalog import ModelLoadError, run_predict

    try:
        summary = run_predict(args.inputs, args.model, args.out, _options(args))
    except (ModelLoadError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"galaxy-attn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    if not summary.is_main_process:
        return 0
    print(summary.text(), file=sys.stderr)
    return 1 if summary.n_errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``galaxy-attn`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command in ("predict", "embed"):
        return _predict(args)
    if args.command == "similar":
        return _similar(args)
    if args.command == "export":
        return _export(args)
    if args.command == "render":
        return _render(args)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
