"""Export a model to ONNX, TorchScript or a ``torch.export`` ExportedProgram, checked against eager.

``export_model(model, "onnx", "galaxy.onnx", images=["cutouts/"])``: the model (any spec
:func:`timm_galaxy_attn.catalog.load_model` takes) in fp32, batch size dynamic, input
``(batch, 3, S, S)`` normalised as the model's ``pretrained_cfg`` says (``timm.data`` eval transform),
output the logits. The exported file is loaded back and run on the same batch as the eager model: real
images when ``images`` is given, else random ones; the largest absolute logit difference must be at most
``atol``. The file is written to a temporary name and renamed only after that check, so a failed export
never leaves a file under ``out``. ONNX goes through the dynamo exporter and is run with onnxruntime
(``pip install timm-galaxy-attn[export]``).
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ._io import atomic_write
from .catalog.inputs import IMAGE_SUFFIXES

__all__ = ["FORMATS", "ExportError", "ExportResult", "export_model", "load_check_batch"]

FORMATS = ("onnx", "torchscript", "exported-program")
ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")


class ExportError(RuntimeError):
    """The export cannot be made or does not match the eager model; the message says why."""


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What was written and how closely it matches the eager model."""

    path: Path
    format: str
    input_size: tuple[int, int, int]
    n_images: int
    check_inputs: str
    max_abs_diff: float

    def text(self) -> str:
        return (
            f"wrote {self.path} ({self.format}, input (batch, {', '.join(map(str, self.input_size))})); "
            f"max |logit - eager| = {self.max_abs_diff:.2e} on {self.n_images} {self.check_inputs}"
        )


def _require_onnx() -> None:
    missing = []
    for name in ONNX_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExportError(
            f"ONNX export needs {', '.join(missing)} (not installed): pip install timm-galaxy-attn[export]"
        )


def _image_files(paths: Sequence[str | os.PathLike], limit: int) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"Check image {p} does not exist.")
    if not files:
        raise ExportError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, paths))}.")
    return files[:limit]


def load_check_batch(
    model: nn.Module,
    images: Sequence[str | os.PathLike] | None,
    image_size: int | None = None,
    limit: int = 16,
) -> tuple[torch.Tensor, str]:
    """The batch the check runs: up to ``limit`` images through the model's eval transform, or 2 random
    inputs; with a description."""
    from timm.data import resolve_model_data_config

    from .catalog.decode import decode_image
    from .data import eval_transform

    config = dict(resolve_model_data_config(model))
    if image_size:
        config["input_size"] = (3, image_size, image_size)
    if not images:
        return torch.randn(2, *config["input_size"]), "random inputs"
    from PIL import Image

    transform = eval_transform(config)
    files = _image_files(images, limit)
    batch = torch.stack([transform(Image.fromarray(decode_image(str(f)))) for f in files])
    return batch, f"real images ({files[0].parent})"


def _onnx(model: nn.Module, x: torch.Tensor, tmp: Path) -> Callable[[torch.Tensor], np.ndarray]:
    import onnxruntime as ort

    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        model,
        (x,),
        dynamo=True,
        dynamic_shapes={"x": {0: batch}},
        input_names=["images"],
        output_names=["logits"],
        verbose=False,
    )
    program.save(str(tmp))
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    return lambda t: session.run(None, {"images": t.numpy()})[0]


def _torchscript(model: nn.Module, x: torch.Tensor, tmp: Path) -> Callable[[torch.Tensor], np.ndarray]:
    with warnings.catch_warnings():  # torch 2.9+ marks TorchScript deprecated; it still works
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(model).save(str(tmp))
        loaded = torch.jit.load(str(tmp), map_location="cpu")
    return lambda t: loaded(t).numpy()


def _exported_program(model: nn.Module, x: torch.Tensor, tmp: Path) -> Callable[[torch.Tensor], np.ndarray]:
    program = torch.export.export(model, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}})
    buffer = io.BytesIO()  # torch.export.save wants a buffer or a name ending in .pt2
    torch.export.save(program, buffer)
    tmp.write_bytes(buffer.getvalue())
    loaded = torch.export.load(io.BytesIO(tmp.read_bytes())).module()
    return lambda t: loaded(t).numpy()


_EXPORTERS = {"onnx": _onnx, "torchscript": _torchscript, "exported-program": _exported_program}


def export_model(
    model: str | os.PathLike | nn.Module,
    fmt: str,
    out: str | os.PathLike,
    *,
    images: Sequence[str | os.PathLike] | None = None,
    image_size: int | None = None,
    atol: float = 1e-3,
    allow_random_weights: bool = False,
) -> ExportResult:
    """Export ``model`` in format ``fmt`` (``onnx``, ``torchscript``, ``exported-program``) to ``out``
    after checking it against the eager model (module doc). Raises ValueError for an unknown format,
    :class:`ExportError` for a missing extra or a mismatch, ``ModelLoadError`` for an unusable model."""
    from .catalog import load_model

    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is not supported; choose one of {', '.join(FORMATS)}.")
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name.")
    if fmt == "onnx":
        _require_onnx()
    loaded = load_model(model, allow_random_weights=allow_random_weights)
    net = loaded.model.float().eval().to("cpu", memory_format=torch.contiguous_format)
    x, described = load_check_batch(net, images, image_size)
    with torch.no_grad():
        eager = net(x).numpy()
    diff = float("nan")

    example = torch.cat([x, x]) if len(x) == 1 else x  # torch.export specialises a batch of 1

    def write(tmp: Path) -> None:
        nonlocal diff
        with torch.no_grad():
            run = _EXPORTERS[fmt](net, example, tmp)
            diff = float(np.abs(run(x) - eager).max())
        if not diff <= atol:
            raise ExportError(
                f"The {fmt} export differs from the eager model by {diff:.2e} (> atol {atol:g}) on "
                f"{len(x)} {described}; nothing was written to {out}."
            )

    atomic_write(out, write)
    return ExportResult(out, fmt, tuple(x.shape[1:]), len(x), described, diff)
