"""JPEG decoding for the catalogue: PIL against simplejpeg, full size and DCT-scaled, on the validation split.

    python benchmarks/jpeg_decode.py     # -> benchmarks/results/jpeg_decode.{json,md}

For each shipped tag, the gz1_sdss validation JPEGs (its split seed) are decoded three ways and cut to the
model's pixels (``catalog.geometry.ModelPixels``):

* ``pil``: PIL's decode (``catalog.decode.pil_to_rgb``), the catalogue's path without simplejpeg;
* ``simplejpeg``: simplejpeg's full-size decode, the catalogue's path for RGB JPEGs when it is installed;
* ``simplejpeg_dct``: simplejpeg decoding at the smallest DCT scale (k/8) that still covers the resized image.

It records the decode + crop time per image (best of ``--repeats`` passes, all paths in the same run, and
the speed ratio to PIL), how many images get exactly PIL's pixels, and the macro-F1 of each path with the
paired bootstrap interval of its difference to PIL (``metrics.paired_bootstrap_difference``).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import write_report

RESULTS = Path(__file__).resolve().parent / "results"
PATHS = ("pil", "simplejpeg", "simplejpeg_dct")


def _decoders(pixels) -> dict[str, Callable[[bytes], np.ndarray]]:
    """JPEG bytes -> the model's uint8 (S, S, 3) pixels, one function per path."""
    import simplejpeg
    from PIL import Image

    from timm_galaxy_attn.catalog.decode import pil_to_rgb

    def pil(data: bytes) -> np.ndarray:
        return pixels(pil_to_rgb(Image.open(io.BytesIO(data))))

    def full(data: bytes) -> np.ndarray:
        return pixels(Image.fromarray(simplejpeg.decode_jpeg(data, colorspace="RGB")))

    def dct(data: bytes) -> np.ndarray:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        rw, rh = pixels.geometry.resized_size(width, height)
        scaled = simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=rh, min_width=rw)
        return pixels(Image.fromarray(scaled), (width, height))

    return {"pil": pil, "simplejpeg": full, "simplejpeg_dct": dct}


def _timed(
    decode: Callable[[bytes], np.ndarray], blobs: list[bytes], repeats: int
) -> tuple[np.ndarray, float]:
    """The pixels of every JPEG and the best per-image time (ms) over ``repeats`` passes."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = np.stack([decode(b) for b in blobs])
        best = min(best, (time.perf_counter() - start) / len(blobs) * 1e3)
    return out, best


def _predictions(model, pixels: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    import torch

    from timm_galaxy_attn.catalog.geometry import normalize_batch

    x = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    with torch.inference_mode():
        logits = [model(normalize_batch(x[i : i + 128], config)) for i in range(0, len(x), 128)]
    return torch.cat(logits).argmax(1).numpy()


def score_tag(tag: str, repeats: int) -> dict[str, Any]:
    """Speed, pixel agreement and macro-F1 of each decode path for one shipped tag."""
    import datasets
    import timm
    from sklearn.metrics import f1_score

    import timm_galaxy_attn
    from timm_galaxy_attn.catalog.geometry import ModelPixels
    from timm_galaxy_attn.data import load_galaxy_dataset
    from timm_galaxy_attn.metrics import paired_bootstrap_difference

    metrics = json.loads((Path(timm_galaxy_attn.pretrained_path(tag)) / "metrics.json").read_text())
    split = load_galaxy_dataset(metrics["dataset"], seed=metrics["split_seed"])["validation"]
    rows = split.cast_column("image", datasets.Image(decode=False))
    blobs = [row["image"]["bytes"] for row in rows]
    if not all(b[:2] == b"\xff\xd8" for b in blobs):
        raise RuntimeError(f"the {metrics['dataset']} validation images are not all JPEG files")
    labels = np.asarray(split["label"])
    model = timm.create_model(tag, pretrained=True).eval()
    config = timm.data.resolve_model_data_config(model)
    decoders = _decoders(ModelPixels(config))
    out: dict[str, Any] = {"n": len(blobs), "paths": {}}
    pixels, preds, ms = {}, {}, {}
    for name in PATHS:
        pixels[name], ms[name] = _timed(decoders[name], blobs, repeats)
        preds[name] = _predictions(model, pixels[name], config)
    k = len(model.pretrained_cfg["label_names"])
    for name in PATHS:
        diff = paired_bootstrap_difference(labels, preds[name], preds["pil"], n_boot=1000, num_classes=k)
        same = [np.array_equal(a, b) for a, b in zip(pixels[name], pixels["pil"], strict=True)]
        out["paths"][name] = {
            "ms_per_image": ms[name],
            "speedup_vs_pil": ms["pil"] / ms[name],
            "images_with_pil_pixels": int(np.sum(same)),
            "max_abs_pixel_diff": int(np.abs(pixels[name].astype(np.int16) - pixels["pil"]).max()),
            "changed_predictions": int((preds[name] != preds["pil"]).sum()),
            "macro_f1": float(
                f1_score(labels, preds[name], average="macro", labels=range(k), zero_division=0)
            ),
            "macro_f1_minus_pil": dict(zip(("diff", "lo", "hi"), diff["macro_f1"], strict=True)),
        }
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "JPEG decode + crop to the model's pixels, gz1_sdss validation (423 px JPEGs), "
        f"{results['machine']}; macro-F1 difference to PIL with its paired 95% bootstrap interval "
        "(1000 resamples).",
        "",
        "| tag | path | ms / image | speed-up vs PIL | PIL's pixels | changed predictions | macro-F1 | "
        "difference [95% CI] |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for tag, res in results["tags"].items():
        for name, r in res["paths"].items():
            d = r["macro_f1_minus_pil"]
            lines.append(
                f"| {tag} | {name} | {r['ms_per_image']:.2f} | {r['speedup_vs_pil']:.2f}x | "
                f"{r['images_with_pil_pixels']} / {res['n']} | {r['changed_predictions']} | "
                f"{100 * r['macro_f1']:.1f} | {100 * d['diff']:+.1f} "
                f"[{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}] |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    import simplejpeg
    import torch

    from timm_galaxy_attn.pretrained import SHIPPED_TAGS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per path (the best counts)")
    args = parser.parse_args()
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "versions": {"simplejpeg": simplejpeg.__version__, "pillow": __import__("PIL").__version__},
        "tags": {tag: score_tag(tag, args.repeats) for tag in SHIPPED_TAGS},
    }
    write_report(RESULTS, "jpeg_decode", results, markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
