"""training/train.py under ``accelerate launch --multi_gpu --num_processes 2`` (gloo on CPU).

Metrics are gathered over both processes exactly once (gather_for_metrics drops the padding of the last
batch), so the counts in metrics.json equal those of a one-process run; only the main process writes.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import accelerate_launcher, tiny_args
from train_script import run_train

REPO_ROOT = Path(__file__).resolve().parents[1]
# 11 validation / test images: not a multiple of 2 processes x eval batch 4, so padding must be dropped
TINY = tiny_args(
    32, 8, 11, "--epochs", "1", "--eval-batch-size", "4", "--num-heatmaps", "2", "--mixed-precision", "no"
)


@pytest.mark.slow
def test_two_processes_give_the_counts_of_one(tmp_path: Path, dataset_cache: Path) -> None:
    env = dict(
        os.environ,
        GALAXY_ATTN_CACHE=str(dataset_cache),
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
    )
    two = tmp_path / "two"
    proc = subprocess.run(
        [
            *accelerate_launcher(2),
            str(REPO_ROOT / "training" / "train.py"),
            *TINY,
            "--output-dir",
            str(two),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    m2 = json.loads((two / "metrics.json").read_text())
    assert m2["num_processes"] == 2

    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    one = tmp_path / "one"
    assert run_train([*TINY, "--output-dir", str(one)]) == 0
    m1 = json.loads((one / "metrics.json").read_text())
    assert m1["num_processes"] == 1

    assert m1["n"] == m2["n"] == {"train": 32, "validation": 11, "test": 11}
    for split in ("test", "validation"):
        cm1, cm2 = np.array(m1[split]["confusion_matrix"]), np.array(m2[split]["confusion_matrix"])
        assert cm1.sum() == cm2.sum() == 11 == m2[split]["n"]
        assert (cm1.sum(1) == cm2.sum(1)).all()  # the same true labels, each counted once
        assert m2[split]["accuracy"] == pytest.approx(np.trace(cm2) / cm2.sum())
    assert m1["history"][0]["val_n"] == m2["history"][0]["val_n"] == 11
    p2 = np.load(two / "predictions.npz")
    assert p2["test_logits"].shape == (11, 10) and p2["val_logits"].shape == (11, 10)
    p1 = np.load(one / "predictions.npz")
    assert (p1["test_labels"] == p2["test_labels"]).all()  # the same examples, in the same order
    # every image of the epoch trained once: 32 images in global batches of 2 x 8
    assert m2["history"][0]["train_accuracy"] * 32 == pytest.approx(
        round(m2["history"][0]["train_accuracy"] * 32)
    )
    # one writer: one TensorBoard run, one checkpoint, one model folder
    assert len(list((two / "tensorboard").glob("events.out.tfevents.*"))) == 1
    ckpt = sorted((two / "checkpoints").glob("step_*"))
    assert [c.name for c in ckpt] == ["step_00000002"]
    assert sorted(p.name for p in ckpt[0].glob("random_states_*.pkl")) == [
        "random_states_0.pkl",
        "random_states_1.pkl",
    ]
    assert (two / "model" / "model.safetensors").is_file()
