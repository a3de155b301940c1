"""Parameters and GFLOPs per image of each galaxy_attn_vgg variant at the input sizes we use.

Usage: python benchmarks/model_table.py [--json benchmarks/results/model_table.json]

FLOPs are counted with ``torch.utils.flop_counter`` (a multiply-add counts 2): ``forward`` for one
inference, ``train`` for forward + backward. Prints a markdown table (the one in the README).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import timm
from _common import count_flops, write_json

import timm_galaxy_attn  # noqa: F401  (registers the models)

ROWS = [
    # (model, image size, extra model args)
    ("galaxy_attn_vgg", 32, {}),
    ("galaxy_attn_vgg", 64, {}),
    ("galaxy_attn_vgg", 69, {}),
    ("galaxy_attn_vgg", 128, {"stem_stride": 4}),
    ("galaxy_attn_vgg", 256, {"stem_stride": 4}),
    ("galaxy_attn_vgg_small", 32, {}),
    ("galaxy_attn_vgg_small", 64, {}),
    ("galaxy_attn_vgg_small", 64, {"stem_stride": 2}),
    ("galaxy_attn_vgg_small", 69, {}),
    ("galaxy_attn_vgg_small", 128, {"stem_stride": 4}),
    ("galaxy_attn_vgg_small", 256, {"stem_stride": 4}),
    ("galaxy_attn_vgg_tiny_s4", 128, {}),  # stem_stride=4 is preset
    ("galaxy_attn_vgg_tiny_s4", 256, {}),
]


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for name, size, kwargs in ROWS:
        model = timm.create_model(name, num_classes=args.num_classes, **kwargs)
        rows.append(
            dict(
                model=name,
                image_size=size,
                stem_stride=model.stem_stride,
                params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                gflop_forward=count_flops(model.eval(), size, train=False) / 1e9,
                gflop_train=count_flops(model.train(), size, train=True) / 1e9,
            )
        )
    print(f"Parameters at {args.num_classes} classes; GFLOP per image (multiply-add = 2 FLOP).\n")
    print("| model | input px | stem_stride | params (M) | GFLOP forward | GFLOP train (fwd+bwd) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['image_size']} | {r['stem_stride']} | {r['params_m']:.2f} | "
            f"{r['gflop_forward']:.2f} | {r['gflop_train']:.2f} |"
        )
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
