"""Precision and memory format per device: bf16 only where the device runs it natively.

``choose_precision(device, "auto")`` returns a :class:`PrecisionChoice` (``fp32``, ``bf16`` or ``fp16``
autocast, channels_last on or off) with a one-line reason. How native bf16 is decided:

* CUDA: ``torch.cuda.is_bf16_supported(including_emulation=False)``; a GPU without it gets fp16 (training
  adds a gradient scaler: accelerate does).
* x86 CPUs: the instruction sets torch's cpuinfo reports (AVX512_BF16 or AMX-BF16). Without them oneDNN
  runs bf16 by converting to fp32, which is slower than fp32 itself, so that counts as not native. So does a
  CPU whose oneDNN is held below AVX512_CORE_BF16 by ``ONEDNN_MAX_CPU_ISA`` (e.g. ``AVX2``), which is also
  how to emulate an older CPU on a newer one.
* Other CPUs (ARM...): a sub-second probe, a 256 x 256 matmul in bf16 against fp32.

channels_last: on for CPUs (oneDNN's convolutions are NHWC) and for GPUs in bf16/fp16 (tensor-core
convolutions are NHWC); off otherwise. An explicit ``bf16`` on a device without native bf16 is honoured with
a warning. :func:`accelerate_mixed_precision` turns a training run's ``--mixed-precision`` into accelerate's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import platform
import sys
import time
import warnings
from typing import Any, TextIO

import torch

__all__ = [
    "PRECISIONS",
    "PrecisionChoice",
    "accelerate_mixed_precision",
    "announce",
    "choose_precision",
    "has_accelerator",
    "machine_description",
    "native_bf16",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_ACCELERATE = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}
_announced: set[str] = set()


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
    """A precision (``fp32``, ``bf16`` or ``fp16`` autocast), a memory format and why."""

    precision: str
    channels_last: bool
    reason: str

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, None for fp32."""
        return _DTYPES.get(self.precision)

    @property
    def mixed_precision(self) -> str:
        """The name accelerate uses: ``no``, ``bf16`` or ``fp16``."""
        return _ACCELERATE[self.precision]

    def autocast(self, device_type: str) -> contextlib.AbstractContextManager:
        """``torch.autocast`` in this precision (a no-op context for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=self.dtype)

    def line(self) -> str:
        """One line for the log: ``precision bf16 + channels_last: <reason>``."""
        layout = " + channels_last" if self.channels_last else ""
        return f"precision {self.precision}{layout}: {self.reason}"


def _cpu_info() -> dict[str, Any]:
    """torch's cpuinfo facts (instruction sets, name), or {} where this torch does not expose them."""
    get = getattr(torch._C._cpu, "_get_cpu_capability", None)
    info = get() if get is not None else None
    return info if isinstance(info, dict) else {}


@functools.cache
def _bf16_matmul_speedup(n: int = 256, repeats: int = 5) -> float:
    """fp32 time over bf16 time of an n x n matmul (best of ``repeats``; once per process)."""
    a, b = torch.randn(n, n), torch.randn(n, n)

    def best(x: torch.Tensor, y: torch.Tensor) -> float:
        x @ y
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            x @ y
            times.append(time.perf_counter() - t)
        return min(times)

    return best(a, b) / max(best(a.bfloat16(), b.bfloat16()), 1e-9)


def _torch_cpu_flag(name: str) -> bool:
    check = getattr(torch.cpu, name, None)
    return bool(check()) if check is not None else False


# oneDNN's CPU ISA names (``ONEDNN_MAX_CPU_ISA`` values), lowest first; bf16 is native from AVX512_CORE_BF16.
_ONEDNN_ISAS = (
    "SSE41 AVX AVX2 AVX2_VNNI AVX2_VNNI_2 AVX512_CORE AVX512_CORE_VNNI AVX512_CORE_BF16 AVX10_1_512 "
    "AVX512_CORE_FP16 AVX10_1_512_AMX AVX512_CORE_AMX AVX10_1_512_AMX_FP16 AVX512_CORE_AMX_FP16"
).split()


def _onednn_isa_limit() -> str | None:
    """The ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``) value holding oneDNN below bf16, if any."""
    value = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    if value in _ONEDNN_ISAS and _ONEDNN_ISAS.index(value) < _ONEDNN_ISAS.index("AVX512_CORE_BF16"):
        return value
    return None


def _cpu_bf16() -> tuple[bool, str]:
    info = _cpu_info()
    name = info.get("cpu_name") or platform.processor() or "this CPU"
    x86 = info.get("architecture", platform.machine()).lower() in ("x86_64", "amd64", "x86")
    limit = _onednn_isa_limit() if x86 else None
    if limit is not None:
        return False, f"ONEDNN_MAX_CPU_ISA={limit} holds oneDNN on {name} below AVX512_CORE_BF16"
    if x86 and ("avx512_bf16" in info or hasattr(torch.cpu, "_is_avx512_bf16_supported")):
        if info.get("amx_bf16") or _torch_cpu_flag("_is_amx_tile_supported"):
            return True, f"{name} has AMX-BF16"
        if info.get("avx512_bf16") or _torch_cpu_flag("_is_avx512_bf16_supported"):
            return True, f"{name} has AVX512_BF16"
        return False, f"{name} has neither AVX512_BF16 nor AMX-BF16"
    speedup = _bf16_matmul_speedup()  # no instruction-set facts (ARM, old torch): measure
    native = speedup > 1.25
    return native, f"{name}: a bf16 matmul runs {speedup:.1f}x fp32 ({'native' if native else 'emulated'})"


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` runs bf16 natively, and the evidence in words.

    Args:
        device: A CUDA or CPU device (other types: not native).
    """
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        with torch.cuda.device(index):
            try:
                native = torch.cuda.is_bf16_supported(including_emulation=False)
            except TypeError:  # torch < 2.3
                native = torch.cuda.is_bf16_supported()
        name = torch.cuda.get_device_name(index)
        return native, f"{name} {'has' if native else 'has no'} native bf16"
    if device.type == "cpu":
        return _cpu_bf16()
    return False, f"no native-bf16 test for {device.type!r} devices"


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _auto_channels_last(device: torch.device, precision: str) -> tuple[bool, str]:
    if device.type == "cpu":
        return True, "oneDNN convolutions are NHWC"
    if device.type == "cuda" and precision != "fp32":
        return True, "tensor-core convolutions are NHWC"
    return False, "NCHW"


def choose_precision(
    device: str | torch.device | None = None,
    requested: str = "auto",
    channels_last: bool | None = None,
) -> PrecisionChoice:
    """The precision and memory format for ``device``.

    Args:
        device: The device (default: cuda when available, else cpu).
        requested: ``auto`` (bf16 where native; else fp16 on GPUs, fp32 elsewhere) or an explicit
            ``fp32``/``bf16``/``fp16``, honoured (with a warning where it will be slow).
        channels_last: The memory format; None chooses it (module doc).

    Raises:
        ValueError: ``requested`` is not one of :data:`PRECISIONS`.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision={requested!r} is not supported; choose one of {', '.join(PRECISIONS)}.")
    device = torch.device(device) if device is not None else _default_device()
    native, evidence = native_bf16(device)
    if requested == "auto":
        if native:
            precision, why = "bf16", f"{evidence}"
        elif device.type == "cuda":
            precision, why = "fp16", f"{evidence}; fp16 autocast (a gradient scaler when training)"
        else:
            precision, why = "fp32", f"{evidence}, so bf16 would be emulated and slower"
        why = f"auto: {why}"
    else:
        precision, why = requested, f"as requested ({evidence})"
        if requested == "bf16" and not native:
            warnings.warn(
                f"bf16 on {device}: {evidence}; bf16 is emulated there and will run many times slower "
                "than fp32. Use precision 'auto' or 'fp32'.",
                stacklevel=2,
            )
        elif requested == "fp16" and device.type == "cpu":
            warnings.warn(
                "fp16 on the CPU is emulated by most CPUs and slower than fp32; use 'auto'.", stacklevel=2
            )
    if channels_last is None:
        channels_last, layout = _auto_channels_last(device, precision)
        why = f"{why}; channels_last {'on' if channels_last else 'off'} ({layout})"
    return PrecisionChoice(precision, bool(channels_last), why)


def machine_description(device: torch.device | str | None = None) -> str:
    """The machine a run ran on, in words: the GPU's name, or the CPU's with its cores and bf16 instructions.

    Args:
        device: The device of the run (default: CUDA where present, else the CPU).
    """
    device = torch.device(device) if device is not None else _default_device()
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    info = _cpu_info()
    name = info.get("cpu_name") or platform.processor() or platform.machine() or "unknown CPU"
    cores = info.get("num_physical_cores") or os.cpu_count()
    best = next((f for f in ("amx_bf16", "avx512_bf16", "avx512_f", "avx2") if info.get(f)), None)
    return f"{name}, {cores} cores" + (f", {best.upper()}" if best else "")


def has_accelerator() -> bool:
    """True when torch sees a GPU (CUDA/ROCm), XPU or MPS device."""
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def accelerate_mixed_precision(value: str, *, cpu: bool) -> str:
    """accelerate's ``mixed_precision`` (no/bf16/fp16) for a training run's ``--mixed-precision``.

    Prints the choice and its reason once.

    Args:
        value: ``auto``, ``no``, ``bf16`` or ``fp16``.
        cpu: Whether the run is on the CPU (else on the default accelerator).
    """
    requested = "fp32" if value == "no" else value
    choice = choose_precision("cpu" if cpu else None, requested, channels_last=False)
    announce(choice, prefix="training ")
    return choice.mixed_precision


def announce(choice: PrecisionChoice, file: TextIO | None = None, prefix: str = "") -> None:
    """Print ``choice.line()`` once per process (and only on the main process of a distributed run).

    Args:
        choice: The choice to print.
        file: Where to (default: stderr).
        prefix: Text before the line (e.g. ``"training "``).
    """
    line = prefix + choice.line()
    if line in _announced or os.environ.get("RANK", "0") != "0":
        return
    _announced.add(line)
    print(line, file=file or sys.stderr, flush=True)
