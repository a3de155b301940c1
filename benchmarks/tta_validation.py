"""Does D4 test-time augmentation help a shipped model on *validation* (where a choice may be made)?

    python benchmarks/tta_validation.py galaxy_attn_vgg_tiny_s4.gz1_sdss

Scores the gz1_sdss validation split (split seed 0) with one view and with the mean of the 8 D4 views
(mirror label swap undone), fp32; prints accuracy, balanced accuracy and macro-F1 (%) of both. The shipped
folders set ``tta`` in config.json from this comparison.
"""

from __future__ import annotations

import sys

import timm
import torch
from accuracy import d4_probs, score_predictions, softmax

import timm_galaxy_attn  # noqa: F401  (registers the models)
from timm_galaxy_attn.data import load_galaxy_dataset, prepare_tensors
from timm_galaxy_attn.labels import MIRROR_LABEL_SWAPS


def main(tag: str) -> None:
    model = timm.create_model(tag, pretrained=True).eval()
    config = timm.data.resolve_model_data_config(model)
    x, y = prepare_tensors(load_galaxy_dataset("gz1_sdss", seed=0)["validation"], config)
    with torch.inference_mode():
        plain, tta = d4_probs(model, x, config, MIRROR_LABEL_SWAPS["gz1_sdss"], bf16=False)
    names = model.pretrained_cfg["label_names"]
    for name, probs in (("one view", softmax(plain)), ("D4 TTA", tta)):
        s = score_predictions(y.numpy(), probs, names, n_boot=200)
        print(f"{tag} validation, {name}: " + ", ".join(f"{k} {100 * s[k]:.2f}" for k in s["ci95"]))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "galaxy_attn_vgg_tiny_s4.gz1_sdss")
