"""Build the Kaggle Galaxy Zoo 2 datasets ``gz2_kaggle`` and ``gz2_kaggle_spiral`` from public repositories.

    python scripts/build_gz2_kaggle.py --download --out runs/data        # git clone both, then build
    python scripts/build_gz2_kaggle.py --pellegrini ~/src/Galaxy-zoo --cosmic ~/src/Cosmic-Compendium

Writes ``<out>/gz2_kaggle/data.parquet``, ``<out>/gz2_kaggle_spiral/data.parquet`` and ``<out>/build.json``
(sizes, class balance, duplicates with gz1_sdss per split). Load them with
``load_galaxy_dataset("gz2_kaggle", path="<out>")`` or ``GZ2_KAGGLE_DIR=<out>``. See docs/data_gz2.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from timm_galaxy_attn.data.gz2_kaggle import COSMIC, PELLEGRINI, build_gz2_kaggle
from timm_galaxy_attn.data.sources import resolve_gz1_sdss


def clone(url: str, dest: Path) -> Path:
    """A bare clone of ``url`` with its whole history (the images are in past commits)."""
    if not dest.exists():
        subprocess.run(["git", "clone", "--bare", "--quiet", url, str(dest)], check=True)
    return dest


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pellegrini", type=Path, help=f"local clone of {PELLEGRINI.url}")
    ap.add_argument("--cosmic", type=Path, help=f"local clone of {COSMIC.url}")
    ap.add_argument("--download", action="store_true", help="git clone missing repositories to <out>/raw")
    ap.add_argument("--out", type=Path, default=Path("runs/data"), help="output folder (default runs/data)")
    ap.add_argument("--gz1-sdss", type=Path, help="gz1_sdss data.parquet (default: the project's lookup)")
    ap.add_argument("--no-gz1", action="store_true", help="skip the duplicate search against gz1_sdss")
    ap.add_argument("--gz1-seed", type=int, default=0, help="seed of the gz1_sdss split to respect")
    ap.add_argument("--cache-dir", type=Path, help="load_galaxy_dataset cache for the gz1_sdss split")
    args = ap.parse_args(argv)
    repos = {}
    for key, src in (("pellegrini", PELLEGRINI), ("cosmic", COSMIC)):
        given = getattr(args, key)
        if given is None and not args.download:
            ap.error(f"--{key} PATH (a clone of {src.url}) or --download is needed")
        repos[key] = given or clone(src.url, args.out / "raw" / (src.name.replace("/", "+") + ".git"))
    gz1 = None if args.no_gz1 else resolve_gz1_sdss(args.gz1_sdss)
    report = build_gz2_kaggle(
        repos["pellegrini"], repos["cosmic"], args.out, gz1, gz1_seed=args.gz1_seed, cache_dir=args.cache_dir
    )
    summary = {k: v for k, v in report.items() if k != "duplicates"}
    print(json.dumps(summary, indent=2))
    return report


if __name__ == "__main__":
    main()
