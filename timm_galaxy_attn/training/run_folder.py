"""The run folder (``--output-dir``): refusing to overwrite, resume checks, the config and the final outputs.

``train_config.json`` (the resolved config) is written first; ``metrics.json``, written last, marks a
complete run. See ``training/train.py`` for the whole layout.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

import timm_galaxy_attn
from timm_galaxy_attn._io import atomic_write, replace_dir

from ._json import write_json
from .config import TrainConfig
from .errors import TrainingError

__all__ = [
    "CONFIG_NAME",
    "RESUME_FREE",
    "TB_NAMES",
    "prepare_output_dir",
    "save_model_folder",
    "write_outputs",
]

CONFIG_NAME = "train_config.json"
# Options that may differ when resuming (they do not change what is computed).
RESUME_FREE = {"resume", "output_dir", "stop_after_steps", "log_every", "eval_batch_size", "cpu", "compile"}
# Keys of an epoch record -> TensorBoard tags.
TB_NAMES = {
    "train_loss": "train/loss",
    "train_accuracy": "train/accuracy",
    "val_accuracy": "val/accuracy",
    "val_macro_f1": "val/macro_f1",
    "val_balanced_accuracy": "val/balanced_accuracy",
    "val_ece": "val/ece",
    "lr": "train/lr_epoch",
    "images_per_s": "train/images_per_s",
}


def _check_resume_arguments(saved: dict[str, Any], typed: dict[str, Any], saved_path: Path) -> None:
    """Options typed on a --resume must be the run's own (except those in RESUME_FREE)."""
    clash = {
        k: (saved.get(k), v)
        for k, v in typed.items()
        if v is not None and k not in RESUME_FREE and k in saved and saved[k] != v
    }
    if clash:
        lines = ", ".join(
            f"--{k.replace('_', '-')} {new!r} (run has {old!r})" for k, (old, new) in clash.items()
        )
        raise TrainingError(
            f"--resume with different arguments: {lines}. Resume with the run's own arguments "
            f"(see {saved_path}), or start a new --output-dir."
        )


def prepare_output_dir(cfg: TrainConfig, typed: dict[str, Any]) -> TrainConfig | None:
    """Refuse to overwrite another run; on --resume, return the run's saved config (checking the options).

    Args:
        cfg: The config of the options typed (``output_dir``, ``resume`` and the RESUME_FREE ones).
        typed: The options typed on the command line, checked against a resumed run's own.

    Returns:
        ``cfg`` for a new run; the saved config (with this session's RESUME_FREE options) on --resume;
        None when the run to resume is already complete.
    """
    out = Path(cfg.output_dir)
    saved_path = out / CONFIG_NAME
    if not cfg.resume:
        if out.exists() and any(out.iterdir()):
            raise TrainingError(
                f"Output dir {out} already holds files (a previous run?). Pass --resume to continue that "
                "run, or choose a new --output-dir; nothing was overwritten."
            )
        return cfg
    if not saved_path.is_file():
        raise TrainingError(
            f"--resume: {out} holds no run ({CONFIG_NAME} missing); start it without --resume."
        )
    saved = json.loads(saved_path.read_text())
    _check_resume_arguments(saved, typed, saved_path)
    if (out / "metrics.json").is_file():
        print(f"The run in {out} is already complete (metrics.json exists); nothing to do.")
        return None
    saved.update({k: getattr(cfg, k) for k in RESUME_FREE})
    return TrainConfig.from_mapping(saved)


def save_model_folder(
    model: nn.Module, folder: Path, label_names: list[str], data_config: dict[str, Any]
) -> None:
    """Write ``folder`` (config.json + model.safetensors) loadable by ``timm.create_model("local-dir:...")``.

    galaxy_attn_vgg models go through ``timm_galaxy_attn.hf.save_pretrained_folder`` (one folder for timm and
    transformers); other timm models through timm's ``save_for_hf`` (timm keys only). Both write atomically.

    Args:
        model: The trained model (fp32, CPU).
        folder: The folder to write (replaced).
        label_names: The class names, saved in the config.
        data_config: The preprocessing the model was trained with.
    """
    if isinstance(model, timm_galaxy_attn.GalaxyAttnVGG):
        from timm_galaxy_attn.hf import save_pretrained_folder

        save_pretrained_folder(
            model, folder, label_names=label_names, data_config=data_config, overwrite=True
        )
        return
    from timm.models import save_for_hf

    model.pretrained_cfg = {**model.pretrained_cfg, **data_config}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        save_for_hf(
            model,
            str(tmp),
            model_config={"label_names": list(label_names)},
            data_config=data_config,
            safe_serialization=True,
        )
        replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_predictions(path: Path, **arrays: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would add .npz to the temporary name
            np.savez_compressed(f, **arrays)

    atomic_write(path, write)


def write_outputs(
    out: Path,
    metrics: dict[str, Any],
    model: nn.Module,
    data_config: dict[str, Any],
    val_logits: np.ndarray,
    val_labels: np.ndarray,
    test_logits: np.ndarray,
    test_labels: np.ndarray,
) -> None:
    """confusion_matrix.png, predictions.npz, model/ and, last (it marks a complete run), metrics.json.

    Args:
        out: The run folder.
        metrics: The run's metrics.json (:func:`.report.final_metrics`).
        model: The unwrapped model with the best epoch's weights.
        data_config: The run's data config.
        val_logits: Validation logits.
        val_labels: Validation labels.
        test_logits: Test logits.
        test_labels: Test labels.
    """
    from timm_galaxy_attn.viz import plot_confusion_matrix

    label_names = metrics["label_names"]
    plot_confusion_matrix(
        np.asarray(metrics["test"]["confusion_matrix"]),
        label_names,
        out / "confusion_matrix.png",
        title=f"{metrics['model']} on {metrics['dataset']} (test)",
    )
    _write_predictions(
        out / "predictions.npz",
        val_logits=val_logits,
        val_labels=val_labels,
        test_logits=test_logits,
        test_labels=test_labels,
        test_probs=torch.softmax(torch.from_numpy(test_logits).double(), 1).numpy(),
        label_names=np.array(label_names),
    )
    model = model.float().cpu().to(memory_format=torch.contiguous_format)  # plain fp32 CPU tensors on disk
    save_model_folder(model, out / "model", label_names, data_config)
    write_json(out / "metrics.json", metrics)
