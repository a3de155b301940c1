"""Does D4 test-time augmentation help a shipped model on *validation* (where a choice may be made)?

    python benchmarks/tta_validation.py [galaxy_attn_vgg_tiny_s4.gz1_sdss ...] [--out FILE]

Scores the gz1_sdss validation split (split seed 0) with one view and with the mean of the 8 D4 views
(mirror label swap undone), fp32, at each tag's own data config; prints accuracy, balanced accuracy and
macro-F1 (%) of both and stores them, with 95% bootstrap intervals (200 resamples) and the data config, in
``benchmarks/results/tta_validation.json`` under the tag (other tags' entries are kept). The shipped
folders set ``tta`` in config.json from this comparison (docs/hub.md cites the file).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import timm
import torch
from _common import write_json
from accuracy import plain_and_d4_probs
from accuracy_scores import score_predictions, softmax

import timm_galaxy_attn
from timm_galaxy_attn.data import load_galaxy_dataset, prepare_tensors
from timm_galaxy_attn.labels import MIRROR_LABEL_SWAPS
from timm_galaxy_attn.pretrained import DEFAULT_TAG

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "tta_validation.json"
METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
N_BOOT = 200


def score_tag(tag: str) -> dict[str, Any]:
    """One view against D4 TTA on gz1_sdss validation for the shipped weights ``tag``."""
    model = timm.create_model(tag, pretrained=True).eval()
    config = timm.data.resolve_model_data_config(model)
    x, y = prepare_tensors(load_galaxy_dataset("gz1_sdss", seed=0)["validation"], config)
    with torch.inference_mode():
        plain, tta = plain_and_d4_probs(model, x, config, MIRROR_LABEL_SWAPS["gz1_sdss"], bf16=False)
    names = model.pretrained_cfg["label_names"]
    entry: dict[str, Any] = {"n": int(len(y)), "data_config": dict(config)}  # tuples become JSON lists
    for key, probs in (("one_view", softmax(plain)), ("d4_tta", tta)):
        s = score_predictions(y.numpy(), probs, names, n_boot=N_BOOT)
        entry[key] = {**{k: s[k] for k in METRICS}, "ci95": s["ci95"]}
    return entry


def store(path: Path, tag: str, entry: dict[str, Any]) -> Path:
    """``entry`` under ``tag`` in the results file ``path`` (atomic; other tags kept)."""
    old = json.loads(path.read_text()) if path.exists() else {}
    result = {
        "dataset": "gz1_sdss",
        "split": "validation",
        "split_seed": 0,
        "precision": "fp32",
        "bootstrap_resamples": N_BOOT,
        "timm_galaxy_attn_version": timm_galaxy_attn.__version__,
        "tags": {**old.get("tags", {}), tag: entry},
    }
    return write_json(path, result)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tags", nargs="*", default=[DEFAULT_TAG], help="shipped tags to score")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results file (JSON)")
    args = parser.parse_args(argv)
    for tag in args.tags:
        entry = score_tag(tag)
        for key, name in (("one_view", "one view"), ("d4_tta", "D4 TTA")):
            print(
                f"{tag} validation, {name}: " + ", ".join(f"{k} {100 * entry[key][k]:.2f}" for k in METRICS)
            )
        print(f"wrote {store(args.out, tag, entry)}")


if __name__ == "__main__":
    main()
