"""How well do catalogue embeddings group galaxies of one class? kNN label agreement on gz1_sdss validation.

    python benchmarks/embeddings.py [--wait-minutes 40] [--out-dir benchmarks/results/embeddings]

For each of the 567 galaxies of the gz1_sdss validation split (split seed 0; never the test split): the
share of its 10 nearest neighbours (cosine distance, itself left out) that have its label; the mean over
galaxies with a 95% bootstrap interval (galaxies resampled, neighbours fixed), and the macro-average over
the six classes. Also with the two spiral classes (clockwise, anticlockwise) as one, since a mirror image
swaps them. The embeddings come from ``galaxy-attn embed`` itself (``run_predict`` with
``embeddings=True``, fp32), on the validation images written to an astroNN HDF5 file:

* the shipped weights ``galaxy_attn_vgg_tiny_s4.gz1_sdss`` (384-d: three attended 128-d vectors);
* like for like, two models trained the same way (128 px, class-balanced sampler, 10 epochs, seed 0;
  ``benchmarks/accuracy.py``'s rows): ours (tiny, stride 4) and timm's ``resnet18`` (512-d pooled);
* raw pixels: the uint8 crop the shipped model reads (the central half, resized to 128 px), as floats in
  [0, 1], averaged 4 x 4 down to 32 px (3072-d) and also at 128 px (49152-d).

Writes ``knn.json`` (numbers, machine, command) and ``knn.md`` (the table) into ``--out-dir``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import timm
import torch
from _common import lscpu_facts, percentile_interval, write_report
from sklearn.neighbors import NearestNeighbors

import timm_galaxy_attn
from timm_galaxy_attn.catalog import PredictOptions, read_embeddings, run_predict
from timm_galaxy_attn.catalog.geometry import ModelPixels
from timm_galaxy_attn.data import load_galaxy_dataset

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LIKE = REPO / "runs" / "benchmarks" / "accuracy_like_for_like"
MODELS = {
    "ours_tiny_shipped": "galaxy_attn_vgg_tiny_s4.gz1_sdss",
    "ours_tiny_128s4_sampler_10ep": f"local-dir:{LIKE}/ours_tiny_128s4_sampler_10ep/seed0/model",
    "resnet18_128_sampler_10ep": f"local-dir:{LIKE}/resnet18_128_sampler_10ep/seed0/model",
}
K = 10
N_BOOT = 2000
SPIRALS = (1, 2)  # Spiral clockwise, Spiral anticlockwise
PAIRS = (
    ("ours_tiny_128s4_sampler_10ep", "resnet18_128_sampler_10ep"),
    ("ours_tiny_128s4_sampler_10ep", "pixels_32px"),
    ("resnet18_128_sampler_10ep", "pixels_32px"),
)


def neighbour_agreement(x: np.ndarray, y: np.ndarray, k: int = K) -> np.ndarray:
    """Per galaxy, the share of its ``k`` nearest others (cosine) with its label."""
    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(x)
    _, idx = nn.kneighbors(x)
    share = np.empty(len(y))
    for i, row in enumerate(idx):
        others = [j for j in row if j != i][:k]  # itself left out, even if a duplicate comes first
        share[i] = np.mean(y[others] == y[i])
    return share


def macro_mean(share: np.ndarray, labels: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """The mean over the classes present in ``labels`` of each class's mean ``share``, along ``axis``
    (a float for 1-D inputs; one value per row of a stack of resamples)."""
    share, labels = np.moveaxis(share, axis, -1), np.moveaxis(labels, axis, -1)
    onehot = labels[..., None] == np.unique(labels)  # (..., n, classes)
    counts = onehot.sum(-2)
    sums = (share[..., None] * onehot).sum(-2)
    per_class = np.divide(sums, counts, out=np.zeros(sums.shape), where=counts > 0)
    macro = (per_class * (counts > 0)).sum(-1) / (counts > 0).sum(-1)
    return float(macro) if macro.ndim == 0 else macro


def _mean_and_macro(share: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """(mean, macro mean) of ``share`` along ``axis``: the two statistics bootstrapped together."""
    return np.stack([np.mean(share, axis=axis), macro_mean(share, y, axis)])


def summarise(share: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Mean and class macro-average of ``share``, with 95% bootstrap intervals over galaxies."""
    ci, macro_ci = percentile_interval((share, y), _mean_and_macro, N_BOOT, seed)
    return {
        "mean": float(share.mean()),
        "ci95": [float(v) for v in ci],
        "macro": macro_mean(share, y),
        "macro_ci95": [float(v) for v in macro_ci],
        "per_class": {str(int(c)): float(share[y == c].mean()) for c in np.unique(y)},
    }


def chance(y: np.ndarray) -> dict[str, float]:
    """The agreement of random neighbours: per galaxy, the share of the others with its label."""
    counts = np.bincount(y)
    share = (counts[y] - 1) / (len(y) - 1)
    return {
        "mean": float(share.mean()),
        "macro": float(np.mean([share[y == c].mean() for c in np.unique(y)])),
    }


def score(x: np.ndarray, y: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """kNN agreement with the six labels and with the two spiral classes merged; the per-galaxy shares."""
    merged = np.where(y == SPIRALS[1], SPIRALS[0], y)
    share = neighbour_agreement(x, y)
    summary = {
        "six_classes": summarise(share, y),
        "spirals_merged": summarise(neighbour_agreement(x, merged), merged),
    }
    return summary, share


def paired(shares: dict[str, np.ndarray], y: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Differences (six classes) of the :data:`PAIRS`, 95% paired bootstrap intervals (same resamples)."""
    out = {}
    for a, b in PAIRS:
        if a in shares and b in shares:
            d = shares[a] - shares[b]
            summary = summarise(d, y, seed)
            out[f"{a} - {b}"] = {k: summary[k] for k in ("mean", "ci95", "macro", "macro_ci95")}
    return out


def write_h5(ds, path: Path) -> np.ndarray:
    """The split's images and labels as an astroNN HDF5 file; returns the labels."""
    y = np.asarray(ds["label"], dtype=np.int64)
    with h5py.File(path, "w") as f:
        images = f.create_dataset("images", (len(ds), 423, 423, 3), dtype=np.uint8)
        for i, image in enumerate(ds["image"]):
            images[i] = np.asarray(image.convert("RGB"))
        f["ans"] = y
    return y


def embed(spec: str, h5: Path, tmp: Path, y: np.ndarray) -> dict[str, Any]:
    """Embed the HDF5 file with ``spec`` through the catalogue engine (fp32); vectors and facts."""
    out = tmp / f"{abs(hash(spec))}.parquet"
    t0 = time.perf_counter()
    summary = run_predict(
        [h5], spec, out, options=PredictOptions(embeddings=True, precision="fp32"), progress=False
    )
    cat = read_embeddings(out)
    assert summary.n_errors == 0 and len(cat.vectors) == len(y)
    assert (cat.rows["index"].to_numpy() == np.arange(len(y))).all()
    return {
        "x": cat.vectors,
        "model": spec,
        "weights_sha256": cat.meta["weights_sha256"],
        "dim": int(cat.vectors.shape[1]),
        "embed_seconds": round(time.perf_counter() - t0, 1),
    }


def raw_pixels(ds, tag: str) -> dict[str, np.ndarray]:
    """The uint8 crop the shipped model reads, as [0, 1] floats, at 32 px (4 x 4 means) and 128 px."""
    config = dict(timm.data.resolve_model_data_config(timm.create_model(tag)))
    pixels = ModelPixels(config)
    crops = np.stack([pixels(im.convert("RGB")) for im in ds["image"]]).astype(np.float32) / 255
    n, s = crops.shape[:2]
    small = crops.reshape(n, s // 4, 4, s // 4, 4, 3).mean((2, 4))
    return {"pixels_32px": small.reshape(n, -1), "pixels_128px": crops.reshape(n, -1)}


def wait_for(folder: Path, minutes: float) -> bool:
    """Wait (checking every 3 minutes) up to ``minutes`` for ``folder/model.safetensors``."""
    deadline = time.time() + 60 * minutes
    while not (folder / "model.safetensors").is_file():
        if time.time() > deadline:
            return False
        print(f"waiting for {folder} ...", file=sys.stderr, flush=True)
        time.sleep(180)
    time.sleep(5)  # a folder being written: let the last rename land
    return True


def table_md(result: dict[str, Any]) -> str:
    """The Markdown table of ``result``."""
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    ci = lambda lo_hi: f"[{pct(lo_hi[0])}, {pct(lo_hi[1])}]"  # noqa: E731
    lines = [
        f"# kNN label agreement, gz1_sdss validation ({result['n']} galaxies, k = {result['k']}, cosine)",
        "",
        "Share (%) of each galaxy's 10 nearest neighbours with its label, 95% bootstrap intervals over "
        "galaxies; macro: the mean over classes. `python benchmarks/embeddings.py`.",
        "",
        "| features | dim | mean | macro | mean, spirals merged | macro, spirals merged |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in result["features"].items():
        six, merged = entry["six_classes"], entry["spirals_merged"]
        lines.append(
            f"| {name} | {entry['dim']} | {pct(six['mean'])} {ci(six['ci95'])} | {pct(six['macro'])} "
            f"{ci(six['macro_ci95'])} | {pct(merged['mean'])} {ci(merged['ci95'])} | {pct(merged['macro'])} "
            f"{ci(merged['macro_ci95'])} |"
        )
    c6, cm = result["chance"]["six_classes"], result["chance"]["spirals_merged"]
    lines.append(
        f"| chance (random neighbours) | - | {pct(c6['mean'])} | {pct(c6['macro'])} | {pct(cm['mean'])} "
        f"| {pct(cm['macro'])} |"
    )
    lines += ["", "Paired differences (six classes, percentage points, 95% paired bootstrap):", ""]
    lines += ["| pair | mean | macro |", "|---|---|---|"]
    for pair, d in result["paired_differences"].items():
        lines.append(
            f"| {pair} | {pct(d['mean'])} {ci(d['ci95'])} | {pct(d['macro'])} {ci(d['macro_ci95'])} |"
        )
    names = result["label_names"]
    lines += ["", "Per class (six classes, %):", "", "| features | " + " | ".join(names) + " |"]
    lines.append("|---" * (len(names) + 1) + "|")
    for name, entry in result["features"].items():
        per = entry["six_classes"]["per_class"]
        cells = [pct(per[str(c)]) if str(c) in per else "-" for c in range(len(names))]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", type=Path, default=HERE / "results" / "embeddings")
    parser.add_argument(
        "--wait-minutes", type=float, default=0.0, help="wait for missing like-for-like models"
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    ds = load_galaxy_dataset("gz1_sdss", seed=0)["validation"]
    features: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="galaxy-attn-emb-") as tmp:
        h5 = Path(tmp) / "validation.h5"
        y = write_h5(ds, h5)
        for name, spec in MODELS.items():
            folder = Path(spec.removeprefix("local-dir:"))
            if spec.startswith("local-dir:") and not wait_for(folder, args.wait_minutes):
                print(f"skipped {name}: {folder} has no model.safetensors", file=sys.stderr)
                continue
            features[name] = embed(spec, h5, Path(tmp), y)
    for name, x in raw_pixels(ds, MODELS["ours_tiny_shipped"]).items():
        features[name] = {"x": x, "model": None, "dim": int(x.shape[1])}
    shares = {}
    for name, entry in features.items():
        summary, shares[name] = score(entry.pop("x"), y)
        entry.update(summary)
    merged = np.where(y == SPIRALS[1], SPIRALS[0], y)
    result = {
        "dataset": "gz1_sdss",
        "split": "validation",
        "split_seed": 0,
        "n": int(len(y)),
        "k": K,
        "metric": "cosine",
        "bootstrap_resamples": N_BOOT,
        "label_names": list(ds.features["label"].names),
        "class_counts": {int(c): int((y == c).sum()) for c in np.unique(y)},
        "precision": "fp32",
        "chance": {"six_classes": chance(y), "spirals_merged": chance(merged)},
        "features": features,
        "paired_differences": paired(shares, y),
        "pixels": "the shipped model's uint8 crop (central half of the 423 px cutout, resized to 128 px), "
        "/255; pixels_32px: 4 x 4 means",
        "machine": {**lscpu_facts(("avx512_bf16", "amx_bf16")), "python": platform.python_version()},
        "versions": {
            "torch": torch.__version__,
            "timm": timm.__version__,
            "timm_galaxy_attn": timm_galaxy_attn.__version__,
        },
        "command": "python benchmarks/embeddings.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_report(args.out_dir, "knn", result, table_md(result))
    print(table_md(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
