"""benchmarks/run_progress.py: per-epoch validation numbers and hours read back from a TensorBoard log."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_script
from torch.utils.tensorboard import SummaryWriter

progress = load_script("benchmarks/run_progress.py", "bench_run_progress")


def test_epochs_read_back_with_hours_and_speed(tmp_path: Path) -> None:
    writer = SummaryWriter(str(tmp_path / "tensorboard"))
    writer.add_scalar("train/loss_step", 2.0, 1, walltime=1000.0)
    for epoch, (f1, hours) in enumerate([(0.2, 0.5), (0.4, 1.25)], start=1):
        when = 1000.0 + hours * 3600
        writer.add_scalar("val/accuracy", 0.5 + f1, epoch, walltime=when)
        writer.add_scalar("val/macro_f1", f1, epoch, walltime=when)
        writer.add_scalar("val/balanced_accuracy", f1 + 0.1, epoch, walltime=when)
        writer.add_scalar("train/images_per_s", 10.0 * epoch, epoch, walltime=when)
    writer.close()
    rows = progress.epochs_of(tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert [r["hours"] for r in rows] == [0.5, 1.25]
    assert rows[1]["macro_f1"] == pytest.approx(0.4) and rows[1]["balanced_accuracy"] == pytest.approx(0.5)
    assert rows[0]["accuracy"] == pytest.approx(0.7) and rows[1]["train_images_per_s"] == 20.0


def test_a_folder_without_a_log_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no TensorBoard log"):
        progress.epochs_of(tmp_path)
