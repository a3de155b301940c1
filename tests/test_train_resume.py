"""training/train.py: a run stopped mid-epoch and resumed ends with the weights of an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch
from conftest import tiny_args
from train_script import run_train

pytestmark = pytest.mark.usefixtures("dataset_cache")

# fp32 so that "the same" means bit-identical; 48 training images in batches of 16: 3 steps per epoch
TINY = tiny_args(
    48, 16, 10, "--epochs", "2", "--mixed-precision", "no", "--num-heatmaps", "2", "--drop-rate", "0.2"
)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(run / "checkpoints" / "step_00000006" / "model.safetensors"))


@pytest.mark.slow
def test_stop_mid_epoch_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert run_train([*TINY, "--output-dir", str(full)]) == 0

    # stop at global step 5 (epoch 2, step 2 of 3); the last checkpoint is the one of step 4 (every 2 steps)
    assert (
        run_train(
            [*TINY, "--output-dir", str(cut), "--checkpoint-every-steps", "2", "--stop-after-steps", "5"]
        )
        == 0
    )
    assert not (cut / "metrics.json").exists()
    ckpts = sorted(p.name for p in (cut / "checkpoints").glob("step_*"))
    assert ckpts == ["step_00000004"]
    state = json.loads((cut / "checkpoints" / "step_00000004" / "trainer_state.json").read_text())
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 1, 4)  # mid-epoch
    # a kill while writing the next checkpoint leaves a temporary folder: resume ignores and removes it
    partial = cut / "checkpoints" / ".tmp-step_00000006"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half a file")

    assert run_train([*TINY, "--output-dir", str(cut), "--checkpoint-every-steps", "2", "--resume"]) == 0
    assert not partial.exists()

    a, b = weights(full), weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    ma = json.loads((full / "metrics.json").read_text())
    mb = json.loads((cut / "metrics.json").read_text())
    assert ma["test"] == mb["test"] and ma["best_epoch"] == mb["best_epoch"]
    keys = ("train_loss", "train_accuracy", "val_accuracy", "val_macro_f1", "lr")
    assert [[h[k] for k in keys] for h in ma["history"]] == [[h[k] for k in keys] for h in mb["history"]]
    assert sorted(p.name for p in (cut / "attention").glob("*.png")) == ["epoch_001.png", "epoch_002.png"]
