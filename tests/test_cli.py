"""Tests of the ``galaxy-attn`` command line: exit codes, kill-and-rerun resume, two processes."""

from __future__ import annotations

import signal

import pyarrow.parquet as pq
import pytest
from conftest import assert_same_catalog, run_predict_process

import timm_galaxy_attn  # noqa: F401
from timm_galaxy_attn.cli import main


def test_exit_codes(cli_setup, tmp_path, capsys):
    root, folder, images = cli_setup
    good = [str(images / "g00.png"), str(images / "g01.png")]
    assert (
        main(
            ["predict", *good, "--model", str(folder), "--out", str(tmp_path / "a.parquet"), "--no-progress"]
        )
        == 0
    )
    assert "2 rows" in capsys.readouterr().err
    bad = [*good, str(images / "g04.png")]
    assert (
        main(["predict", *bad, "--model", str(folder), "--out", str(tmp_path / "b.parquet"), "--no-progress"])
        == 1
    )
    err = capsys.readouterr().err
    assert "3 rows" in err and "1 failed" in err and "not an image" in err
    assert pq.read_table(tmp_path / "b.parquet").num_rows == 3  # the failed row is written too
    missing = main(
        ["predict", str(tmp_path / "nope.png"), "--model", str(folder), "--out", str(tmp_path / "c.parquet")]
    )
    assert missing == 2 and "does not exist" in capsys.readouterr().err
    no_weights = main(
        ["predict", *good, "--model", "galaxy_attn_vgg_small", "--out", str(tmp_path / "d.csv")]
    )
    assert no_weights == 2 and "--allow-random-weights" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", *good, "--model", str(folder), "--out", str(tmp_path / "e.csv"), "--tta", "d8"])


@pytest.mark.slow
def test_sigkill_and_rerun_give_the_same_catalog(cli_setup, tmp_path, capsys):
    root, folder, images = cli_setup
    reference = tmp_path / "reference.parquet"
    assert (
        main(["predict", str(images), "--model", str(folder), "--out", str(reference), "--batch-size", "3"])
        == 1
    )
    out = tmp_path / "killed.parquet"
    args = [str(images), "--model", str(folder), "--out", str(out), "--batch-size", "3", "--no-progress"]
    killed = run_predict_process(args, kill_after=2)  # SIGKILL right after the 2nd batch is committed
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    parts = out.with_name(out.name + ".parts")
    assert not out.exists() and len(list(parts.glob("part-*.parquet"))) == 2
    (parts / ".part-000000000006-000000000009.parquet.tmp-1").write_bytes(b"half a batch")  # in flight
    assert main(["predict", *args[:-1], "--batch-size", "4"]) == 1  # other batch size: gaps still exact
    assert "4 predicted now, 6 already written" in capsys.readouterr().err
    assert not parts.exists()
    assert_same_catalog(pq.read_table(out), pq.read_table(reference))
