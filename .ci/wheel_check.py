"""The installed wheel, offline, outside the checkout: every tag loads, the pipeline and the CLI classify.

Run by ``.ci/run`` with the Python of an environment that holds the wheel, from an empty working directory,
with ``HF_HUB_OFFLINE=1`` and an empty Hugging Face cache:

    python wheel_check.py CHECKOUT EXAMPLES_DIR
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main(checkout: Path, examples: Path) -> None:
    import timm
    from transformers import pipeline

    import timm_galaxy_attn
    from timm_galaxy_attn.pretrained import DEFAULT_TAG, SHIPPED_TAGS

    where = Path(timm_galaxy_attn.__file__).resolve()
    assert checkout not in where.parents, f"imported from the checkout ({where}), not from the wheel"
    print(f"timm_galaxy_attn {timm_galaxy_attn.__version__} from {where.parent}")
    assert sorted(timm.list_pretrained("galaxy_attn*")) == sorted(SHIPPED_TAGS)
    for name in (*SHIPPED_TAGS, "galaxy_attn_vgg"):
        model = timm.create_model(name, pretrained=True)
        print(f"  timm.create_model({name!r}, pretrained=True): {model.pretrained_cfg['tag']}, OK")
    classify = pipeline("image-classification", model=str(timm_galaxy_attn.pretrained_path(DEFAULT_TAG)))
    pictures = sorted(examples.glob("*.png"))
    assert len(pictures) == 10, pictures
    for picture, result in zip(pictures, classify([str(p) for p in pictures]), strict=True):
        print(f"  pipeline {picture.name}: {result[0]['label']} ({result[0]['score']:.2f})")
    import pyarrow.parquet as pq

    out = Path("catalogue.parquet")
    cli = Path(sys.executable).with_name("galaxy-attn")
    proc = subprocess.run([str(cli), "predict", str(examples), "--out", str(out), "--no-progress"], text=True)
    assert proc.returncode == 0, f"galaxy-attn predict exited {proc.returncode}"
    table = pq.read_table(out)
    assert table.num_rows == 10 and table.column("error").null_count == 10, table.slice(0, 3).to_pylist()
    print(f"  galaxy-attn predict (default model {DEFAULT_TAG}): {table.num_rows} rows, no error")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
