"""What a run reports: the record and line of each epoch, metrics.json and the closing summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import TrainConfig
from .loop import EpochStats

__all__ = ["epoch_line", "epoch_record", "final_metrics", "summary"]


def epoch_record(epoch: int, stats: EpochStats, val: dict[str, Any], lr: float) -> dict[str, Any]:
    """The history entry of ``epoch``: training loss/accuracy, validation scores, lr, speed.

    Args:
        epoch: The epoch (1-based).
        stats: The epoch's training sums (:class:`.loop.EpochStats`).
        val: The validation scores (:func:`.loop.score`).
        lr: The learning rate at the end of the epoch (first parameter group).
    """
    totals = stats.totals
    return {
        "epoch": epoch,
        "train_loss": float(totals[0] / max(totals[2], 1)),
        "train_accuracy": float(totals[1] / max(totals[2], 1)),
        "val_accuracy": val["accuracy"],
        "val_macro_f1": val["macro_f1"],
        "val_balanced_accuracy": val["balanced_accuracy"],
        "val_ece": val["ece"],
        "val_n": val["n"],
        "lr": lr,
        "images_per_s": stats.images / max(stats.seconds, 1e-9),
    }


def epoch_line(record: dict[str, Any]) -> str:
    """The line printed after each epoch."""
    return (
        f"epoch {record['epoch']}: train loss {record['train_loss']:.4f} acc {record['train_accuracy']:.4f}"
        f" | val acc {record['val_accuracy']:.4f} macro-F1 {record['val_macro_f1']:.4f} bal-acc "
        f"{record['val_balanced_accuracy']:.4f} | {record['images_per_s']:.0f} img/s"
    )


def final_metrics(
    cfg: TrainConfig,
    state: dict[str, Any],
    scores: dict[str, dict[str, Any]],
    data: dict[str, Any],
    model: dict[str, Any],
    run: dict[str, Any],
) -> dict[str, Any]:
    """metrics.json of a finished run.

    Args:
        cfg: The run's config.
        state: The trainer state (history, training time and images).
        scores: ``test`` and ``validation`` scores of the best epoch.
        data: ``dataset_tag``, ``label_names``, ``split``, ``n`` and ``data_config``.
        model: ``best_epoch``, ``finetune`` and ``num_params``.
        run: ``num_processes``, ``wall_time_s`` and ``machine`` (what it ran on, in words).
    """
    return {
        "test": scores["test"],
        "validation": scores["validation"],
        "best_epoch": model["best_epoch"],
        "selection": "epoch with the highest validation macro_f1; test scored once with its weights",
        "dataset": cfg.dataset,
        "dataset_tag": data["dataset_tag"],
        "label_names": data["label_names"],
        "split": data["split"],
        "n": data["n"],
        "seed": cfg.seed,
        "split_seed": cfg.split_seed,
        "image_size": data["data_config"]["input_size"][-1],
        "data_config": data["data_config"],
        "model": cfg.model,
        "finetune": model["finetune"],
        "num_params": model["num_params"],
        "recipe": cfg.recipe,
        "epochs": cfg.epochs,
        "num_processes": run["num_processes"],
        "machine": run["machine"],
        "mixed_precision": cfg.mixed_precision,
        "train_time_s": state["train_time_s"],
        "wall_time_s": run["wall_time_s"],
        "images_per_s": state["train_images"] / max(state["train_time_s"], 1e-9),
        "history": state["history"],
        "command": cfg.command,
        "config": cfg.to_dict(),
    }


def summary(metrics: dict[str, Any], best_macro_f1: float, out: Path, heatmaps: bool) -> str:
    """The closing message: the best epoch, its test scores and where every output is.

    Args:
        metrics: The run's metrics.json.
        best_macro_f1: The best validation macro-F1.
        out: The run folder.
        heatmaps: Whether attention heatmaps were drawn.
    """
    test = metrics["test"]
    return (
        f"\nBest epoch {metrics['best_epoch']} of {metrics['epochs']} (validation macro-F1 "
        f"{best_macro_f1:.4f}). "
        f"Test: accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f}, balanced accuracy "
        f"{test['balanced_accuracy']:.4f}, ECE {test['ece']:.4f} (n={test['n']}); "
        f"{metrics['wall_time_s'] / 60:.1f} min, {metrics['images_per_s']:.0f} train images/s.\n"
        f"  metrics:     {out / 'metrics.json'}\n"
        f"  confusion:   {out / 'confusion_matrix.png'}\n"
        + (f"  heatmaps:    {out / 'attention'}/epoch_NNN.png\n" if heatmaps else "")
        + f"  model:       {out / 'model'}  (timm.create_model('local-dir:{out / 'model'}'))\n"
        f"  tensorboard: tensorboard --logdir {out / 'tensorboard'}"
    )
