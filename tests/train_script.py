"""training/train.py loaded as a module, an in-process runner and the tiny synthetic run of the training
tests."""

from __future__ import annotations

from conftest import load_script

train = load_script("training/train.py", "galaxy_train_script")


def run_train(argv: list[str]) -> int:
    """Run the script in this process (a fresh accelerate state each time)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return train.main(argv)


def tiny_args(train_images: int, batch_size: int, per_class: int = 10, *extra: str) -> list[str]:
    """The arguments of a tiny run: the synthetic set at 32 px, ``train_images`` training images."""
    return [
        "--dataset", "synthetic", "--synthetic-per-class", str(per_class), "--max-train-samples",
        str(train_images), "--image-size", "32", "--batch-size", str(batch_size), *extra,
    ]  # fmt: skip
