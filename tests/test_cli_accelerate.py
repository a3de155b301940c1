"""``accelerate launch -m timm_galaxy_attn predict``: two CPU processes (gloo) equal one process."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from conftest import accelerate_launcher, assert_same_catalog, run_predict_process

from timm_galaxy_attn.cli import main


@pytest.mark.slow
def test_two_processes_give_the_same_rows_as_one(cli_setup, tmp_path):
    root, folder, images = cli_setup
    one = tmp_path / "one.parquet"
    assert (
        main(
            [
                "predict",
                str(images),
                "--model",
                str(folder),
                "--out",
                str(one),
                "--batch-size",
                "2",
                "--no-progress",
            ]
        )
        == 1
    )
    two = tmp_path / "two.parquet"
    launcher = accelerate_launcher(2)
    result = run_predict_process(
        [str(images), "--model", str(folder), "--out", str(two), "--batch-size", "2", "--no-progress"],
        launcher=launcher,
    )
    assert result.returncode != 0  # one broken image: non-zero exit, as with one process
    assert "10 rows" in result.stderr and "1 failed" in result.stderr, result.stderr[-3000:]
    assert_same_catalog(pq.read_table(one), pq.read_table(two))
