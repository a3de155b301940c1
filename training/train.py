"""Train a galaxy classifier (``galaxy_attn_vgg*`` or any timm model) with accelerate.

One process (CPU, one GPU)::

    python training/train.py --dataset synthetic --model galaxy_attn_vgg_small --epochs 10 \\
        --output-dir runs/syn

Many processes (CPU via gloo, several GPUs, several nodes)::

    accelerate launch --multi_gpu --num_processes 2 training/train.py --dataset gz1_sdss ... \\
        --output-dir runs/gz1

What a run writes into ``--output-dir``:

- ``train_config.json``: the resolved configuration (``TrainConfig``: recipe values, overridden by the
  options typed), parsed and checked once before anything is written;
- ``checkpoints/step_NNNNNNNN/``: ``Accelerator.save_state`` plus ``trainer_state.json`` (epoch, step,
  history), written into a temporary folder and renamed, so a kill while saving keeps the previous one;
  ``checkpoints/best.safetensors``: the weights of the best epoch on validation macro-F1;
- ``tensorboard/``: accelerate's TensorBoard tracker; ``attention/epoch_NNN.png``: attention heatmaps of
  the same validation galaxies after every epoch (galaxy_attn_vgg models with attention);
- at the end, the best epoch scored once on test: ``metrics.json``, ``confusion_matrix.png``,
  ``predictions.npz`` (validation and test logits, for calibration and bootstrap without retraining) and
  ``model/`` (config.json + model.safetensors with the label names, ``timm.create_model("local-dir:...")``).

Data: the split is decoded once into uint8 tensors (``prepare_tensors``) at the data config of the dataset:
the ``galaxy_attn_vgg.<dataset>`` pretrained config (crop, mean, std) where that tag exists, for every model,
so baselines see the same pixels; for other sources (synthetic, your own files) the same config with the whole
image kept (``crop_pct=1``). ``--image-size`` and ``--crop-pct`` override it. Training batches are augmented
on the fly (``BatchAugment``: rotations, flips with the mirror label swap), evaluation batches only
normalised (``normalize_batch``). ``--joint gz2_kaggle gz2_kaggle_spiral`` adds the Galaxy Zoo 2 training
images and a vote-fraction head to a gz1_sdss run (``training/joint.py``, docs/pretraining.md).

Fine-tuning (``--pretrained``): ``--model`` names trained weights (a tag such as
``galaxy_attn_vgg_tiny_s4.gz1_sdss``, ``local-dir:FOLDER`` or ``hf-hub:ORG/NAME``); the model starts from
them with a fresh classifier for the dataset's classes (``reset_classifier``), and the data config (input
size, crop, mean/std) is the weights' own pretrained_cfg. ``--freeze-backbone`` trains the head only: the
classifier and the attention estimators (their vectors u choose where the network looks; a few hundred
parameters), with every BatchNorm of the frozen backbone kept in eval mode; ``--backbone-lr-scale F`` gives
the pretrained non-head parameters the learning rate ``lr * F`` (their own optimizer parameter groups).

Continuing (``--initial-checkpoint FOLDER``): the run builds ``--model`` with its options and starts from
these weights, classifier and vote head included, on a schedule of its own: how training goes on in a later
session from weights that outlive the run's checkpoints (a shipped tag's folder). ``--resume`` continues a run
exactly; this does not (optimizer moments, schedule and data order start anew).

Determinism: the data order of epoch ``e`` is a permutation drawn from ``(seed, e)`` and the torch RNG is
re-seeded from ``(seed, epoch, step, process)`` before each step, so a resumed run replays exactly what an
uninterrupted run does.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader

import timm_galaxy_attn
from timm_galaxy_attn.device import accelerate_mixed_precision, has_accelerator, machine_description
from timm_galaxy_attn.training import (
    Splits,
    TrainConfig,
    TrainingError,
    build_scheduler,
    create_model,
    finetune_model,
    joint,
    load_best,
    load_pretrained,
    load_splits,
    make_optimizer,
    parse_args,
    resolve_config,
    save_best,
    save_checkpoint,
    step_batches,
    validate_config,
)
from timm_galaxy_attn.training._json import dumps, write_json
from timm_galaxy_attn.training.checkpoints import BEST_NAME, resume_state
from timm_galaxy_attn.training.data import make_eval_loader
from timm_galaxy_attn.training.heatmaps import heatmap_indices, save_heatmaps
from timm_galaxy_attn.training.loop import Trainer, predict, score, train_epoch
from timm_galaxy_attn.training.models import has_attention, load_initial_checkpoint
from timm_galaxy_attn.training.report import epoch_line, epoch_record, final_metrics, summary
from timm_galaxy_attn.training.run_folder import (
    CONFIG_NAME,
    TB_NAMES,
    prepare_output_dir,
    write_outputs,
)


def resolve_run(argv: Sequence[str] | None) -> tuple[TrainConfig, nn.Module | None] | None:
    """The run's config, parsed and checked once, and its pretrained model (--pretrained); None if the run
    to resume is already complete.

    A resumed run takes its saved config. Every check runs before anything is created."""
    typed = parse_args(argv)
    cfg = prepare_output_dir(resolve_config(typed), typed)  # resumed: the run's own config
    if cfg is None:
        return None
    validate_config(cfg)
    base = load_pretrained(cfg)  # resumed: the weights the run started from (its checkpoint replaces them)
    if not cfg.resume:
        command = "train.py " + shlex.join(list(sys.argv[1:] if argv is None else argv))
        cfg = dataclasses.replace(cfg, command=command, timm_galaxy_attn_version=timm_galaxy_attn.__version__)
    return cfg, base


def build_accelerator(cfg: TrainConfig, out: Path) -> tuple[Accelerator, TrainConfig]:
    """The Accelerator (mixed precision settled for this device); a new run's train_config.json."""
    # accelerate forms a gloo process group on CPU only when told it runs on CPU: so say so when this machine
    # has no accelerator (then `accelerate launch --multi_gpu --num_processes N` gives N CPU processes).
    cpu = cfg.cpu or not has_accelerator()
    cfg = dataclasses.replace(cfg, mixed_precision=accelerate_mixed_precision(cfg.mixed_precision, cpu=cpu))
    accelerator = Accelerator(
        cpu=cpu,
        mixed_precision=cfg.mixed_precision,
        log_with="tensorboard",
        project_dir=str(out),
        step_scheduler_with_optimizer=False,
    )
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        if not cfg.resume:
            write_json(out / CONFIG_NAME, cfg.to_dict())
    accelerator.print("Resolved configuration:\n" + dumps(cfg.to_dict()))
    return accelerator, cfg


def build_model(
    cfg: TrainConfig, base: nn.Module | None, data: Splits, accelerator: Accelerator
) -> tuple[nn.Module, dict[str, Any] | None, bool, int]:
    """The model (fresh, or the pretrained one with a new head), its fine-tuning summary, attention, size."""
    set_seed(cfg.seed)
    if base is None:
        model, finetune = create_model(cfg, data.tag, data.num_classes), None
        if cfg.initial_checkpoint and not cfg.resume:  # resumed: the checkpoint replaces these weights
            fresh = load_initial_checkpoint(model, cfg.initial_checkpoint)
            accelerator.print(
                f"Continuing the weights of {cfg.initial_checkpoint}"
                + (f" ({len(fresh)} vote-head tensors start fresh: none beside them)" if fresh else "")
            )
    else:
        model, finetune = finetune_model(base, data.num_classes, cfg)
    attention = has_attention(model)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    n_params = sum(p.numel() for p in model.parameters())
    accelerator.print(
        f"Model: {cfg.model} ({n_params / 1e6:.2f} M parameters)"
        + ("" if attention else "; no attention estimators, so no heatmaps are drawn")
        + (f"; fine-tuning {finetune}" if finetune else "")
    )
    return model, finetune, attention, n_params


def build_trainer(
    cfg: TrainConfig, model: nn.Module, data: Splits, accelerator: Accelerator
) -> tuple[Trainer, DataLoader, DataLoader]:
    """Optimizer, LR schedule and loss; model, optimizer, scheduler and evaluation loaders prepared."""
    train_x, train_y = data.tensors["train"]
    world = accelerator.num_processes
    optimizer = make_optimizer(model, cfg)
    epoch_images = torch.arange(joint.train_epoch_length(cfg, data))  # --joint: gz1_sdss's + joint draw
    steps_per_epoch = len(step_batches(epoch_images, cfg.batch_size * world, world))
    if steps_per_epoch == 0:
        raise TrainingError(
            f"{len(train_y)} training images cannot fill one step of {world} processes; use fewer processes."
        )
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    criterion = joint.make_criterion(cfg, data)  # --joint: GZ1 cross-entropy + vote loss (training/joint.py)
    val_loader = make_eval_loader(*data.tensors["validation"], cfg.eval_batch_size)
    test_loader = make_eval_loader(*data.tensors["test"], cfg.eval_batch_size)
    model, optimizer, scheduler, val_loader, test_loader = accelerator.prepare(
        model, optimizer, scheduler, val_loader, test_loader
    )
    forward = torch.compile(model) if cfg.compile else model  # evaluation stays eager
    criterion = criterion.to(accelerator.device)
    trainer = Trainer(
        accelerator, model, forward, optimizer, scheduler, criterion, data.augment, train_x, train_y,
        data.num_classes, cfg, data.train_votes, data.train_sources,
    )  # fmt: skip
    return trainer, val_loader, test_loader


@dataclasses.dataclass
class Run:
    """One session of a run: its config and folder, data, trainer, evaluation loaders and state."""

    cfg: TrainConfig
    out: Path
    data: Splits
    trainer: Trainer
    val_loader: DataLoader
    test_loader: DataLoader
    state: dict[str, Any]
    heatmaps: bool
    started: float  # time.time() at the start of this session
    base_wall: float  # wall time of the sessions before

    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoints"

    def wall_time(self) -> float:
        return self.base_wall + time.time() - self.started

    def checkpoint(self, **updates: Any) -> None:
        """Update the trainer state and save a checkpoint of the whole run."""
        self.state.update(updates, wall_time_s=self.wall_time())
        save_checkpoint(self.trainer.accelerator, self.ckpt_dir, self.state, self.cfg.keep_checkpoints)

    def evaluate(self, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
        t = self.trainer
        return predict(t.accelerator, t.model, loader, self.data.data_config, self.cfg.channels_last)


def fit(run: Run) -> bool:
    """Train the remaining epochs: validation score, best weights, heatmaps and a checkpoint after each.

    False when --stop-after-steps stopped the run."""
    acc, cfg, state, data = run.trainer.accelerator, run.cfg, run.state, run.data
    unwrapped = acc.unwrap_model(run.trainer.model)
    val_x, val_y = data.tensors["validation"]
    heat_idx = heatmap_indices(val_y, cfg.num_heatmaps) if run.heatmaps else []
    for epoch in range(state["epoch"], cfg.epochs):
        stats = train_epoch(run.trainer, epoch, state, run.checkpoint)
        if stats is None:
            acc.print(
                f"Stopping after step {state['global_step']} (--stop-after-steps); continue with --resume."
            )
            return False
        val = score(*run.evaluate(run.val_loader), data.label_names)  # the same on every process
        record = epoch_record(epoch + 1, stats, val, run.trainer.scheduler.get_last_lr()[0])
        state["history"].append(record)
        acc.log({TB_NAMES[k]: v for k, v in record.items() if k in TB_NAMES}, step=epoch + 1)
        acc.print(epoch_line(record))
        if val["macro_f1"] > state["best_macro_f1"]:
            state.update(best_epoch=epoch + 1, best_macro_f1=val["macro_f1"])
            if acc.is_main_process:
                save_best(unwrapped, run.ckpt_dir / BEST_NAME, epoch + 1)
        if run.heatmaps and acc.is_main_process:
            path = run.out / "attention" / f"epoch_{epoch + 1:03d}.png"
            save_heatmaps(
                unwrapped, val_x[heat_idx], val_y[heat_idx], data.data_config, data.label_names, path,
                acc.device, epoch + 1,
            )  # fmt: skip
        run.checkpoint(epoch=epoch + 1, step_in_epoch=0, epoch_sums=None)
    return True


def finish(run: Run, finetune: dict[str, Any] | None, n_params: int) -> None:
    """The best epoch on validation, scored once on test: metrics.json, predictions, the model folder."""
    acc, state, data = run.trainer.accelerator, run.state, run.data
    if state["best_epoch"] is None:
        raise TrainingError("No epoch was trained (--epochs 0?); nothing to score.")
    unwrapped = acc.unwrap_model(run.trainer.model)
    best_epoch = load_best(unwrapped, run.ckpt_dir / BEST_NAME)
    val_logits, val_labels = run.evaluate(run.val_loader)
    test_logits, test_labels = run.evaluate(run.test_loader)
    if acc.is_main_process:
        scores = {
            "test": score(test_logits, test_labels, data.label_names),
            "validation": score(val_logits, val_labels, data.label_names),
        }
        facts = {
            "dataset_tag": data.tag,
            "label_names": data.label_names,
            "split": data.info,
            "n": {name: int(len(t[1])) for name, t in data.tensors.items()},
            "data_config": data.data_config,
        }
        about = {"best_epoch": best_epoch, "finetune": finetune, "num_params": n_params}
        facts_run = {
            "num_processes": acc.num_processes,
            "wall_time_s": run.wall_time(),
            "machine": machine_description(acc.device),
        }
        metrics = final_metrics(run.cfg, state, scores, facts, about, facts_run)
        logits = (val_logits, val_labels, test_logits, test_labels)
        with joint.detached_vote_head(unwrapped, run.out / "model"):  # model/: the GZ1 classifier only
            write_outputs(run.out, metrics, unwrapped, data.data_config, *logits)
        print(summary(metrics, state["best_macro_f1"], run.out, run.heatmaps))
    acc.wait_for_everyone()


def main(argv: Sequence[str] | None = None) -> int:
    """Train, resume or (already complete) leave a run; 0 when done.

    Args:
        argv: The command line (default: ``sys.argv[1:]``).

    Raises:
        TrainingError: Bad input; the message says how to fix it (the command line prints it, exit code 2).
    """
    started = time.time()
    resolved = resolve_run(argv)
    if resolved is None:
        return 0
    cfg, base = resolved
    out = Path(cfg.output_dir)
    accelerator, cfg = build_accelerator(cfg, out)

    # data: every split decoded once (at the weights' data config when fine-tuning)
    data = load_splits(cfg, accelerator, base)
    if cfg.joint:  # the training splits of the GZ2 sources, for the vote head
        data = joint.add_joint_sources(data, cfg, accelerator)
    accelerator.print(data.describe())

    # model, optimizer, LR schedule, loss, all through accelerate.prepare
    model, finetune, attention, n_params = build_model(cfg, base, data, accelerator)
    trainer, val_loader, test_loader = build_trainer(cfg, model, data, accelerator)

    # resume, trackers, heatmap folder
    state = resume_state(accelerator, cfg.resume, out / "checkpoints", trainer.steps_per_epoch)
    hparams = {k: v for k, v in cfg.to_dict().items() if isinstance(v, (int, float, str, bool))}  # scalars
    accelerator.init_trackers("tensorboard", config=hparams)
    heatmaps = attention and cfg.num_heatmaps > 0
    if heatmaps and accelerator.is_main_process:
        (out / "attention").mkdir(exist_ok=True)
    run = Run(cfg, out, data, trainer, val_loader, test_loader, state, heatmaps, started,
              state.get("wall_time_s", 0.0))  # fmt: skip

    # train, then score the best epoch once on test
    if fit(run):
        finish(run, finetune, n_params)
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TrainingError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
