"""``accelerate launch -m timm_galaxy_attn predict``: two CPU processes (gloo) equal one process."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_cli import _assert_same_catalog, _run
from test_cli import setup as setup  # noqa: F401  (a fixture)

from timm_galaxy_attn.cli import main


@pytest.mark.slow
def test_two_processes_give_the_same_rows_as_one(setup, tmp_path):  # noqa: F811
    root, folder, images = setup
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
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    launcher = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launcher += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    result = _run(
        [str(images), "--model", str(folder), "--out", str(two), "--batch-size", "2", "--no-progress"],
        launcher=launcher,
    )
    assert result.returncode != 0  # one broken image: non-zero exit, as with one process
    assert "10 rows" in result.stderr and "1 failed" in result.stderr, result.stderr[-3000:]
    _assert_same_catalog(pq.read_table(one), pq.read_table(two))
