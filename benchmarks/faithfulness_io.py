"""Loading the validation galaxies and writing the results of benchmarks/faithfulness.py (the JSON merged
with what is on disk, the tables, the figures drawn from the stored curves and the doc's generated block)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import faithfulness_findings as findings
import faithfulness_report as report
from _common import write_json, write_text


def images_needed(args: argparse.Namespace) -> int | None:
    """How many validation images the real-galaxy parts asked for need (None: all of them)."""
    if args.quick:
        return 24
    if "pictures" in args.parts or ("decision" in args.parts and args.decision_images is None):
        return None  # the pictures take one galaxy per class, some classes are rare
    sizes = {"deletion": args.images, "randomisation": args.random_images, "road": args.road_images}
    sizes["decision"] = args.decision_images or 0
    return max((n for k, n in sizes.items() if k in args.parts), default=0) or None


def validation(data_config: dict[str, Any], limit: int | None):
    """(uint8 images, labels, class names) of the first ``limit`` gz1_sdss validation galaxies (split seed 0),
    decoding only those; and the size of the whole split."""
    from timm_galaxy_attn.data import load_galaxy_dataset, prepare_tensors

    ds = load_galaxy_dataset("gz1_sdss", seed=0)["validation"]
    names = list(ds.features["label"].names)
    total = len(ds)
    if limit is not None and limit < total:
        ds = ds.select(range(limit))
    x, y = prepare_tensors(ds, data_config)
    return x, y.numpy(), names, total


def write_results(args: argparse.Namespace, new: dict[str, Any]) -> str:
    """Merge ``new`` into the JSON as it is now on disk (another run may have written parts since this one
    started), then rewrite the tables and, for the stored results, the generated block of the doc."""
    path = args.out / "faithfulness.json"
    res = json.loads(path.read_text()) if path.is_file() and not args.quick else {}
    provenance = {**res.get("provenance", {}), **new.pop("provenance", {})}
    res.update(new)
    res["provenance"] = provenance
    write_json(path, res)  # first: a failing report below leaves the results on disk
    text = report.markdown(res)
    write_text(args.out / "faithfulness.md", text)
    doc = args.docs / "faithfulness.md"
    if doc.is_file() and not args.quick:
        write_text(doc, findings.update_doc(doc.read_text(), findings.render(res)))
    if "deletion" in res:
        report.curves_figure(res["deletion"], args.docs / "faithfulness_curves.png")
    if "road" in res:
        report.road_figure(res["road"], args.docs / "faithfulness_road.png")
    return text
