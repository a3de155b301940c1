"""The catalog's Arrow table: its schema, and the rows of one predicted batch.

Columns: the input's identity (``index``, ``source``, ``row``, ``hdu``, ``file_label``, ``ra``, ``dec``),
``pred_id``, ``pred_label``, one ``prob_<class>`` per class, ``margin`` (top-1 minus top-2), ``entropy``
(nats); with D4 TTA one ``std_<class>`` per class and ``tta_agreement``; with heatmaps ``heatmap``; with
embeddings ``embedding`` (a fixed-size list of float32, :mod:`.embed`); then ``warning`` and ``error``. Rows
whose input failed have nulls in every prediction column.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["batch_table", "catalog_schema", "class_columns", "slug"]

_IDENTITY = ("index", "source", "row", "hdu", "file_label", "ra", "dec")


def slug(name: str) -> str:
    """``name`` lower-case, with ``_`` for every run of other characters (apostrophes dropped)."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower().replace("'", "")).strip("_") or "class"


def class_columns(label_names: Sequence[str]) -> list[str]:
    """Column suffixes for the classes: lower-case, ``_`` for anything else, unique."""
    seen: Counter = Counter()
    out = []
    for name in label_names:
        s = slug(name)
        seen[s] += 1
        out.append(s if seen[s] == 1 else f"{s}_{seen[s]}")
    return out


def catalog_schema(columns: list[str], tta: bool, heatmaps: bool, embedding_dim: int | None = None):
    """The pyarrow schema of a catalog with the class columns ``columns`` (``embedding_dim``: the size
    of the ``embedding`` column, None for none)."""
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
    if embedding_dim:
        fields.append(("embedding", pa.list_(pa.float32(), embedding_dim)))
    fields += [("warning", pa.string()), ("error", pa.string())]
    return pa.schema(fields)


def _tta_columns(
    result: dict[str, Any] | None, ok: list[int], columns: list[str], n: int, mask: np.ndarray
) -> dict[str, Any]:
    """The D4 columns: per-class spread over the 8 views and the share of views that agree."""
    import pyarrow as pa

    std = np.full((n, len(columns)), np.nan, dtype=np.float32)
    agree = np.full(n, np.nan, dtype=np.float32)
    if result is not None:
        std[ok] = result["std"].numpy()
        agree[ok] = result["agreement"].numpy()
    cols: dict[str, Any] = {f"std_{col}": pa.array(std[:, j], mask=mask) for j, col in enumerate(columns)}
    cols["tta_agreement"] = pa.array(agree, mask=mask)
    return cols


def _embedding_column(result: dict[str, Any] | None, ok: list[int], n: int, type_):
    """The ``embedding`` column: the rows' vectors, null where the input failed."""
    import pyarrow as pa

    vectors: list[Any] = [None] * n
    if result is not None:
        for i, vector in zip(ok, result["embedding"].numpy(), strict=True):
            vectors[i] = vector
    return pa.array(vectors, type=type_)


def batch_table(
    rows: list[dict[str, Any]],
    result: dict[str, Any] | None,
    label_names: Sequence[str],
    columns: list[str],
    schema,
):
    """The catalog rows of one batch: ``rows`` (per-input facts) with the predictions of ``result``
    (``probs``, with TTA ``std`` and ``agreement``, with embeddings ``embedding``, of the rows without an
    error)."""
    import pyarrow as pa

    ok = [i for i, r in enumerate(rows) if r["error"] is None]
    n, c = len(rows), len(label_names)
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
    cols: dict[str, Any] = {k: [r[k] for r in rows] for k in _IDENTITY}
    mask = ~valid
    cols["pred_id"] = pa.array(pred.astype(np.int64), mask=mask)
    cols["pred_label"] = pa.array([label_names[p] if v else None for p, v in zip(pred, valid, strict=True)])
    for j, col in enumerate(columns):
        cols[f"prob_{col}"] = pa.array(probs[:, j], mask=mask)
    cols["margin"] = pa.array(margin.astype(np.float32), mask=mask)
    cols["entropy"] = pa.array(entropy.astype(np.float32), mask=mask)
    if "tta_agreement" in schema.names:
        cols.update(_tta_columns(result, ok, columns, n, mask))
    if "heatmap" in schema.names:
        cols["heatmap"] = [r.get("heatmap") for r in rows]
    if "embedding" in schema.names:
        cols["embedding"] = _embedding_column(result, ok, n, schema.field("embedding").type)
    cols["warning"] = [r["warning"] for r in rows]
    cols["error"] = [r["error"] for r in rows]
    return pa.Table.from_pydict(cols, schema=schema)
