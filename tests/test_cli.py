"""Tests of the ``galaxy-attn`` command line: exit codes, kill-and-rerun resume, two processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import timm
import torch
from PIL import Image

import timm_galaxy_attn  # noqa: F401
from timm_galaxy_attn.cli import main
from timm_galaxy_attn.hf import save_pretrained_folder

N_IMAGES = 10
KILL_AFTER = Path(__file__).with_name("kill_after.py")  # SIGKILLs a run after N committed batches


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = timm.create_model("galaxy_attn_vgg_small")  # Galaxy10 DECaLS' class names
    with torch.no_grad():
        model.fc.weight.mul_(50)
    folder = save_pretrained_folder(model, root / "model")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(images / f"g{i:02d}.png")
    (images / "g04.png").write_bytes(b"\x89PNG broken")
    return root, folder, images


def _run(args: list[str], kill_after: int | None = None, launcher: list[str] | None = None):
    """``galaxy-attn predict ARGS`` in a subprocess (``launcher``: e.g. ``accelerate launch ...``);
    ``kill_after``: each process SIGKILLs itself after committing that many batches."""
    cmd = launcher or [sys.executable]
    if kill_after is None:
        cmd = [*cmd, "-m", "timm_galaxy_attn", "predict", *args]
    else:
        cmd = [*cmd, str(KILL_AFTER), str(kill_after), "--", "predict", *args]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=240)


def _assert_same_catalog(a, b) -> None:
    """Same rows in the same order: exact for ids, labels and errors; floats to 1e-6 (batching may differ)."""
    assert a.schema == b.schema and a.num_rows == b.num_rows
    for name in a.column_names:
        x, y = a.column(name).to_pandas(), b.column(name).to_pandas()
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x.to_numpy(), y.to_numpy(), atol=1e-6, err_msg=name)
        else:
            assert x.equals(y), name


def test_exit_codes(setup, tmp_path, capsys):
    root, folder, images = setup
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
def test_sigkill_and_rerun_give_the_same_catalog(setup, tmp_path, capsys):
    root, folder, images = setup
    reference = tmp_path / "reference.parquet"
    assert (
        main(["predict", str(images), "--model", str(folder), "--out", str(reference), "--batch-size", "3"])
        == 1
    )
    out = tmp_path / "killed.parquet"
    args = [str(images), "--model", str(folder), "--out", str(out), "--batch-size", "3", "--no-progress"]
    killed = _run(args, kill_after=2)  # SIGKILL right after the 2nd batch is committed
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    parts = out.with_name(out.name + ".parts")
    assert not out.exists() and len(list(parts.glob("part-*.parquet"))) == 2
    (parts / ".part-000000000006-000000000009.parquet.tmp-1").write_bytes(b"half a batch")  # in flight
    assert main(["predict", *args[:-1], "--batch-size", "4"]) == 1  # other batch size: gaps still exact
    assert "4 predicted now, 6 already written" in capsys.readouterr().err
    assert not parts.exists()
    _assert_same_catalog(pq.read_table(out), pq.read_table(reference))
