"""Nearest neighbours in an embedding catalogue (``galaxy-attn similar``).

The catalogue is one written by ``galaxy-attn embed`` (``embedding`` column; its metadata records the
model, the SHA-256 of its weights, the data config and the decoding). A query is a row of the catalogue
(``query_row``) or an input (``query``: an image, FITS cutout...), embedded by the catalogue's own model
with the catalogue's own preprocessing through the same engine as the catalogue. Neighbours are found by
cosine distance (``1 - cos``), by scikit-learn's exact (brute-force)
:class:`~sklearn.neighbors.NearestNeighbors` on the unit vectors.
Every failure is a :class:`SimilarError` whose message says what to do.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .model import LoadedModel, ModelLoadError, load_model
from .parts import read_meta

__all__ = ["EmbeddingCatalog", "SimilarError", "read_embeddings", "similar"]

_COLUMNS = ("index", "source", "row", "hdu", "pred_label")


class SimilarError(ValueError):
    """A similarity search that cannot be done; the message says why and what to do."""


@dataclasses.dataclass
class EmbeddingCatalog:
    """The rows of a catalogue that have an embedding: their identity columns and their vectors."""

    path: Path
    meta: dict[str, Any]
    rows: Any  # pandas.DataFrame of _COLUMNS, one row per vector
    vectors: np.ndarray  # (n, dim) float32
    n_rows: int  # rows in the catalogue, with and without an embedding


def read_embeddings(catalog: str | os.PathLike) -> EmbeddingCatalog:
    """The embeddings of a catalogue written by ``galaxy-attn embed`` (rows with an error are left out).

    Args:
        catalog: the ``.parquet`` catalogue.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = Path(catalog)
    if not path.is_file():
        raise SimilarError(f"Catalogue {path} does not exist.")
    meta = read_meta(path) if path.suffix.lower() == ".parquet" else None
    schema = pq.read_schema(path) if meta is not None else None
    if meta is None or "embedding" not in schema.names:
        raise SimilarError(
            f"{path} is not a catalogue with embeddings (no 'embedding' column). Make one with "
            f"galaxy-attn embed INPUTS --out {path.stem}_emb.parquet."
        )
    table = pq.read_table(path, columns=[*_COLUMNS, "embedding"])
    kept = table.filter(pc.is_valid(table.column("embedding")))
    dim = schema.field("embedding").type.list_size
    values = kept.column("embedding").combine_chunks().flatten()
    vectors = np.asarray(values, dtype=np.float32).reshape(-1, dim)
    rows = kept.select(list(_COLUMNS)).to_pandas()
    return EmbeddingCatalog(path, meta, rows, vectors, table.num_rows)


def _catalog_model(cat: EmbeddingCatalog, model: str | os.PathLike | None) -> LoadedModel:
    """The model that made ``cat`` (or ``model``, which must have the same weights)."""
    recorded, sha = cat.meta.get("model"), cat.meta.get("weights_sha256")
    if sha is None:
        raise SimilarError(
            f"{cat.path} was made with random weights (--allow-random-weights), which cannot be made again "
            "for a query image; query a row of the catalogue instead (--query-row N)."
        )
    spec = model if model is not None else recorded
    try:
        loaded = load_model(spec)
    except ModelLoadError as exc:
        hint = "" if model is not None else " Pass the model that made the catalogue with --model."
        raise SimilarError(f"Cannot load the catalogue's model {spec!r}: {exc}{hint}") from exc
    if loaded.weights_sha256 != sha:
        raise SimilarError(
            f"Model mismatch: {cat.path} was embedded by {recorded!r} (weights SHA-256 {sha[:12]}...), "
            f"but {spec!r} has weights {str(loaded.weights_sha256)[:12]}...: its embeddings are not "
            "comparable. Use the catalogue's model (leave out --model), or re-embed the catalogue."
        )
    return loaded


def _query_options(meta: dict[str, Any]):
    """The options that embed one input as the catalogue's rows were (precision, size, decoding, FITS)."""
    from .fits import FitsOptions
    from .options import PredictOptions

    fits = dict(meta.get("fits") or {})
    if fits.get("planes") is not None:
        fits["planes"] = tuple(fits["planes"])
    return PredictOptions(
        image_size=int(meta["data_config"]["input_size"][-1]),
        precision=meta.get("precision", "auto"),
        channels_last=meta.get("channels_last"),
        jpeg_draft=bool((meta.get("decode") or {}).get("jpeg_draft", False)),
        fits=FitsOptions(**fits),
        embeddings=True,
    )


def _embed_query(
    cat: EmbeddingCatalog, query: str | os.PathLike, loaded: LoadedModel, device: str | None
) -> np.ndarray:
    """The embedding of the single input ``query``, made as the catalogue's were."""
    import pyarrow.parquet as pq

    from .run import run_predict

    with tempfile.TemporaryDirectory(prefix="galaxy-attn-query-") as tmp:
        out = Path(tmp) / "query.parquet"
        try:
            run_predict([query], loaded, out, _query_options(cat.meta), device=device, progress=False)
        except (FileNotFoundError, ValueError) as exc:
            raise SimilarError(f"Query {query}: {exc}") from exc
        table, meta = pq.read_table(out), read_meta(out) or {}
    if table.num_rows != 1:
        raise SimilarError(f"Query {query} holds {table.num_rows} galaxies; give one image or cutout.")
    if table.column("error")[0].is_valid:
        raise SimilarError(f"Query {query} cannot be used: {table.column('error')[0].as_py()}")
    for key in ("data_config", "decode"):
        if meta.get(key) != cat.meta.get(key):
            raise SimilarError(
                f"Query {query} would be preprocessed differently from {cat.path} ({key}: "
                f"{meta.get(key)} vs {cat.meta.get(key)}); re-embed the catalogue with this version."
            )
    return np.asarray(table.column("embedding")[0].as_py(), dtype=np.float32)


def _row_vector(cat: EmbeddingCatalog, query_row: int) -> np.ndarray:
    """The embedding of catalogue row ``query_row`` (its ``index``)."""
    if not 0 <= query_row < cat.n_rows:
        raise SimilarError(f"--query-row {query_row}: {cat.path} has rows 0..{cat.n_rows - 1}.")
    hit = np.flatnonzero(cat.rows["index"].to_numpy() == query_row)
    if not len(hit):
        raise SimilarError(
            f"Row {query_row} of {cat.path} has no embedding: its input failed (see its 'error' column)."
        )
    return cat.vectors[hit[0]]


def _check_k(cat: EmbeddingCatalog, k: int) -> None:
    n = len(cat.vectors)
    if not 1 <= k <= n:
        raise SimilarError(f"-k {k}: choose 1 to {n} (the galaxies with an embedding in {cat.path}).")


def nearest(cat: EmbeddingCatalog, vector: np.ndarray, k: int):
    """The ``k`` rows of ``cat`` nearest to ``vector`` by cosine distance, nearest first (a DataFrame:
    ``rank``, the identity columns, ``pred_label``, ``distance``).

    Args:
        cat: the catalogue's embeddings (:func:`read_embeddings`).
        vector: a query embedding of the catalogue's size.
        k: how many neighbours.
    """
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import normalize

    _check_k(cat, k)
    # Euclidean on unit vectors ranks as cosine does (|a - b|^2 = 2 - 2 cos) and takes scikit-learn's
    # float32 Euclidean path, which is faster than its metric="cosine".
    index = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(normalize(cat.vectors))
    distance, position = index.kneighbors(normalize(vector.reshape(1, -1).astype(np.float32)))
    result = cat.rows.iloc[position[0]].reset_index(drop=True)
    result.insert(0, "rank", np.arange(1, k + 1))
    result["distance"] = (distance[0].astype(np.float64) ** 2 / 2).astype(np.float32)  # 1 - cos
    return result


def similar(
    catalog: str | os.PathLike,
    *,
    query: str | os.PathLike | None = None,
    query_row: int | None = None,
    k: int = 10,
    model: str | os.PathLike | None = None,
    device: str | None = None,
):
    """The ``k`` galaxies of an embedding catalogue nearest to a query (cosine distance; module doc).

    Args:
        catalog: a ``.parquet`` catalogue written by ``galaxy-attn embed``.
        query: an input (image, FITS cutout...) embedded with the catalogue's model and preprocessing.
        query_row: or a row of the catalogue (its ``index``); it comes first, at distance 0.
        k: how many neighbours.
        model: the model to embed ``query`` with (default: the one the catalogue records; its weights must
            be the catalogue's).
        device: where to run the model for ``query`` (default: cuda when available).
    """
    if (query is None) == (query_row is None):
        raise SimilarError("Give either a query input (--query IMAGE) or a catalogue row (--query-row N).")
    cat = read_embeddings(catalog)
    _check_k(cat, k)
    if query_row is not None:
        vector = _row_vector(cat, int(query_row))
    else:
        vector = _embed_query(cat, query, _catalog_model(cat, model), device)
    return nearest(cat, vector, k)
