"""The catalog on several processes and as shards: ``accelerate launch`` (gloo on CPU) and ``--shard K/N``
give the rows of one run, and parts that killed processes left behind resume."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import torch
from conftest import N_IMAGES, accelerate_launcher, assert_same_catalog, run_predict_process

from timm_galaxy_attn.catalog import PredictOptions, predict, run
from timm_galaxy_attn.catalog.options import split_block
from timm_galaxy_attn.catalog.parts import pending_ranges, read_meta
from timm_galaxy_attn.cli import main

BROKEN = 4  # g04.png of the cli_setup does not decode


def _args(images: Path, folder: Path, out: Path, *extra: str) -> list[str]:
    return [
        str(images),
        "--model",
        str(folder),
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--no-progress",
        *extra,
    ]


@pytest.fixture(scope="module")
def whole(cli_setup, tmp_path_factory):
    """The one-process catalog of the cli_setup's images."""
    _, folder, images = cli_setup
    out = tmp_path_factory.mktemp("whole") / "whole.parquet"
    assert main(["predict", *_args(images, folder, out)]) == 1  # one broken image
    return pq.read_table(out)


def test_blocks_and_pending_ranges():
    blocks = [split_block(3, 13, k, 3) for k in range(3)]
    assert blocks == [(3, 7), (7, 10), (10, 13)]  # contiguous, the first (13 - 3) % 3 one longer
    assert [split_block(0, 2, k, 4) for k in range(4)] == [(0, 1), (1, 2), (2, 2), (2, 2)]
    done = [False, True, False, False, False, True, False]
    assert pending_ranges(10, 17, done, 2) == [(10, 11), (12, 14), (14, 15), (16, 17)]
    assert pending_ranges(0, 3, [True] * 3, 2) == []


@pytest.mark.slow
def test_shards_together_are_the_whole_run(cli_setup, whole, tmp_path, capsys):
    _, folder, images = cli_setup
    outs = [tmp_path / f"shard{k}.parquet" for k in range(3)]
    codes = [
        main(["predict", *_args(images, folder, out, "--shard", f"{k}/3")]) for k, out in enumerate(outs)
    ]
    assert codes == [0, 1, 0]  # the broken image is in the second shard only
    assert [pq.read_metadata(out).num_rows for out in outs] == [4, 3, 3]
    assert read_meta(outs[1])["shard"] == {"index": 1, "count": 3, "rows": [4, 7]}
    combined = ds.dataset([str(out) for out in outs], format="parquet").to_table().sort_by("index")
    assert_same_catalog(combined, whole)
    assert "shard" not in json.loads(whole.schema.metadata[b"galaxy_attn"])  # unsharded: no shard key
    capsys.readouterr()
    assert main(["predict", *_args(images, folder, outs[0], "--shard", "1/3")]) == 2  # another shard's run
    assert "different run" in capsys.readouterr().err
    empty = tmp_path / "empty.parquet"  # more shards than inputs: an empty catalog, with its empty maps
    assert (
        main(["predict", *_args(images, folder, empty, "--shard", f"{N_IMAGES}/{N_IMAGES + 1}", "--maps")])
        == 0
    )
    assert pq.read_table(empty).num_rows == 0


@pytest.mark.parametrize("bad", ["3/2", "x", "1/0", "-1/2", "1/2/3"])
def test_a_bad_shard_is_a_one_line_error(cli_setup, bad, tmp_path, capsys):
    _, folder, images = cli_setup
    with pytest.raises(SystemExit) as stop:
        main(["predict", *_args(images, folder, tmp_path / "x.parquet", f"--shard={bad}")])
    assert stop.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "argument --shard" in errors[0] and "is not a shard K/N" in errors[0]
    with pytest.raises(ValueError, match="is not a shard K/N"):
        PredictOptions(shard=bad)


def _fake_process(monkeypatch, rank: int, world: int) -> None:
    """Make run_predict see process ``rank`` of ``world`` (barriers do nothing) on the CPU."""
    state = SimpleNamespace(
        process_index=rank, num_processes=world, is_main_process=rank == 0, wait_for_everyone=lambda: None
    )
    monkeypatch.setattr(run, "_process_state", lambda device: (state, torch.device("cpu")))


def test_a_shard_split_between_processes_gives_its_rows(cli_setup, whole, tmp_path, monkeypatch):
    """Shard 1/2 (rows 5..9) on two processes, run one after the other: rank 1 commits its parts first,
    then the main process its own and merges."""
    _, folder, images = cli_setup
    out = tmp_path / "s1.parquet"
    kw = dict(out=out, shard="1/2", batch_size=2, progress=False, output="arrow")
    _fake_process(monkeypatch, 1, 2)
    assert predict(images, folder, **kw) is None and not out.exists()
    assert sorted(p.name for p in out.with_name(out.name + ".parts").glob("part-*")) == [
        "part-000000000008-000000000010.parquet"
    ]
    _fake_process(monkeypatch, 0, 2)
    table = predict(images, folder, **kw)
    assert_same_catalog(table, whole.slice(5, 5))


@pytest.mark.slow
def test_two_processes_killed_then_resumed_give_the_rows_of_one(cli_setup, whole, tmp_path):
    _, folder, images = cli_setup
    launcher = accelerate_launcher(2)
    out = tmp_path / "two.parquet"
    killed = run_predict_process(
        _args(images, folder, out), kill_after=2, launcher=launcher
    )  # each after its 2nd batch
    assert killed.returncode != 0, killed.stderr[-3000:]
    parts = list(out.with_name(out.name + ".parts").glob("part-*.parquet"))
    assert not out.exists() and 2 <= len(parts) <= 4, (parts, killed.stderr[-3000:])  # of 6 batches
    resumed = run_predict_process(_args(images, folder, out), launcher=launcher)
    assert resumed.returncode != 0  # the broken image: exit status 1, as with one process
    assert f"{N_IMAGES} rows" in resumed.stderr and "1 failed" in resumed.stderr, resumed.stderr[-3000:]
    counts = re.search(r"(\d+) predicted now, (\d+) already written", resumed.stderr)
    assert counts and (int(counts[1]), int(counts[2])) == (N_IMAGES - 2 * len(parts), 2 * len(parts))
    assert_same_catalog(pq.read_table(out), whole)


def test_options_are_checked_where_they_are_built(cli_setup, tmp_path, capsys):
    _, folder, images = cli_setup
    with pytest.raises(TypeError, match="Unknown option.*batchsize.*the options are: tta"):
        predict(images, folder, batchsize=2)
    with pytest.raises(ValueError, match="tta='d8' is not supported; choose one of 'none', 'd4'"):
        PredictOptions(tta="d8")
    assert main(["predict", *_args(images, folder, tmp_path / "x.parquet"), "--batch-size", "0"]) == 2
    assert "batch_size=0 is too small; give at least 1" in capsys.readouterr().err
