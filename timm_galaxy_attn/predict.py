"""The catalogue engine: image files, folders, astroNN HDF5 files and FITS cutouts in, one row per galaxy out.

Pipeline: the inputs are listed (cheaply: names, HDF5 lengths, FITS headers) into a sequence of items,
each with a global index; a producer (a thread, or DataLoader worker processes) decodes batches of
consecutive items into model-ready tensors and hands them over through a bounded queue; the model
turns each batch into rows (class probabilities, margin, entropy, optional D4 test-time augmentation and
attention heatmaps). Every batch is committed atomically as a part file in ``<out>.parts/`` (written to
a temporary name, then renamed), so a killed run loses at most the batch in flight and a rerun with the
same ``out`` skips what is already written. At the end the parts are merged, in input order, into
``out`` (parquet or CSV) through a temporary file and a rename.

Decoding (:mod:`.catalog_decode`): the producer hands over uint8 pixels of the model's crop, cut and
resized exactly as timm's eval transform would but resizing only what the crop needs (JPEGs through
libjpeg-turbo; at 1/2-1/8 DCT scale where the crop keeps its pixels with ``jpeg_draft=True``); the
engine normalises each batch at once. With ``maps=True`` each batch's three attention maps are committed
beside its rows and merged into ``<out>.maps.h5`` (:mod:`.catalog_maps`; ``galaxy-attn render`` draws
them, :mod:`.catalog_render`).

Under ``accelerate launch`` each process takes a contiguous share of the input indices, writes its
own parts, and the main process merges after a barrier: the catalogue equals the one-process catalogue
row for row.

Input rules:

* Images: PNG, JPEG, TIFF (any format PIL reads when named explicitly). RGB is used as is; palette images
  are expanded; RGBA / LA images whose alpha channel is fully opaque lose the (empty) alpha channel.
  Grayscale images and images with real transparency are errors: the model was trained on
  three-band colour composites, so a single band or a composite against an unknown background would give
  confident but meaningless probabilities.
* Folders: searched recursively for the suffixes above, ``.h5``/``.hdf5`` and FITS files; sorted by
  their path relative to the folder (deterministic); hidden files are skipped.
* HDF5 (astroNN layout): dataset ``images`` (N, H, W, 3) uint8, optional ``ans``, ``ra``, ``dec``; one
  row per image with its row index; read lazily, one slice per batch.
* FITS: every image HDU is one item. A 3-D HDU must be a cube of 3 bands (3, H, W) whose planes run from
  blue to red (g, r, z as in Legacy Survey cutouts; ``fits_planes`` changes this). Single-band files are
  grouped by name: ``<name>_<band>.fits`` (separator ``_``, ``-`` or ``.``; band one of u g r i z y,
  any case; ``.fit``, ``.fts`` and ``.gz`` also accepted) files with the same ``<name>`` in the same folder
  form one galaxy; the reddest band becomes red, the middle one green, the bluest blue, through
  ``astropy.visualization.make_lupton_rgb`` (``lupton_stretch``, ``lupton_q``, ``lupton_minimum``). A
  group needs exactly three bands (or ``fits_bands`` picks three). FITS rows run south to north, so the
  composite is flipped vertically to put north up, as in survey JPEG cutouts (this matters for the
  handedness of spirals). Non-finite pixels are errors.

Broken inputs (unreadable or truncated images, wrong shapes, NaNs, grayscale, anything that fails to
decode, such as PIL's decompression-bomb guard) become rows with an ``error`` message; inputs far smaller
than the model's crop is meant for get a prediction and a ``warning`` (:mod:`._input_checks`); a missing
input path or an unusable model stops the run before it starts. ``precision="auto"`` (the default) uses
bf16 only where the device runs it natively (:mod:`.device`); the catalogue records what was used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import queue
import re
import shutil
import signal
import tempfile
import threading
import time
import warnings
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from ._input_checks import decode_failure_message, small_input_warning
from ._io import TEMP_INFIX, atomic_write, sha256_file, sha256_json
from .attention import capture_attention
from .catalog_decode import EvalGeometry, InputError, ModelPixels, open_image
from .catalog_maps import maps_path, merge_maps, write_maps_part
from .catalog_maps import part_path as maps_part_path
from .device import PRECISIONS, announce, choose_precision
from .labels import MIRROR_LABEL_SWAPS, dataset_of_label_names
from .tta import d4_probs, mirror_permutation

__all__ = [
    "LoadedModel",
    "ModelLoadError",
    "PredictOptions",
    "PredictSummary",
    "collect_inputs",
    "load_model",
    "predict",
    "run_predict",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
BANDS_BY_WAVELENGTH = "ugrizy"
_BAND_FILE = re.compile(r"^(?P<name>.+)[_.-](?P<band>[ugrizy])\.(?:fits|fit|fts)(?:\.gz)?$", re.IGNORECASE)
_META_KEY = b"galaxy_attn"
_FORMAT_VERSION = 2  # 2: the warning column
DEBUG_KILL_ENV = "GALAXY_ATTN_DEBUG_KILL_AFTER_BATCHES"
PNG_LEVEL = 1  # zlib level of heatmap PNGs: 4x faster to write than PIL's 6, files ~20% larger


class ModelLoadError(RuntimeError):
    """The model or its weights cannot be loaded; the message says why and what to do."""


# ----------------------------------------------------------------------------------------------------
# Model loading


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


def _label_names(pretrained_cfg: dict[str, Any], num_classes: int) -> tuple[str, ...]:
    """The cfg's ``label_names`` when they name every class, else ``class_0``, ``class_1``..."""
    names = tuple(pretrained_cfg.get("label_names") or ())
    return names if len(names) == num_classes else tuple(f"class_{i}" for i in range(num_classes))


def _dataset_of(label_names: Sequence[str], pretrained_cfg: dict[str, Any]) -> str | None:
    dataset = dataset_of_label_names(label_names)
    if dataset is not None:
        return dataset
    tag = pretrained_cfg.get("tag")
    return tag if tag in MIRROR_LABEL_SWAPS else None


def load_model(
    spec: str | os.PathLike | nn.Module,
    *,
    allow_random_weights: bool = False,
) -> LoadedModel:
    """Load the model named by ``spec`` for inference, with safetensors weights only.

    ``spec`` is a timm name with tag (``galaxy_attn_vgg_tiny_s4.gz1_sdss``: the weights shipped in the
    package; a config with only a Hub id reads the Hugging Face cache when offline), a local folder
    (``DIR`` or ``local-dir:DIR``, with config.json in timm format and model.safetensors), a Hub
    repository (``hf-hub:ORG/NAME``), or an ``nn.Module``.
    A name whose weights cannot be had is an error unless ``allow_random_weights`` (then the model is
    randomly initialised and ``weights_sha256`` is None).
    """
    import timm

    if isinstance(spec, nn.Module):
        cfg = dict(getattr(spec, "pretrained_cfg", None) or {})
        labels = _label_names(cfg, spec.num_classes)
        return LoadedModel(
            spec.eval(), type(spec).__name__, None, None, labels, _dataset_of(labels, cfg), cfg
        )
    spec = str(spec)
    weights: Path | None = None
    if spec.startswith("local-dir:") or Path(spec).is_dir():
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
        model = timm.create_model(f"local-dir:{folder}", pretrained=False)
    elif spec.startswith("hf-hub:"):
        repo_id = spec.removeprefix("hf-hub:")
        try:
            model = timm.create_model(spec, pretrained=False)
        except Exception as exc:
            raise ModelLoadError(
                f"Cannot read config.json of the Hub repository {repo_id!r} ({type(exc).__name__}: {exc}). "
                "Offline, the repository must be in the Hugging Face cache; or pass a local model folder."
            ) from exc
        weights = _hub_safetensors(repo_id, spec)
    else:
        arch = spec.split(".", 1)[0]
        if not timm.is_model(arch):
            known = ", ".join(timm.list_models("galaxy_attn*"))
            shipped = ", ".join(timm.list_pretrained("galaxy_attn*"))
            raise ModelLoadError(
                f"Unknown model {spec!r}: not a folder, not hf-hub:ORG/NAME, not a timm model. "
                f"Models of this package: {known} (with weights: {shipped})."
            )
        try:
            model = timm.create_model(spec, pretrained=False)
        except RuntimeError as exc:
            raise ModelLoadError(f"Cannot create {spec!r}: {exc}") from exc
        packaged, hub_id = model.pretrained_cfg.get("file"), model.pretrained_cfg.get("hf_hub_id")
        try:
            if packaged:  # shipped with the package: no download
                weights = Path(packaged)
            elif not hub_id:
                raise ModelLoadError(
                    f"{spec!r} has no pretrained weights. Pass a tag with weights "
                    f"({', '.join(timm.list_pretrained('galaxy_attn*'))}), a local model folder, or "
                    "--allow-random-weights for a smoke test."
                )
            else:
                weights = _hub_safetensors(hub_id, spec)
        except ModelLoadError:
            if not allow_random_weights:
                raise
            warnings.warn(
                f"{spec}: no weights available; using RANDOM weights (--allow-random-weights). "
                "Predictions are meaningless.",
                stacklevel=2,
            )
            weights = None
    if weights is not None:
        _load_safetensors_into(model, weights, spec)
    cfg = dict(model.pretrained_cfg)
    labels = _label_names(cfg, model.num_classes)
    return LoadedModel(
        model=model.eval(),
        name=spec,
        weights_sha256=sha256_file(weights) if weights is not None else None,
        weights_file=str(weights) if weights is not None else None,
        label_names=labels,
        dataset=_dataset_of(labels, cfg),
        pretrained_cfg=cfg,
    )


# ----------------------------------------------------------------------------------------------------
# Inputs


@dataclasses.dataclass(frozen=True)
class _Unit:
    """A run of consecutive items from one source: one image, an HDF5 file, a FITS file or band group."""

    kind: str  # "image" | "hdf5" | "fits" | "bands" | "invalid"
    source: str
    count: int = 1
    hdus: tuple[int, ...] = ()  # fits: the HDU of each item
    paths: tuple[str, ...] = ()  # bands: the files, blue to red
    error: str | None = None  # invalid: why the source gives one error row


class InputList:
    """The items of a run: ``len()`` items, each addressed by a global index."""

    def __init__(self, units: list[_Unit]) -> None:
        self.units = units
        self.starts = np.cumsum([0] + [u.count for u in units]).tolist()

    def __len__(self) -> int:
        return self.starts[-1]

    def locate(self, index: int) -> tuple[_Unit, int]:
        """Return the unit holding item ``index`` and the item's position in it."""
        u = bisect_right(self.starts, index) - 1
        return self.units[u], index - self.starts[u]

    def digest(self) -> str:
        return sha256_json([dataclasses.astuple(u) for u in self.units])


def _has_suffix(path: Path, suffixes: Sequence[str]) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in suffixes)


def _supported(path: Path) -> bool:
    return _has_suffix(path, IMAGE_SUFFIXES + HDF5_SUFFIXES + FITS_SUFFIXES)


def _expand(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = [
                p
                for p in path.rglob("*")
                if p.is_file()
                and _supported(p)
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            ]
            files.extend(sorted(found, key=lambda p: p.relative_to(path).as_posix()))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(
                f"Input {str(path)!r} does not exist (expected an image, folder, .h5 or FITS file)."
            )
    return files


def _hdf5_unit(path: Path) -> _Unit:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "images" not in f:
                keys = ", ".join(sorted(f.keys())) or "none"
                return _Unit(
                    "invalid",
                    str(path),
                    error=f"HDF5 file has no 'images' dataset (keys: {keys}); "
                    "the astroNN layout is images (N, H, W, 3) uint8 with optional ans, ra, dec",
                )
            images = f["images"]
            if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
                return _Unit(
                    "invalid",
                    str(path),
                    error=f"HDF5 'images' has shape {images.shape} and dtype "
                    f"{images.dtype}; the astroNN layout is (N, H, W, 3) uint8",
                )
            return _Unit("hdf5", str(path), count=int(images.shape[0]))
    except OSError as exc:
        return _Unit("invalid", str(path), error=f"unreadable HDF5 file: {exc}")


def _fits_unit(path: Path) -> _Unit:
    from astropy.io import fits

    try:
        with fits.open(path, memmap=True) as hdul:
            hdus = tuple(i for i, h in enumerate(hdul) if h.is_image and h.header.get("NAXIS", 0) >= 2)
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError on broken files
        return _Unit("invalid", str(path), error=f"unreadable FITS file: {exc}")
    if not hdus:
        return _Unit("invalid", str(path), error="FITS file has no image HDU with 2 or more axes")
    return _Unit("fits", str(path), count=len(hdus), hdus=hdus)


def _band_unit(paths: list[Path], fits_bands: str | None) -> _Unit:
    by_band = {_BAND_FILE.match(p.name)["band"].lower(): p for p in paths}
    bands = sorted(by_band, key=BANDS_BY_WAVELENGTH.index)
    if fits_bands:
        wanted = [b.lower() for b in fits_bands]
        bands = [b for b in sorted(wanted, key=BANDS_BY_WAVELENGTH.index) if b in by_band]
    chosen = [by_band[b] for b in bands]
    source = ";".join(str(by_band[b]) for b in sorted(by_band, key=BANDS_BY_WAVELENGTH.index))
    if len(paths) != len(by_band):
        return _Unit("invalid", source, error="two files of the same band in one FITS band group")
    if len(bands) != 3:
        have = ",".join(sorted(by_band, key=BANDS_BY_WAVELENGTH.index))
        return _Unit(
            "invalid",
            source,
            error=f"FITS band group has bands {have}; it needs exactly 3 "
            "(or choose three with --fits-bands, e.g. grz)",
        )
    return _Unit("bands", source, paths=tuple(str(p) for p in chosen))


def collect_inputs(inputs: Sequence[str | os.PathLike], *, fits_bands: str | None = None) -> InputList:
    """List the items of ``inputs`` (files and folders) in a deterministic order, without decoding pixels."""
    files = _expand(inputs)
    groups: dict[tuple[Path, str], list[Path]] = {}
    for p in files:
        m = _BAND_FILE.match(p.name)
        if m:
            groups.setdefault((p.parent, m["name"]), []).append(p)
    grouped = {p: key for key, members in groups.items() if len(members) > 1 for p in members}
    units: list[_Unit] = []
    emitted: set[tuple[Path, str]] = set()
    for p in files:
        key = grouped.get(p)
        if key is not None:
            if key not in emitted:
                emitted.add(key)
                units.append(_band_unit(groups[key], fits_bands))
        elif _has_suffix(p, HDF5_SUFFIXES):
            units.append(_hdf5_unit(p))
        elif _has_suffix(p, FITS_SUFFIXES):
            units.append(_fits_unit(p))
        else:
            units.append(_Unit("image", str(p)))
    return InputList(units)


# ----------------------------------------------------------------------------------------------------
# Decoding


def _decode_image(path: str, draft: EvalGeometry | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """An image file as RGB and its full (width, height); JPEGs drafted for ``draft`` (catalog_decode)."""
    return open_image(path, draft)


@dataclasses.dataclass(frozen=True)
class FitsOptions:
    """How FITS data become RGB: cube planes (red, green, blue), Lupton stretch/Q/minimum, band choice."""

    planes: tuple[int, int, int] = (2, 1, 0)
    stretch: float = 0.5
    q: float = 8.0
    minimum: float = 0.0
    bands: str | None = None


def _finite(data: np.ndarray, what: str) -> np.ndarray:
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise InputError(
            f"{what} has {bad} non-finite (NaN/inf) pixels; fill them (e.g. with 0 or the sky level) first"
        )
    return data.astype(np.float64, copy=False)


def _lupton(r: np.ndarray, g: np.ndarray, b: np.ndarray, opts: FitsOptions) -> np.ndarray:
    from astropy.visualization import make_lupton_rgb

    rgb = make_lupton_rgb(r, g, b, minimum=opts.minimum, stretch=opts.stretch, Q=opts.q)
    return np.ascontiguousarray(rgb[::-1])  # FITS rows run south to north: put north up


def _decode_fits_hdu(path: str, hdu: int, opts: FitsOptions) -> np.ndarray:
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            data = hdul[hdu].data
    except Exception as exc:
        raise InputError(f"unreadable FITS data: {exc}") from None
    shape = None if data is None else data.shape
    if data is None or data.ndim != 3 or data.shape[0] != 3:
        raise InputError(
            f"FITS HDU {hdu} has shape {shape}; expected a 3-band cube (3, H, W), or single-band 2-D files "
            "named NAME_g.fits, NAME_r.fits, NAME_z.fits (grouped into one galaxy)"
        )
    data = _finite(np.asarray(data), f"FITS HDU {hdu}")
    r, g, b = (data[i] for i in opts.planes)
    return _lupton(r, g, b, opts)


def _decode_bands(paths: Sequence[str], opts: FitsOptions) -> np.ndarray:
    from astropy.io import fits

    planes = []
    for path in paths:  # blue to red
        try:
            with fits.open(path, memmap=False) as hdul:
                hdu = next((h for h in hdul if h.is_image and h.data is not None), None)
                data = None if hdu is None else np.asarray(hdu.data)
        except Exception as exc:
            raise InputError(f"unreadable FITS file {path}: {exc}") from None
        if data is None or data.ndim != 2:
            raise InputError(
                f"{path} has data of shape {None if data is None else data.shape}; a band file must be 2-D"
            )
        planes.append(_finite(data, path))
    if len({p.shape for p in planes}) != 1:
        raise InputError(
            f"FITS bands have different shapes {[p.shape for p in planes]}; they must be aligned"
        )
    blue, green, red = planes
    return _lupton(red, green, blue, opts)


def _display_crop(image: np.ndarray, crop_pct: float) -> np.ndarray:
    """The region of ``image`` the eval transform keeps (centre square of crop_pct of the short side)."""
    h, w = image.shape[:2]
    side = max(1, round(min(h, w) * crop_pct))
    top, left = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(image[top : top + side, left : left + side])


class BatchDecoder(torch.utils.data.Dataset):
    """Decodes batch ``b`` (a range of global indices) into the model's uint8 pixels and per-row facts.

    ``x`` is a (B, S, S, 3) uint8 tensor of the rows without an error (the engine normalises it);
    ``displays`` the full-resolution crops for heatmaps. Picklable (HDF5 handles are opened lazily in
    each process), so it also runs in DataLoader workers.
    """

    def __init__(
        self,
        inputs: InputList,
        ranges: list[tuple[int, int]],
        pixels: ModelPixels,
        fits: FitsOptions,
        display_crop_pct: float | None = None,
        model_crop: tuple[int, float] | None = None,
    ) -> None:
        self.inputs = inputs
        self.ranges = ranges
        self.pixels = pixels
        self.fits = fits
        self.display_crop_pct = display_crop_pct
        self.model_crop = model_crop  # (input px, crop_pct): for the small-input warning
        self._h5: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_h5": {}}

    def __len__(self) -> int:
        return len(self.ranges)

    def _h5file(self, path: str):
        import h5py

        if path not in self._h5:
            self._h5[path] = h5py.File(path, "r")
        return self._h5[path]

    def _hdf5_rows(self, unit: _Unit, lo: int, hi: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        f = self._h5file(unit.source)
        extra = {
            k: np.asarray(f[k][lo:hi]) for k in ("ans", "ra", "dec") if k in f and len(f[k]) == unit.count
        }
        return np.asarray(f["images"][lo:hi]), extra

    def _decode_unit(self, unit: _Unit, local: int, n: int) -> tuple[list[Any], dict[str, np.ndarray]]:
        """Items ``local .. local + n`` of ``unit``: (RGB image, full size) or the InputError of each."""
        if unit.kind == "hdf5":
            try:
                images, extra = self._hdf5_rows(unit, local, local + n)
            except Exception as exc:
                return [InputError(f"unreadable HDF5 rows: {exc}")] * n, {}
            return [(Image.fromarray(im), (im.shape[1], im.shape[0])) for im in images], extra
        decoded: list[Any] = []
        for k in range(n):
            try:
                decoded.append(self._decode_one(unit, local + k))
            except InputError as exc:
                decoded.append(exc)
            except Exception as exc:  # whatever the cause (bombs, codecs...): an error row
                decoded.append(InputError(decode_failure_message(exc)))
        return decoded, {}

    def _prepare(self, row: dict[str, Any], image: Any, out: dict[str, list]) -> None:
        """Model pixels, warning and display crop of one decoded item; failures become the row's error."""
        if not isinstance(image, Exception):
            try:
                img, (width, height) = image
                out["pixels"].append(self.pixels(img, (width, height)))
                if self.model_crop is not None:
                    row["warning"] = small_input_warning(height, width, *self.model_crop)
                if self.display_crop_pct is not None:
                    out["displays"].append(_display_crop(np.asarray(img), self.display_crop_pct))
            except Exception as exc:
                image = InputError(f"preprocessing failed: {exc}")
        if isinstance(image, Exception):
            row["error"] = str(image)

    def __getitem__(self, b: int) -> dict[str, Any]:
        start, end = self.ranges[b]
        rows: list[dict[str, Any]] = []
        out: dict[str, list] = {"pixels": [], "displays": []}
        index = start
        while index < end:
            unit, local = self.inputs.locate(index)
            n = min(end - index, unit.count - local)
            decoded, extra = self._decode_unit(unit, local, n)
            for k, image in enumerate(decoded):
                row = {
                    "index": index + k,
                    "source": unit.source,
                    "row": local + k if unit.kind == "hdf5" else None,
                    "hdu": unit.hdus[local + k] if unit.kind == "fits" else None,
                    "file_label": int(extra["ans"][k]) if "ans" in extra else None,
                    "ra": float(extra["ra"][k]) if "ra" in extra else None,
                    "dec": float(extra["dec"][k]) if "dec" in extra else None,
                    "warning": None,
                    "error": None,
                }
                self._prepare(row, image, out)
                rows.append(row)
            index += n
        x = torch.from_numpy(np.stack(out["pixels"])) if out["pixels"] else None
        return {"range": (start, end), "rows": rows, "x": x, "displays": out["displays"]}

    def _decode_one(self, unit: _Unit, local: int) -> tuple[Image.Image, tuple[int, int]]:
        if unit.kind == "invalid":
            raise InputError(unit.error)
        if unit.kind == "image":
            jpeg = unit.source.lower().endswith((".jpg", ".jpeg"))
            if jpeg and self.pixels.jpeg_draft and self.display_crop_pct is None:
                return _decode_image(unit.source, self.pixels.geometry)
            return _decode_image(unit.source)
        if unit.kind == "fits":
            rgb = _decode_fits_hdu(unit.source, unit.hdus[local], self.fits)
        elif unit.kind == "bands":
            rgb = _decode_bands(unit.paths, self.fits)
        else:
            raise AssertionError(unit.kind)
        return Image.fromarray(rgb), (rgb.shape[1], rgb.shape[0])


def _threaded(decoder: BatchDecoder, prefetch: int, pin: bool = False) -> Iterator[dict[str, Any]]:
    """Yield decoder batches produced by a background thread through a bounded queue (``pin``: in
    page-locked memory, for asynchronous copies to a GPU)."""
    q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for b in range(len(decoder)):
                item = decoder[b]
                if pin and item["x"] is not None:
                    item["x"] = item["x"].pin_memory()
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # hand the failure to the consumer
            q.put(exc)

    thread = threading.Thread(target=produce, name="galaxy-attn-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _batches(
    decoder: BatchDecoder, num_workers: int, prefetch: int, pin: bool = False
) -> Iterator[dict[str, Any]]:
    """Decoded batches in order: from one thread, or from ``num_workers`` processes (one batch each)."""
    if num_workers <= 0:
        yield from _threaded(decoder, prefetch, pin)
        return
    loader = torch.utils.data.DataLoader(
        decoder,
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        prefetch_factor=max(1, prefetch),
        pin_memory=pin,
    )
    yield from loader


# ----------------------------------------------------------------------------------------------------
# Inference


def _slug(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower().replace("'", "")).strip("_") or "class"


def class_columns(label_names: Sequence[str]) -> list[str]:
    """Column suffixes for the classes: lower-case, ``_`` for anything else, unique."""
    seen: Counter = Counter()
    out = []
    for name in label_names:
        s = _slug(name)
        seen[s] += 1
        out.append(s if seen[s] == 1 else f"{s}_{seen[s]}")
    return out


@dataclasses.dataclass
class PredictOptions:
    """Everything that decides the numbers of a catalogue (and so must match when resuming)."""

    tta: str = "none"
    image_size: int | None = None
    precision: str = "auto"  # auto: bf16 where the device runs it natively (device.choose_precision)
    channels_last: bool | None = None  # None: where it helps
    heatmaps: str | None = None
    mirror_label_swaps: dict[int, int] | None = None
    fits: FitsOptions = dataclasses.field(default_factory=FitsOptions)
    maps: bool = False  # the attention maps as arrays, in <out>.maps.h5 (catalog_maps)
    jpeg_draft: bool = False  # JPEGs decoded at 1/2^k scale where the crop keeps its pixels (catalog_decode)


class _Engine:
    """Runs the model on decoded batches and builds the rows (and heatmap files)."""

    def __init__(
        self,
        loaded: LoadedModel,
        opts: PredictOptions,
        device: torch.device,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
    ) -> None:
        self.loaded = loaded
        self.opts = opts
        self.device = device
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.model = loaded.model.to(device).eval()
        if opts.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.columns = class_columns(loaded.label_names)
        self.mirror_perm = mirror_permutation(len(loaded.label_names), opts.mirror_label_swaps, device)

    def _probs(self, x: torch.Tensor) -> torch.Tensor:
        if self.opts.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.opts.precision)
        if dtype is not None:
            with torch.autocast(self.device.type, dtype=dtype):
                logits = self.model(x)
        else:
            logits = self.model(x)
        return logits.float().softmax(dim=1)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, S, 3) uint8 pixels -> normalised float (B, 3, S, S) on the device: the ops of timm's
        ToTensor + Normalize, in their order (the same floats); NHWC in memory for channels_last."""
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
        x = x.sub_(self.mean).div_(self.std)
        return x if self.opts.channels_last else x.contiguous()

    @torch.inference_mode()
    def run(self, x: torch.Tensor, want_maps: bool) -> dict[str, Any]:
        """Probabilities (and, with ``want_maps``, attention maps) of a (B, S, S, 3) uint8 batch."""
        x = self.normalise(x)
        maps: list[torch.Tensor] = []
        with capture_attention(self.model) if want_maps else contextlib.nullcontext([]) as captured:
            if self.opts.tta == "d4":

                def probs_of(view: torch.Tensor) -> torch.Tensor:
                    p = self._probs(view)
                    if want_maps and not maps:  # the identity view's maps (the first forward)
                        maps.extend(m.cpu() for m in captured)
                    return p

                stack = d4_probs(probs_of, x, self.mirror_perm)  # (8, B, C)
                mean, std = stack.mean(0), stack.std(0, correction=0)
                agree = (stack.argmax(-1) == mean.argmax(-1)).float().mean(0)
                out = {"probs": mean, "std": std, "agreement": agree}
            else:
                out = {"probs": self._probs(x)}
                if want_maps:
                    maps = [m.cpu() for m in captured]
        out = {k: v.cpu() for k, v in out.items()}
        out["maps"] = maps
        return out


def _schema(columns: list[str], tta: bool, heatmaps: bool):
    import pyarrow as pa

    fields = [
        ("index", pa.int64()),
        ("source", pa.string()),
        ("row", pa.int64()),
        ("hdu", pa.int64()),
        ("file_label", pa.int64()),
        ("ra", pa.float64()),
        ("dec", pa.float64()),
        ("pred_id", pa.int64()),
        ("pred_label", pa.string()),
        *[(f"prob_{c}", pa.float32()) for c in columns],
        ("margin", pa.float32()),
        ("entropy", pa.float32()),
    ]
    if tta:
        fields += [(f"std_{c}", pa.float32()) for c in columns] + [("tta_agreement", pa.float32())]
    if heatmaps:
        fields.append(("heatmap", pa.string()))
    fields += [("warning", pa.string()), ("error", pa.string())]
    return pa.schema(fields)


def _heatmap_name(row: dict[str, Any]) -> str:
    stem = Path(row["source"].split(";")[0]).name.split(".")[0]
    extra = (
        f"_row{row['row']}"
        if row["row"] is not None
        else f"_hdu{row['hdu']}"
        if row["hdu"] is not None
        else ""
    )
    return f"{row['index']:08d}_{_slug(stem)}{extra}.png"


def _batch_table(batch: dict[str, Any], result: dict[str, Any] | None, engine: _Engine, schema):
    import pyarrow as pa

    rows = batch["rows"]
    names = engine.loaded.label_names
    ok = [i for i, r in enumerate(rows) if r["error"] is None]
    n, c = len(rows), len(names)
    probs = np.full((n, c), np.nan, dtype=np.float32)
    if result is not None:
        probs[ok] = result["probs"].numpy()
    valid = np.zeros(n, dtype=bool)
    valid[ok] = True
    order = np.sort(np.nan_to_num(probs, nan=0.0), axis=1)
    pred = np.argmax(np.nan_to_num(probs, nan=-1.0), axis=1)
    margin = order[:, -1] - (order[:, -2] if c > 1 else 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.sum(np.where(probs > 0, probs * np.log(probs), 0.0), axis=1)
    cols: dict[str, Any] = {
        k: [r[k] for r in rows] for k in ("index", "source", "row", "hdu", "file_label", "ra", "dec")
    }
    mask = ~valid
    cols["pred_id"] = pa.array(pred.astype(np.int64), mask=mask)
    cols["pred_label"] = pa.array([names[p] if v else None for p, v in zip(pred, valid, strict=True)])
    for j, col in enumerate(engine.columns):
        cols[f"prob_{col}"] = pa.array(probs[:, j], mask=mask)
    cols["margin"] = pa.array(margin.astype(np.float32), mask=mask)
    cols["entropy"] = pa.array(entropy.astype(np.float32), mask=mask)
    if engine.opts.tta == "d4":
        std = np.full((n, c), np.nan, dtype=np.float32)
        agree = np.full(n, np.nan, dtype=np.float32)
        if result is not None:
            std[ok] = result["std"].numpy()
            agree[ok] = result["agreement"].numpy()
        for j, col in enumerate(engine.columns):
            cols[f"std_{col}"] = pa.array(std[:, j], mask=mask)
        cols["tta_agreement"] = pa.array(agree, mask=mask)
    if engine.opts.heatmaps is not None:
        cols["heatmap"] = [r.get("heatmap") for r in rows]
    cols["warning"] = [r["warning"] for r in rows]
    cols["error"] = [r["error"] for r in rows]
    return pa.Table.from_pydict(cols, schema=schema)


def _write_heatmaps(batch: dict[str, Any], result: dict[str, Any], engine: _Engine, folder: Path) -> None:
    from .viz import attention_figure

    ok_rows = [r for r in batch["rows"] if r["error"] is None]
    probs = result["probs"].numpy()
    for k, row in enumerate(ok_rows):
        pred = int(probs[k].argmax())
        maps = [m[k] for m in result["maps"]]
        title = f"{engine.loaded.label_names[pred]} ({probs[k, pred]:.2f})"
        figure = attention_figure(batch["displays"][k], maps, title=title)
        path = folder / _heatmap_name(row)
        atomic_write(path, lambda tmp, fig=figure: fig.save(tmp, format="PNG", compress_level=PNG_LEVEL))
        row["heatmap"] = str(path)


# ----------------------------------------------------------------------------------------------------
# Parts, resume, merge


_PART = re.compile(r"^part-(\d{12})-(\d{12})\.parquet$")


def _parts(parts_dir: Path) -> list[tuple[int, int, Path]]:
    found = []
    if parts_dir.is_dir():
        for p in parts_dir.iterdir():
            m = _PART.match(p.name)
            if m:
                found.append((int(m[1]), int(m[2]), p))
    return sorted(found)


def _pending_ranges(lo: int, hi: int, done: np.ndarray, batch_size: int) -> list[tuple[int, int]]:
    ranges = []
    i = lo
    while i < hi:
        if done[i]:
            i += 1
            continue
        j = i
        while j < hi and not done[j] and j - i < batch_size:
            j += 1
        ranges.append((i, j))
        i = j
    return ranges


def _read_meta(path: Path) -> dict[str, Any] | None:
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            meta = pq.read_schema(path).metadata or {}
            return json.loads(meta[_META_KEY]) if _META_KEY in meta else None
        sidecar = _sidecar(path)
        return json.loads(sidecar.read_text()) if sidecar.is_file() else None
    except Exception:
        return None


def _sidecar(out: Path) -> Path:
    return out.with_name(out.name + ".json")


def _merge(parts: list[tuple[int, int, Path]], n: int, out: Path, schema, meta: dict[str, Any]) -> None:
    """Stream the parts, in index order, into ``out`` (temp file + rename); check every row is there."""
    import pyarrow.parquet as pq

    expected = 0
    for start, end, path in parts:
        if start != expected:
            raise RuntimeError(
                f"Rows {expected}..{start - 1} are missing from {path.parent} (a process stopped early?). "
                "Rerun the same command to finish them."
            )
        expected = end
    if expected != n:
        raise RuntimeError(f"Rows {expected}..{n - 1} are missing from the parts; rerun the same command.")
    meta_bytes = {
        _META_KEY: json.dumps(meta).encode(),
        b"model": str(meta["model"]).encode(),
        b"weights_sha256": str(meta["weights_sha256"]).encode(),
        b"tta": str(meta["tta"]).encode(),
    }
    schema = schema.with_metadata(meta_bytes)

    if out.suffix.lower() == ".csv":
        import pyarrow.csv as pcsv

        def write(tmp: Path) -> None:
            with pcsv.CSVWriter(str(tmp), schema) as writer:
                for _, _, path in parts:
                    writer.write_table(pq.read_table(path, schema=schema))

        atomic_write(out, write)
        atomic_write(_sidecar(out), lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))
    else:

        def write(tmp: Path) -> None:
            with pq.ParquetWriter(str(tmp), schema) as writer:
                for _, _, path in parts:
                    writer.write_table(pq.read_table(path).cast(schema))

        atomic_write(out, write)


# ----------------------------------------------------------------------------------------------------
# The run


@dataclasses.dataclass
class PredictSummary:
    """What a run did: rows in the catalogue, failed rows and why, speed."""

    out: str | None
    n_rows: int
    n_errors: int
    n_processed: int
    n_resumed: int
    seconds: float
    images_per_s: float
    errors: dict[str, int]
    is_main_process: bool = True

    def text(self) -> str:
        lines = [
            f"{self.n_rows} rows in {self.out} ({self.n_processed} predicted now, {self.n_resumed} already "
            f"written; {self.images_per_s:.1f} images/s); {self.n_errors} failed."
        ]
        for message, count in sorted(self.errors.items(), key=lambda kv: -kv[1])[:10]:
            lines.append(f"  {count} x {message}")
        return "\n".join(lines)


def _distributed_state(device: str | None):
    """(process index, process count, barrier, device) from accelerate when launched with it."""
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if launched:
        from accelerate import PartialState

        state = PartialState(cpu=device == "cpu")
        return state.process_index, state.num_processes, state.wait_for_everyone, state.device
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return 0, 1, lambda: None, dev


def _resolve_swaps(loaded: LoadedModel, opts: PredictOptions) -> dict[int, int]:
    if opts.mirror_label_swaps is not None:
        return {int(k): int(v) for k, v in opts.mirror_label_swaps.items()}
    if loaded.dataset is not None:
        return dict(MIRROR_LABEL_SWAPS[loaded.dataset])
    if opts.tta == "d4":
        warnings.warn(
            f"Model labels {loaded.label_names} match no known dataset; D4 TTA assumes that no label changes "
            "under a mirror flip. Pass mirror_label_swaps (--mirror-swap 1:2) if some do "
            "(e.g. spiral handedness).",
            stacklevel=3,
        )
    return {}


def _commit_batch(
    batch: dict[str, Any], engine: _Engine, schema, parts_dir: Path, heat_dir: Path | None
) -> int:
    """Predict one decoded batch and commit it: heatmap PNGs, the maps part, then the rows' part."""
    import pyarrow.parquet as pq

    want_maps = heat_dir is not None or engine.opts.maps
    result = engine.run(batch["x"], want_maps) if batch["x"] is not None else None
    if heat_dir is not None and result is not None:
        _write_heatmaps(batch, result, engine, heat_dir)
    start, end = batch["range"]
    if engine.opts.maps:
        valid = np.array([r["error"] is None for r in batch["rows"]], dtype=bool)
        indices = [r["index"] for r in batch["rows"]]
        write_maps_part(
            maps_part_path(parts_dir, start, end), indices, valid, result["maps"] if result else []
        )
    table = _batch_table(batch, result, engine, schema)
    part = parts_dir / f"part-{start:012d}-{end:012d}.parquet"
    atomic_write(part, lambda tmp: pq.write_table(table, tmp))
    return end - start


def run_predict(
    inputs: Sequence[str | os.PathLike],
    model: str | os.PathLike | nn.Module | LoadedModel,
    out: str | os.PathLike,
    *,
    options: PredictOptions | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    prefetch: int = 2,
    device: str | None = None,
    allow_random_weights: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> PredictSummary:
    """Write the catalogue of ``inputs`` to ``out`` (.parquet/.csv), resuming a partial run (module doc)."""
    import pyarrow.parquet as pq
    from timm.data import resolve_model_data_config
    from tqdm.auto import tqdm

    opts = options or PredictOptions()
    if opts.tta not in ("none", "d4"):
        raise ValueError(f"tta={opts.tta!r} is not supported; choose 'none' or 'd4'.")
    if opts.precision not in PRECISIONS:
        raise ValueError(f"precision={opts.precision!r} is not supported; choose one of {PRECISIONS}.")
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ValueError(f"--out {out} must end in .parquet or .csv.")
    rank, world, barrier, dev = _distributed_state(device)
    is_main = rank == 0
    choice = choose_precision(dev, opts.precision, opts.channels_last)
    announce(choice)  # the run records (and resumes with) what was chosen
    opts = dataclasses.replace(opts, precision=choice.precision, channels_last=choice.channels_last)
    t0 = time.perf_counter()

    loaded = (
        model
        if isinstance(model, LoadedModel)
        else load_model(model, allow_random_weights=allow_random_weights)
    )
    items = collect_inputs(inputs, fits_bands=opts.fits.bands)
    swaps = _resolve_swaps(loaded, opts)
    opts = dataclasses.replace(opts, mirror_label_swaps=swaps)
    data_config = dict(resolve_model_data_config(loaded.model))
    if opts.image_size:
        data_config["input_size"] = (3, opts.image_size, opts.image_size)
    pixels = ModelPixels(data_config, jpeg_draft=opts.jpeg_draft)
    engine = _Engine(loaded, opts, dev, data_config["mean"], data_config["std"])
    schema = _schema(engine.columns, opts.tta == "d4", opts.heatmaps is not None)
    meta = {
        "format_version": _FORMAT_VERSION,
        "model": loaded.name,
        "weights_sha256": loaded.weights_sha256,
        "label_names": list(loaded.label_names),
        "prob_columns": {
            f"prob_{c}": name for c, name in zip(engine.columns, loaded.label_names, strict=True)
        },
        "dataset": loaded.dataset,
        "tta": opts.tta,
        "mirror_label_swaps": {str(k): v for k, v in swaps.items()},
        "precision": opts.precision,
        "channels_last": opts.channels_last,
        "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()},
        "fits": dataclasses.asdict(opts.fits),
        "heatmaps": opts.heatmaps,
        "maps": maps_path(out).name if opts.maps else None,
        "decode": pixels.describe(),
        "n_inputs": len(items),
        "inputs_sha256": items.digest(),
        "entropy_units": "nats",
    }
    fingerprint = sha256_json(meta)
    meta["run_fingerprint"] = fingerprint
    parts_dir = out.with_name(out.name + ".parts")

    if out.exists() and not overwrite:
        old = _read_meta(out)
        if old is None or old.get("run_fingerprint") != fingerprint:
            raise FileExistsError(
                f"{out} exists and was made by a different run (other inputs, model or options). "
                "Choose another --out or pass --overwrite."
            )
        table = pq.read_table(out, columns=["error"]) if out.suffix == ".parquet" else None
        return _summary_from(out, table, 0, len(items), time.perf_counter() - t0, is_main)

    if is_main:
        if overwrite:
            shutil.rmtree(parts_dir, ignore_errors=True)
            for p in (out, _sidecar(out), maps_path(out)):
                if p.exists():
                    p.unlink()
        parts_dir.mkdir(parents=True, exist_ok=True)
        run_file = parts_dir / "run.json"
        if run_file.is_file():
            if json.loads(run_file.read_text()).get("run_fingerprint") != fingerprint:
                raise FileExistsError(
                    f"{parts_dir} holds parts of a different run (other inputs, model or options). "
                    "Delete it, choose another --out, or pass --overwrite."
                )
        else:
            atomic_write(run_file, lambda tmp: tmp.write_text(json.dumps(meta, indent=2)))
        for stale in parts_dir.glob(f".*{TEMP_INFIX}*"):
            stale.unlink()  # a batch in flight when a previous run was killed
    barrier()

    n = len(items)
    lo, hi = n * rank // world, n * (rank + 1) // world
    done = np.zeros(n, dtype=bool)
    for start, end, _ in _parts(parts_dir):
        done[start:end] = True
    ranges = _pending_ranges(lo, hi, done, batch_size)
    n_resumed = int(done[lo:hi].sum())
    heat_dir = Path(opts.heatmaps) if opts.heatmaps else None
    if heat_dir is not None:
        heat_dir.mkdir(parents=True, exist_ok=True)
    crop_pct = data_config["crop_pct"]
    model_crop = (data_config["input_size"][-1], crop_pct)
    decoder = BatchDecoder(items, ranges, pixels, opts.fits, crop_pct if heat_dir else None, model_crop)
    kill_after = int(os.environ.get(DEBUG_KILL_ENV, "0") or 0)
    n_processed, committed = 0, 0
    t_run = time.perf_counter()
    bar = tqdm(
        total=hi - lo,
        initial=n_resumed,
        unit="img",
        desc="galaxy-attn predict",
        disable=not (progress and is_main),
    )
    try:
        for batch in _batches(decoder, num_workers, prefetch, pin=dev.type == "cuda"):
            done_now = _commit_batch(batch, engine, schema, parts_dir, heat_dir)
            n_processed += done_now
            committed += 1
            bar.update(done_now)
            if kill_after and committed >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)  # fault injection for the resume tests
    finally:
        bar.close()
    run_seconds = time.perf_counter() - t_run
    barrier()
    if not is_main:
        return PredictSummary(
            None, 0, 0, n_processed, n_resumed, run_seconds, n_processed / max(run_seconds, 1e-9), {}, False
        )
    parts = _parts(parts_dir)
    if opts.maps:  # before the catalogue: a finished catalogue always has its maps
        attrs = {k: meta[k] for k in ("model", "weights_sha256", "run_fingerprint")}
        merge_maps(
            [(a, b) for a, b, _ in parts], parts_dir, n, maps_path(out), {**attrs, "catalogue": out.name}
        )
    _merge(parts, n, out, schema, meta)
    shutil.rmtree(parts_dir, ignore_errors=True)
    table = pq.read_table(out, columns=["error"]) if out.suffix.lower() == ".parquet" else None
    if table is None:
        import pyarrow.csv as pcsv

        table = pcsv.read_csv(out, convert_options=pcsv.ConvertOptions(include_columns=["error"]))
    summary = _summary_from(out, table, n_processed, n_resumed, run_seconds, True)
    return summary


def _summary_from(
    out: Path, table, n_processed: int, n_resumed: int, seconds: float, is_main: bool
) -> PredictSummary:
    if table is None:
        import pyarrow.csv as pcsv

        table = pcsv.read_csv(out, convert_options=pcsv.ConvertOptions(include_columns=["error"]))
    errors = Counter(e for e in table.column("error").to_pylist() if e)
    return PredictSummary(
        out=str(out),
        n_rows=table.num_rows,
        n_errors=sum(errors.values()),
        n_processed=n_processed,
        n_resumed=n_resumed,
        seconds=seconds,
        images_per_s=n_processed / seconds if seconds > 0 else math.nan,
        errors=dict(errors),
        is_main_process=is_main,
    )


def predict(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    model: str | os.PathLike | nn.Module | LoadedModel,
    *,
    out: str | os.PathLike | None = None,
    tta: str = "none",
    heatmaps: str | os.PathLike | None = None,
    maps: bool = False,
    jpeg_draft: bool = False,
    image_size: int | None = None,
    batch_size: int = 32,
    precision: str = "auto",
    channels_last: bool | None = None,
    num_workers: int = 0,
    device: str | None = None,
    allow_random_weights: bool = False,
    mirror_label_swaps: dict[int, int] | None = None,
    fits: FitsOptions | None = None,
    overwrite: bool = False,
    progress: bool = True,
    output: str = "pandas",
):
    """Classify galaxies in ``inputs`` (files and folders) and return the catalogue as a table.

    The notebook face of ``galaxy-attn predict``: ``out`` (.parquet/.csv) keeps the catalogue on disk
    (and makes the run resumable); without it the catalogue is built in a temporary folder. ``output`` is
    ``"pandas"`` (DataFrame), ``"arrow"`` (pyarrow.Table, with the run's metadata in its schema) or
    ``"none"`` (return the :class:`PredictSummary`). Rows whose input was broken carry an ``error``.
    ``maps=True`` stores the attention maps in ``<out>.maps.h5`` (give ``out`` to keep them);
    JPEGs are decoded at full size (the timm transform's pixels exactly); ``jpeg_draft=True`` decodes large
    ones at 1/2-1/8 scale where the crop keeps the pixels the model reads (faster; probabilities move a bit).

    Example::

        from timm_galaxy_attn.predict import predict
        df = predict("cutouts/", model="galaxy_attn_vgg_tiny_s4.gz1_sdss", tta="d4")
    """
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    options = PredictOptions(
        tta=tta,
        image_size=image_size,
        precision=precision,
        channels_last=channels_last,
        heatmaps=str(heatmaps) if heatmaps is not None else None,
        maps=maps,
        jpeg_draft=jpeg_draft,
        mirror_label_swaps=mirror_label_swaps,
        fits=fits or FitsOptions(),
    )
    with tempfile.TemporaryDirectory(prefix="galaxy-attn-") as tmp:
        target = Path(out) if out is not None else Path(tmp) / "catalog.parquet"
        summary = run_predict(
            list(inputs),
            model,
            target,
            options=options,
            batch_size=batch_size,
            num_workers=num_workers,
            device=device,
            allow_random_weights=allow_random_weights,
            overwrite=overwrite,
            progress=progress,
        )
        if output == "none":
            return summary
        if not summary.is_main_process:
            return None
        if target.suffix.lower() == ".csv":
            table = pcsv.read_csv(target)
        else:
            table = pq.read_table(target)
    if output == "arrow":
        return table
    if output == "pandas":
        return table.to_pandas()
    raise ValueError(f"output={output!r} is not supported; choose 'pandas', 'arrow' or 'none'.")
