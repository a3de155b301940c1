"""What a training run reached per epoch and per hour, from its own TensorBoard log (finished or stopped).

    python benchmarks/run_progress.py RUN_DIR --out benchmarks/results/<name>/progress.json [--note TEXT]

For runs too long for one machine's session: the run's command (``train_config.json``), the machine, and per
epoch the validation accuracy, macro-F1 and balanced accuracy with the wall time since the run started and the
training images per second. Validation only: the test split is scored by the run itself once it finishes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import lscpu_facts, write_json
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

VAL_TAGS = ("val/accuracy", "val/macro_f1", "val/balanced_accuracy")


def epochs_of(run_dir: Path) -> list[dict[str, float]]:
    """One dict per finished epoch: validation metrics, hours since the first logged step, images/s."""
    logs = sorted(run_dir.glob("tensorboard/events.out.tfevents.*"))
    if not logs:
        raise SystemExit(
            f"run_progress: no TensorBoard log in {run_dir / 'tensorboard'}: not a train.py run?"
        )
    scalars: dict[str, list] = {}
    for log in logs:
        events = EventAccumulator(str(log))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(events.Scalars(tag))
    start = min(e.wall_time for e in scalars.get("train/loss_step", scalars[VAL_TAGS[0]]))
    speed = {e.step: e.value for e in scalars.get("train/images_per_s", [])}
    rows = []
    for i, first in enumerate(scalars.get(VAL_TAGS[0], [])):
        row = {"epoch": first.step, "hours": round((first.wall_time - start) / 3600, 3)}
        row.update({tag.split("/")[1]: scalars[tag][i].value for tag in VAL_TAGS})
        row["train_images_per_s"] = speed.get(first.step)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="the JSON to write")
    parser.add_argument("--note", default="", help="how the machine was shared, why the run stopped")
    args = parser.parse_args()
    config = json.loads((args.run_dir / "train_config.json").read_text())
    rows = epochs_of(args.run_dir)
    result = {
        "command": config["command"],
        "epochs_planned": config["epochs"],
        "machine": lscpu_facts(("avx2", "avx512f", "avx512_bf16", "amx_bf16")),
        "note": args.note,
        "epochs": rows,
    }
    write_json(args.out, result)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
