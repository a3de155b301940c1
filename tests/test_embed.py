"""Tests of catalog embeddings (`galaxy-attn embed`) and neighbour search (`galaxy-attn similar`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import timm
import torch
from PIL import Image

import timm_galaxy_attn  # noqa: F401  (registers the models)
from timm_galaxy_attn.catalog import load_model, predict, read_embeddings, run, similar
from timm_galaxy_attn.cli import main
from timm_galaxy_attn.data import eval_transform
from timm_galaxy_attn.hf import save_pretrained_folder

TAG = "galaxy_attn_vgg_tiny_s4.gz1_sdss"  # the shipped weights: 128 px from the central half, 384-d
N_GOOD = 7
BAD = 3  # the index of the broken file (folders are sorted)


def _galaxy(rng: np.random.Generator, size: int = 160) -> np.ndarray:
    """A blob with random shape, colour and noise, so that embeddings differ."""
    yy, xx = np.mgrid[:size, :size] - size / 2 + rng.normal(0, 8, 2)[:, None, None]
    a, b, t = rng.uniform(6, 30), rng.uniform(4, 20), rng.uniform(0, np.pi)
    r2 = ((xx * np.cos(t) + yy * np.sin(t)) / a) ** 2 + ((yy * np.cos(t) - xx * np.sin(t)) / b) ** 2
    img = np.exp(-r2)[..., None] * rng.uniform(80, 255, 3) + rng.normal(0, 12, (size, size, 3))
    return img.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("embed") / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_GOOD):
        Image.fromarray(_galaxy(rng)).save(folder / f"g{i if i < BAD else i + 1:02d}.png")
    (folder / f"g{BAD:02d}.png").write_bytes(b"\x89PNG broken")
    return folder


@pytest.fixture(scope="module")
def catalog(images, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("emb") / "emb.parquet"
    predict(images, TAG, out=out, embeddings=True, precision="fp32", batch_size=3, progress=False)
    return out


def test_the_embedding_is_the_classifier_input(images, catalog):
    table = pq.read_table(catalog)
    meta = json.loads(table.schema.metadata[b"galaxy_attn"])
    assert meta["embedding"]["dim"] == 384 and meta["model"] == TAG
    assert table.schema.field("embedding").type.list_size == 384
    df = table.to_pandas()
    assert df["embedding"][BAD] is None and "not an image" in df["error"][BAD]  # an error row, no vector
    model = load_model(TAG).model
    transform = eval_transform(timm.data.resolve_model_data_config(model))
    with torch.no_grad():
        x = transform(Image.open(images / "g04.png"))[None]
        direct = model.forward_head(model.forward_features(x), pre_logits=True)[0]
        probs = model.get_classifier()(direct).softmax(-1)
    np.testing.assert_allclose(df["embedding"][4], direct.numpy(), atol=1e-5)
    np.testing.assert_allclose(df.filter(like="prob_").iloc[4].to_numpy(float), probs.numpy(), atol=1e-5)


def test_d4_keeps_the_identity_view_embedding(images, catalog):
    inputs = [images / "g00.png", images / "g01.png"]
    tta = predict(inputs, TAG, embeddings=True, tta="d4", precision="fp32", progress=False)
    plain = pq.read_table(catalog).to_pandas()
    for i in range(2):
        np.testing.assert_allclose(tta["embedding"][i], plain["embedding"][i], atol=1e-5)
    assert not np.allclose(tta["prob_elliptical"], plain["prob_elliptical"][:2], atol=1e-4)  # the D4 mean


def test_an_interrupted_embed_resumes_to_the_same_rows(images, catalog, tmp_path, monkeypatch):
    out = tmp_path / "resumed.parquet"
    commit, committed = run.commit_batch, []

    def commit_then_stop(*args, **kwargs):
        committed.append(commit(*args, **kwargs))
        if len(committed) == 2:
            raise KeyboardInterrupt  # what Ctrl-C after the 2nd batch leaves
        return committed[-1]

    monkeypatch.setattr(run, "commit_batch", commit_then_stop)
    kw = dict(out=out, embeddings=True, precision="fp32", progress=False)
    with pytest.raises(KeyboardInterrupt):
        predict(images, TAG, batch_size=3, **kw)
    monkeypatch.setattr(run, "commit_batch", commit)
    assert not out.exists() and len(list(out.with_name(out.name + ".parts").glob("part-*"))) == 2
    summary = predict(images, TAG, batch_size=4, output="none", **kw)
    assert (summary.n_resumed, summary.n_processed) == (6, 2)
    resumed, reference = pq.read_table(out), pq.read_table(catalog)
    assert resumed.schema == reference.schema
    a, b = (t.drop(["embedding"]).to_pandas() for t in (resumed, reference))
    for name in a.columns:  # ids, labels and errors exactly; floats to 1e-6 (other batches)
        if a[name].dtype.kind == "f":
            np.testing.assert_allclose(a[name].to_numpy(), b[name].to_numpy(), atol=1e-6, err_msg=name)
        else:
            assert a[name].equals(b[name]), name
    ra, rb = read_embeddings(out), read_embeddings(catalog)
    np.testing.assert_allclose(ra.vectors, rb.vectors, atol=1e-6)
    with pytest.raises(FileExistsError, match="different run"):  # predict without embeddings: another run
        predict(images, TAG, out=out, precision="fp32", progress=False)


def test_similar_finds_the_row_and_the_image(images, catalog):
    cat = read_embeddings(catalog)
    assert len(cat.vectors) == N_GOOD and cat.n_rows == N_GOOD + 1 and BAD not in cat.rows["index"].tolist()
    for row in (0, 5):
        df = similar(catalog, query_row=row, k=3)
        assert df["index"][0] == row and abs(df["distance"][0]) < 1e-6
        assert df["rank"].tolist() == [1, 2, 3] and df["distance"].is_monotonic_increasing
    by_image = similar(catalog, query=images / "g05.png", k=N_GOOD)  # embedded again, as the rows were
    assert by_image["index"][0] == 5 and abs(by_image["distance"][0]) < 1e-5
    assert sorted(by_image["index"]) == sorted(cat.rows["index"])


def test_similar_cli_table_and_out(catalog, tmp_path, capsys):
    out = tmp_path / "nn.csv"
    assert main(["similar", str(catalog), "--query-row", "2", "-k", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[:3] == ["rank", "index", "source"] and len(printed) == 5
    assert out.read_text().splitlines()[1].startswith("1,2,")


def test_clear_errors_never_a_traceback(images, catalog, tmp_path, capsys):
    plain = tmp_path / "plain.parquet"
    predict([images / "g00.png"], TAG, out=plain, progress=False)
    other = save_pretrained_folder(timm.create_model(TAG), tmp_path / "other_model")  # other (random) weights
    k3 = ["-k", "3"]
    cases = [
        (["similar", str(plain), "--query-row", "0"], "no 'embedding' column"),
        (["similar", str(tmp_path / "none.parquet"), "--query-row", "0"], "does not exist"),
        (["similar", str(catalog), *k3, "--query", str(images / f"g{BAD:02d}.png")], "cannot be used"),
        (["similar", str(catalog), *k3, "--query", str(tmp_path / "nope.png")], "does not exist"),
        (["similar", str(catalog), "--query-row", "0", "-k", "50"], "choose 1 to 7"),
        (["similar", str(catalog), *k3, "--query-row", str(BAD)], "has no embedding"),
        (["similar", str(catalog), *k3, "--query-row", "99"], "has rows 0..7"),
        (
            ["similar", str(catalog), *k3, "--query", str(images / "g00.png"), "--model", str(other)],
            "mismatch",
        ),
        (
            ["similar", str(catalog), "--query-row", "0", "--out", str(tmp_path / "n.txt")],
            ".csv or .parquet",
        ),
        (["embed", str(images), "--out", str(tmp_path / "e.csv")], "CSV cannot hold"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    with pytest.raises(SystemExit):  # a query is required
        main(["similar", str(catalog)])
