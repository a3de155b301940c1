"""Picture of synthetic galaxies beside the real Galaxy10 DECaLS examples, one column per class.

    python benchmarks/synthetic_vs_real.py --out docs/synthetic_vs_real.png

Row 1: the real examples in ../shared/data/galaxy10_decals_examples (256 px, shown at --tile px).
Rows 2..: synthetic images of the same class from make_synthetic_galaxies (--size px), enlarged to
--tile; the last row shows one synthetic image per class at 32 px (the paper's input size) enlarged.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from timm_galaxy_attn._io import atomic_write
from timm_galaxy_attn.data import make_synthetic_galaxies
from timm_galaxy_attn.data.sources import find_shared_data
from timm_galaxy_attn.labels import GALAXY10_DECALS_CLASSES

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "synthetic_vs_real.png"))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rows", type=int, default=3, help="synthetic rows")
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    t0 = time.perf_counter()
    syn = make_synthetic_galaxies(args.rows, args.size, seed=args.seed)
    print(f"rendered {len(syn)} synthetic images in {time.perf_counter() - t0:.2f} s")
    real_dir = find_shared_data("galaxy10_decals_examples")
    real = sorted(real_dir.glob("*.png"))
    tile, label_h = args.tile, 14
    n_rows = 1 + args.rows + 1
    canvas = Image.new("RGB", (10 * tile, n_rows * (tile + label_h)), "white")
    draw = ImageDraw.Draw(canvas)
    for cls, name in enumerate(GALAXY10_DECALS_CLASSES):
        x = cls * tile
        draw.text((x + 2, 1), f"real {cls}: {name[:17]}", fill="black")
        canvas.paste(Image.open(real[cls]).convert("RGB").resize((tile, tile), Image.BICUBIC), (x, label_h))
        picks = np.flatnonzero(syn.labels == cls)
        for row, i in enumerate(picks[: args.rows], start=1):
            y = row * (tile + label_h)
            draw.text((x + 2, y + 1), f"synthetic {cls} ({args.size}px)", fill="black")
            canvas.paste(Image.fromarray(syn.images[i]).resize((tile, tile), Image.BICUBIC), (x, y + label_h))
        y = (n_rows - 1) * (tile + label_h)
        small = Image.fromarray(syn.images[picks[0]]).resize((32, 32), Image.BILINEAR)
        draw.text((x + 2, y + 1), f"synthetic {cls} at 32px", fill="black")
        canvas.paste(small.resize((tile, tile), Image.NEAREST), (x, y + label_h))
    out = atomic_write(args.out, lambda tmp: canvas.save(tmp, format="PNG"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
