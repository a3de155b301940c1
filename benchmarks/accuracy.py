"""Accuracy on real SDSS galaxies (gz1_sdss), one CPU budget per run: ours, the paper's setup, timm peers.

    python benchmarks/accuracy.py                      # full mode: 15 min of training per run
    python benchmarks/accuracy.py --quick              # the pipeline end to end in a few minutes
    python benchmarks/accuracy.py --report-only        # rebuild the table from stored results
    python benchmarks/accuracy.py --rows ours_small_32s1 paper_vgg_32 --seeds 0 1 2

Every row trains with ``training/train.py`` in a subprocess (one at a time) on the same ``gz1_sdss`` split
(``--split-seed 0``: grouped, stratified, 80/10/10). The model is chosen on validation inside the run (best
epoch by validation macro-F1); test is scored once.

The budget. ``--budget-minutes`` is training time on a *quiet* copy of this 2-core machine. The machine is
shared, so wall time would give whoever runs on a busy minute fewer epochs. Instead each row's training
throughput is calibrated first (``--calibrate``: all rows together, before any training, into
``calibration.json``; CPU time still inflates when other work shares the cores, so calibrate on a quiet
machine): a few optimizer steps of the row's model, recipe batch size, precision and
input size, timed in process CPU seconds divided by the torch thread count (what a quiet machine gives).
``epochs = round(budget * images_per_s / n_train)`` (the nearest whole epoch); a budget smaller than one
epoch trains one epoch on ``budget * images_per_s`` images (``--max-train-samples``).
The calibration, epochs and measured wall time are stored beside each result, so cost is part of the table.

Model selection is on validation only. Several ``ours_*`` candidates (input size, stem stride, compatibility)
run under the same budget; ``best`` in ``--rows`` is the candidate with the highest validation macro-F1
among the stored results at that moment, ``best_peer`` the best timm peer likewise, and ``best_noattn`` the
ablation of ``best`` (attention removed, classifier on g) trained with the very schedule (epochs) of its
parent: a controlled pair. The extra seeds go to ``best`` and ``best_peer``. The table ends with the
verdict on test: does our best beat the paper's setup and each peer by more than the 95% intervals' overlap?
A diagnostic row (``resnet18_64_our_epochs``) trains the peer on our row's schedule, the same number of epochs
rather than the same time: it separates "a better network" from "a cheaper network that sees more epochs".

After a run, the benchmark loads the run's ``model/`` folder and scores the test set again with D4
test-time augmentation (the 8 rotations/mirrors; under a mirror, the clockwise and anticlockwise
probabilities are swapped back, ``labels.MIRROR_LABEL_SWAPS``). Stored per run under
``benchmarks/results/<mode>/<row>/seed<k>/``: the run's ``metrics.json``, ``predictions.npz`` (validation
and test logits, test D4 probabilities, labels; a few tens of kB) and ``bench.json`` (budget, calibration,
epochs, GFLOPs, command). The table is built from those files only (``--report-only``): accuracy,
balanced accuracy and macro-F1 with 95% bootstrap intervals (``metrics.bootstrap_intervals``), their D4 TTA
values, and ECE on test before / after temperature scaling fitted on validation (``metrics.fit_temperature``).
Rows run with several seeds give mean and standard deviation. Run folders (checkpoints, TensorBoard) stay
outside the repository (``--runs-dir``); rows whose stored result exists are skipped (resume), and an
interrupted run continues with ``train.py --resume``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from _common import write_json
from accuracy_report import chirality, report  # noqa: F401  (chirality: for the tests)
from accuracy_rows import (
    ALIASES,
    DATASET,
    DEFAULT_BEST_PEER,  # noqa: F401  (the tests read the defaults from here)
    DEFAULT_ORDER,
    DEFAULT_OUR_BEST,  # noqa: F401
    DEFAULT_RUNS_DIR,
    FULL_BUDGET_MIN,
    QUICK_BUDGET_MIN,
    QUICK_ORDER,
    RESULTS,
    ROOT,
    ROWS,
    SEEDED_ROWS,
    BenchmarkError,
    Row,
    is_complete,
    resolve_row,
    result_dir,
)
from accuracy_run import (
    SplitData,
    build_model,
    forward_gflops,
    load_split,
    plain_and_d4_probs,  # noqa: F401  (tta_validation.py and the tests use it from here)
    plan_epochs,
    recipe_of,
    store_result,
    train_command,
    train_row,
    tta_predictions,
)


def calibrate(row: Row, num_classes: int, images: int = 512, warmup: int = 3) -> float:
    """Training images per second of ``row`` on a quiet machine: CPU seconds of a few optimizer steps
    (about ``images`` images) of the recipe's batch, precision and memory format, over the thread count."""
    import torch

    recipe = recipe_of(row.recipe)
    torch.manual_seed(0)
    model = build_model(row, num_classes).train()
    channels_last = bool(recipe["channels_last"])
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if recipe["optimizer"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    bs = int(recipe["batch_size"])
    # about ``images`` timed images whatever the batch size. The first steps of a model pay for oneDNN kernel
    # creation: with one warmup step, efficientnet_b0 / resnet18 calibrated 2-5x below their training speed.
    steps = max(4, images // bs)
    x = torch.randn(bs, 3, row.image_size, row.image_size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (bs,))
    from timm_galaxy_attn.device import accelerate_mixed_precision

    bf16 = accelerate_mixed_precision(recipe["mixed_precision"], cpu=True) == "bf16"  # as train.py does

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    t0 = time.process_time()
    for _ in range(steps):
        step()
    cpu = time.process_time() - t0
    return steps * bs / (cpu / torch.get_num_threads())


def calibration(
    results_dir: Path, rows: Sequence[Row], num_classes: int, redo: bool = False
) -> dict[str, float]:
    """Calibrated images/s per row, kept in ``results_dir/calibration.json``. Rows missing there (all of
    ``rows`` with ``redo``; other rows' entries are kept) are measured now, one after the other: rows
    calibrated together share the machine's state.
    """
    path = results_dir / "calibration.json"
    known = json.loads(path.read_text()) if path.is_file() else {}
    if redo:
        known = {k: v for k, v in known.items() if k not in {row.name for row in rows}}
    for row in rows:
        if row.name not in known:
            print(f"[{row.name}] calibrating training throughput ...", flush=True)
            known[row.name] = calibrate(row, num_classes)
            print(f"[{row.name}] {known[row.name]:.1f} img/s", flush=True)
            write_json(path, known)
    return known


def _plan(
    row: Row, seed: int, budget_minutes: float, results_dir: Path, run_dir: Path, data: SplitData
) -> dict:
    """The run's schedule: kept from a cut run, copied from the parent row (ablations, the diagnostic) or
    bought by the budget at the calibrated throughput; stored beside the run folder."""
    names = data.dsdict["train"].features["label"].names
    n_train = len(data.dsdict["train"])
    plan_file = run_dir.parent / f"seed{seed}.plan.json"
    if plan_file.is_file():  # a resumed run keeps its plan
        return json.loads(plan_file.read_text())
    schedule_of = row.parent  # a controlled comparison: the parent row's very schedule, one change
    if schedule_of:
        parent = result_dir(results_dir, schedule_of, seed) / "bench.json"
        if not parent.is_file():
            raise BenchmarkError(
                f"{row.name} trains on the schedule of {schedule_of} (seed {seed}): run that row first."
            )
        schedule = json.loads(parent.read_text())
        ips, epochs, max_samples = None, schedule["epochs"], schedule["max_train_samples"]  # uncalibrated
    elif row.epochs is not None:  # a schedule in epochs: nothing to calibrate
        ips, epochs, max_samples = None, row.epochs, None
    else:
        ips = calibration(results_dir, [row], len(names))[row.name]
        epochs, max_samples = plan_epochs(budget_minutes, ips, n_train)
    plan = {
        "budget_minutes": budget_minutes,
        "calibrated_images_per_s": ips,
        "epochs": epochs,
        "max_train_samples": max_samples,
        "gflops": forward_gflops(row, len(names)),
        "n_train": n_train,
        **({"schedule_of": schedule_of} if schedule_of else {}),
    }
    write_json(plan_file, plan)
    return plan


def run_row(
    row: Row, seed: int, budget_minutes: float, results_dir: Path, runs_dir: Path, data: SplitData
) -> Path:
    """Calibrate, train (or resume) ``row`` with ``seed``, add D4 TTA, store the small result files."""
    budget_minutes = row.budget_minutes or budget_minutes
    dest = result_dir(results_dir, row.name, seed)
    run_dir = runs_dir / results_dir.name / row.name / f"seed{seed}"
    plan = _plan(row, seed, budget_minutes, results_dir, run_dir, data)
    cmd = train_command(row, seed, plan, run_dir)
    t0 = time.time()
    metrics = train_row(row, seed, cmd, plan, run_dir)
    print(
        f"[{row.name} seed {seed}] trained in {(time.time() - t0) / 60:.1f} min; test macro-F1 "
        f"{metrics['test']['macro_f1']:.4f}; D4 TTA ...",
        flush=True,
    )
    pred, tta = tta_predictions(run_dir, metrics, data)
    bench = {
        **plan,
        "row": dataclasses.asdict(row),
        "seed": seed,
        "command": " ".join(cmd[1:]).replace(str(ROOT) + "/", ""),
        "run_dir": str(run_dir),
        "benchmark_wall_minutes": (time.time() - t0) / 60,
    }
    store_result(dest, run_dir, {**pred, **tta}, bench)
    return dest


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        help=f"training minutes per run (default {FULL_BUDGET_MIN:g})",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_BUDGET_MIN:g} min per run, one seed: proves the pipeline",
    )
    p.add_argument(
        "--rows",
        nargs="+",
        default=None,
        help=f"rows or aliases ({', '.join(ALIASES)}) to run, in order, each with every --seeds "
        f"(default: {' '.join(DEFAULT_ORDER)} with seed 0, then {' and '.join(SEEDED_ROWS)} with --seeds)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help="seeds (default: 0 with --rows or --quick; 0 1 2 for the seeded rows of the default order)",
    )
    p.add_argument(
        "--results-dir", type=Path, default=None, help="default benchmarks/results/accuracy[_quick|_<B>min]"
    )
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=DEFAULT_RUNS_DIR,
        help="run folders (not kept in git: runs/ is ignored)",
    )
    p.add_argument(
        "--report-only", action="store_true", help="rebuild the table from stored results, train nothing"
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="only measure the throughput of the rows (all, or --rows), together, into calibration.json "
        "(their entries rewritten, others kept); later runs of those rows take their epochs from it",
    )
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--list", action="store_true", help="print the rows and their train.py arguments")
    return p.parse_args(argv)


def default_results_dir(budget: float, quick: bool) -> Path:
    if quick:
        return RESULTS / "accuracy_quick"
    return RESULTS / ("accuracy" if budget == FULL_BUDGET_MIN else f"accuracy_{budget:g}min")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for row in ROWS.values():
            print(f"{row.name:30s} {row.role:9s} {' '.join(row.train_args())}")
        return 0
    budget = args.budget_minutes or (QUICK_BUDGET_MIN if args.quick else FULL_BUDGET_MIN)
    results_dir = args.results_dir or default_results_dir(budget, args.quick)
    if args.report_only:
        report(results_dir, args.n_boot)
        return 0
    order = args.rows or list(QUICK_ORDER if args.quick else DEFAULT_ORDER)
    unknown = [r for r in order if r not in ROWS and r not in ALIASES]
    if unknown:
        raise BenchmarkError(
            f"Unknown row(s) {unknown}; see --list for the rows (aliases: {', '.join(ALIASES)})."
        )
    if args.rows or args.quick:
        jobs = [(r, s) for r in order for s in args.seeds or [0]]
    else:
        seeds = [s for s in args.seeds or [0, 1, 2] if s != 0]
        jobs = [(r, 0) for r in order] + [(r, s) for r in SEEDED_ROWS for s in seeds]
    data = None
    if args.calibrate:
        from timm_galaxy_attn.labels import DATASET_CLASSES

        # rows on another row's schedule (ablations, the diagnostic) take no calibration
        rows = [ROWS[r] for r in (ROWS if not args.rows else order) if r in ROWS and not ROWS[r].parent]
        calibration(results_dir, rows, len(DATASET_CLASSES[DATASET]), redo=True)
        return 0
    for alias, seed in jobs:
        name = resolve_row(alias, results_dir)  # aliases: chosen on validation when their turn comes
        if name != alias:
            print(f"[{alias}] = {name} (validation macro-F1 of the stored results)", flush=True)
        dest = result_dir(results_dir, name, seed)
        if is_complete(dest):
            print(f"[{name} seed {seed}] stored result exists: skipped ({dest})")
            continue
        data = data or load_split()
        run_row(ROWS[name], seed, budget, results_dir, args.runs_dir, data)
        report(results_dir, args.n_boot, quiet=True)
    report(results_dir, args.n_boot)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
