"""The catalogue engine (``galaxy-attn predict``, :func:`predict`): image files, folders, astroNN HDF5 files
and FITS cutouts in, one row per galaxy out.

Pipeline: the inputs are listed (cheaply: names, HDF5 lengths, FITS headers) into a sequence of items,
each with a global index; batches of consecutive items are decoded into model-ready tensors (on the CPU by
a few pipeline threads that also run their own copy of the model; on a GPU by a producer thread or
DataLoader workers, through a bounded queue); the model turns each batch into rows (class probabilities,
margin, entropy, optional D4 test-time augmentation and attention heatmaps). Every batch is committed
atomically as a part file in ``<out>.parts/`` (written to a temporary name, then renamed), so a killed run
loses at most the batch in flight and a rerun with the same ``out`` skips what is already written. At the
end the parts are merged, in input order, into ``out`` (parquet or CSV) through a temporary file and a
rename.

Decoding (:mod:`.decode`, :mod:`.geometry`, :mod:`.fits`) gives uint8 pixels of the model's crop, cut and
resized exactly as timm's eval transform would but resizing only what the crop needs (JPEGs through PIL's
libjpeg-turbo; at 1/2-1/8 DCT scale where the crop keeps its pixels with ``jpeg_draft=True``); the engine
normalises each batch at once. With ``maps=True`` each batch's three attention maps are committed beside
its rows and merged into ``<out>.maps.h5`` (:mod:`.maps`; ``galaxy-attn render`` draws them,
:mod:`.render`).

Processes come from accelerate's ``PartialState``: under ``accelerate launch`` each process takes a
contiguous block of the rows, commits its own parts, and the main process merges after a barrier: the
catalogue equals the one-process catalogue row for row. ``shard="K/N"`` (``--shard K/N``) runs the K-th of
N contiguous blocks of the listed inputs as an independent job (a SLURM array task); ``index`` stays the
position in the whole listing, so the N catalogues read together are the whole one (:mod:`.run`).
The options of a run, and their defaults, are the fields of :class:`PredictOptions`.

Input rules:

* Images: PNG, JPEG, TIFF, BMP, WebP, GIF (:data:`.inputs.IMAGE_SUFFIXES`; any format PIL reads when
  named explicitly). RGB is used as is; palette images
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
than the model's crop is meant for get a prediction and a ``warning`` (:mod:`.._input_checks`); a missing
input path or an unusable model stops the run before it starts. ``precision="auto"`` (the default) uses
bf16 only where the device runs it natively (:mod:`..device`); the catalogue records what was used.

``embeddings=True`` (``galaxy-attn embed``) adds each galaxy's ``embedding``, the classifier's input
(:mod:`.embed`); :func:`similar` (``galaxy-attn similar``) finds a query's nearest rows by cosine distance
(:mod:`.similar`).

Modules, one concern each: :mod:`.model` (loading), :mod:`.inputs` (listing), :mod:`.decode` /
:mod:`.geometry` / :mod:`.fits` (pixels), :mod:`.batches` (a batch's rows), :mod:`.engine` (pipelines,
producer thread, inference, TTA), :mod:`.table` (Arrow rows), :mod:`.heatmaps`, :mod:`.maps`, :mod:`.parts`
(part files, resume, merge), :mod:`.run` (:func:`run_predict`), :mod:`.api` (:func:`predict`),
:mod:`.render`, :mod:`.embed`, :mod:`.similar`.
"""

from __future__ import annotations

from .api import predict
from .decode import InputError
from .fits import FitsOptions
from .inputs import IMAGE_SUFFIXES, InputList, collect_inputs
from .maps import MapsError, maps_path, read_maps
from .model import LoadedModel, ModelLoadError, load_model
from .options import PredictOptions, PredictSummary
from .run import run_predict
from .similar import EmbeddingCatalog, SimilarError, read_embeddings, similar

__all__ = [
    "IMAGE_SUFFIXES",
    "EmbeddingCatalog",
    "FitsOptions",
    "InputError",
    "InputList",
    "LoadedModel",
    "MapsError",
    "ModelLoadError",
    "PredictOptions",
    "PredictSummary",
    "SimilarError",
    "collect_inputs",
    "load_model",
    "maps_path",
    "predict",
    "read_embeddings",
    "read_maps",
    "run_predict",
    "similar",
]
