"""Do a shipped folder's metrics change when its weights are stored in fp16 or bf16?

    python benchmarks/weights_dtype.py timm_galaxy_attn/pretrained/galaxy_attn_vgg_tiny_s4.gz1_sdss
    python benchmarks/weights_dtype.py FOLDER --write fp16     # then store fp16, if no metric changed

The folder's weights as stored and rounded to each storage dtype (then loaded into float32, as timm and
transformers load them) score the folder's dataset (validation and test of its split seed) in float32; the
table gives accuracy, balanced accuracy, macro-F1, the share of images whose class changes and the largest
logit change. ``--write DTYPE`` rewrites the folder's ``model.safetensors`` in that dtype only when no
prediction changed on either split. Results: ``benchmarks/results/weights_dtype/<folder name>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "weights_dtype"
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _logits(model: torch.nn.Module, x: torch.Tensor, config: dict[str, Any]) -> torch.Tensor:
    from timm_galaxy_attn.data import normalize_batch

    with torch.inference_mode():
        return torch.cat([model(normalize_batch(x[i : i + 128], config)) for i in range(0, len(x), 128)])


def _scores(logits: torch.Tensor, y: torch.Tensor, names: Sequence[str]) -> dict[str, float]:
    from timm_galaxy_attn.metrics import compute_classification_metrics

    m = compute_classification_metrics(y.numpy(), logits.argmax(1).numpy(), label_names=list(names))
    return {k: float(m[k]) for k in ("accuracy", "balanced_accuracy", "macro_f1")}


def measure(folder: Path, dtypes: Sequence[str]) -> dict[str, Any]:
    """Scores of the stored weights and of each storage dtype on the folder's validation and test split."""
    import safetensors.torch
    import timm

    from timm_galaxy_attn.data import load_galaxy_dataset, prepare_tensors

    metrics = json.loads((folder / "metrics.json").read_text())
    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    config = timm.data.resolve_model_data_config(model)
    names = model.pretrained_cfg["label_names"]
    splits = load_galaxy_dataset(metrics["dataset"], seed=metrics["split_seed"])
    data = {s: prepare_tensors(splits[s], config) for s in ("validation", "test")}
    stored = safetensors.torch.load_file(str(folder / "model.safetensors"))
    reference = {s: _logits(model, x, config) for s, (x, _) in data.items()}
    out: dict[str, Any] = {
        "stored_dtype": str(next(v.dtype for v in stored.values() if v.is_floating_point())),
        "weights": {},
    }
    for name in ("stored", *dtypes):
        if name != "stored":
            model.load_state_dict(
                {k: v.to(DTYPES[name]) if v.is_floating_point() else v for k, v in stored.items()}
            )
        row = {}
        for split, (x, y) in data.items():
            logits = reference[split] if name == "stored" else _logits(model, x, config)
            row[split] = _scores(logits, y, names)
            row[split]["changed_predictions"] = float(
                (logits.argmax(1) != reference[split].argmax(1)).float().mean()
            )
            row[split]["max_abs_logit_change"] = float((logits - reference[split]).abs().max())
        out["weights"][name] = row
    out["n"] = {s: len(y) for s, (_, y) in data.items()}
    out["machine"] = f"{platform.processor() or platform.machine()}, torch {torch.__version__}"
    return out


def markdown(folder: Path, res: dict[str, Any]) -> str:
    lines = [
        f"{folder.name} (stored {res['stored_dtype']}; validation n={res['n']['validation']}, test "
        f"n={res['n']['test']}; float32 compute)\n",
        "| weights | split | accuracy | balanced acc. | macro-F1 | predictions changed | max logit change |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in res["weights"].items():
        for split in ("validation", "test"):
            r = row[split]
            lines.append(
                f"| {name} | {split} | {100 * r['accuracy']:.2f} | {100 * r['balanced_accuracy']:.2f} | "
                f"{100 * r['macro_f1']:.2f} | {100 * r['changed_predictions']:.2f}% | "
                f"{r['max_abs_logit_change']:.2g} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="a model folder with metrics.json (a shipped folder)")
    p.add_argument("--dtypes", nargs="+", default=["fp16", "bf16"], choices=sorted(DTYPES))
    p.add_argument(
        "--write", choices=sorted(DTYPES), help="store the weights in this dtype if nothing changed"
    )
    args = p.parse_args(argv)
    import timm_galaxy_attn  # noqa: F401  (registers the models)
    from timm_galaxy_attn._io import atomic_write
    from timm_galaxy_attn.hf import recast_folder_weights

    if not (args.folder / "metrics.json").is_file():
        print(f"error: {args.folder} has no metrics.json (not a shipped model folder)", file=sys.stderr)
        return 2
    dtypes = sorted(set(args.dtypes) | ({args.write} if args.write else set()))
    res = measure(args.folder, dtypes)
    text = markdown(args.folder, res)
    print(text)
    atomic_write(
        RESULTS / f"{args.folder.name}.json", lambda t: t.write_text(json.dumps(res, indent=2) + "\n")
    )
    atomic_write(RESULTS / f"{args.folder.name}.md", lambda t: t.write_text(text))
    if args.write:
        changed = [
            s for s in ("validation", "test") if res["weights"][args.write][s]["changed_predictions"] > 0
        ]
        if changed:
            print(
                f"error: {args.write} changes predictions on {', '.join(changed)}: not written",
                file=sys.stderr,
            )
            return 1
        recast_folder_weights(args.folder, DTYPES[args.write])
        print(f"{args.folder}/model.safetensors now stored in {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
