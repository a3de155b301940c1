"""training/train.py loaded as a module and an in-process runner for the training tests."""

from __future__ import annotations

from conftest import load_script

train = load_script("training/train.py", "galaxy_train_script")


def run_train(argv: list[str]) -> int:
    """Run the script in this process (a fresh accelerate state each time)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return train.main(argv)
