"""The installed wheel, offline, outside the checkout: every tag loads (with its vote head where it ships
one), the pipeline and the CLI classify, embed and find similar galaxies.

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
    from timm_galaxy_attn.vote_head import VOTE_HEAD_FILE

    for name in (*SHIPPED_TAGS, "galaxy_attn_vgg"):
        model = timm.create_model(name, pretrained=True)
        print(f"  timm.create_model({name!r}, pretrained=True): {model.pretrained_cfg['tag']}, OK")
    for tag in SHIPPED_TAGS:
        if (timm_galaxy_attn.pretrained_path(tag) / VOTE_HEAD_FILE).is_file():
            model = timm.create_model(tag, pretrained=True, vote_head=True)
            questions = len(model.vote_head.heads)
            print(f"  timm.create_model({tag!r}, pretrained=True, vote_head=True): {questions} questions")
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
    emb, near = Path("emb.parquet"), Path("near.csv")
    proc = subprocess.run([str(cli), "embed", str(examples), "--out", str(emb), "--no-progress"], text=True)
    assert proc.returncode == 0, f"galaxy-attn embed exited {proc.returncode}"
    proc = subprocess.run([str(cli), "similar", str(emb), "--query-row", "3", "-k", "4", "--out", str(near)])
    assert proc.returncode == 0 and len(near.read_text().splitlines()) == 5, f"galaxy-attn similar: {proc}"
    print(f"  galaxy-attn embed + similar: {pq.read_table(emb).num_rows} embeddings, 4 neighbours of row 3")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
