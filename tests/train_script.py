"""training/train.py loaded as a module, and an in-process runner: shared by the training tests."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from conftest import REPO_ROOT


def load_train_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("galaxy_train_script", REPO_ROOT / "training" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train = load_train_module()


def run_train(argv: list[str]) -> int:
    """Run the script in this process (a fresh accelerate state each time)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return train.main(argv)
