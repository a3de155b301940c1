"""Precision by measurement: bf16 only where the device runs it natively (timm_galaxy_attn.device)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from timm_galaxy_attn import device
from timm_galaxy_attn.cli import build_parser
from timm_galaxy_attn.device import accelerate_mixed_precision, choose_precision, native_bf16

OLD_X86 = {"architecture": "x86_64", "cpu_name": "Old CPU", "avx512_bf16": False, "amx_bf16": False}


@pytest.fixture
def no_native_bf16(monkeypatch):
    """A CPU whose cpuinfo says: no AVX512_BF16, no AMX."""
    monkeypatch.setattr(device, "_cpu_info", lambda: dict(OLD_X86))
    monkeypatch.setattr(device, "_torch_cpu_flag", lambda name: False)


def test_auto_follows_this_cpu():
    native, evidence = native_bf16(torch.device("cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto never warns
        choice = choose_precision("cpu")
    assert choice.precision == ("bf16" if native else "fp32") and choice.channels_last
    assert evidence in choice.reason and choice.line().startswith(f"precision {choice.precision}")
    if device._cpu_info().get("avx512_bf16"):  # a CPU with AVX512_BF16: bf16
        assert choice.precision == "bf16" and choice.dtype is torch.bfloat16
        assert choice.mixed_precision == "bf16"


def test_no_native_bf16_gives_fp32_and_says_why(no_native_bf16):
    choice = choose_precision("cpu")
    assert (choice.precision, choice.dtype, choice.mixed_precision) == ("fp32", None, "no")
    assert "Old CPU has neither AVX512_BF16 nor AMX-BF16" in choice.reason
    assert "\n" not in choice.line()
    assert choose_precision("cpu", channels_last=False).channels_last is False


def test_explicit_bf16_without_native_support_warns(no_native_bf16):
    with pytest.warns(UserWarning, match="many times slower than fp32"):
        choice = choose_precision("cpu", "bf16")
    assert choice.precision == "bf16"  # honoured
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert choose_precision("cpu", "fp32").precision == "fp32"


@pytest.mark.parametrize("speedup, expected", [(3.5, "bf16"), (0.2, "fp32")])
def test_without_cpuinfo_a_matmul_probe_decides(monkeypatch, speedup, expected):
    monkeypatch.setattr(device, "_cpu_info", lambda: {"architecture": "aarch64", "cpu_name": "ARM CPU"})
    monkeypatch.setattr(device, "_bf16_matmul_speedup", lambda: speedup)
    choice = choose_precision("cpu")
    assert choice.precision == expected and f"{speedup:.1f}x fp32" in choice.reason


def test_the_real_probe_is_small_and_runs_once():
    """The probe's cost as work, not wall time: six 256 x 256 matmuls per dtype (one warm-up, best of five),
    0.4 GFLOP in all, measured once per process (the second call is the cached ratio, no work)."""
    from torch.utils.flop_counter import FlopCounterMode

    device._bf16_matmul_speedup.cache_clear()
    with FlopCounterMode(display=False) as first:
        ratio = device._bf16_matmul_speedup()
    assert math.isfinite(ratio) and ratio > 0
    assert first.get_total_flops() == 2 * 6 * 2 * 256**3
    with FlopCounterMode(display=False) as again:
        assert device._bf16_matmul_speedup() == ratio
    assert again.get_total_flops() == 0


def test_gpu_without_bf16_gets_fp16(monkeypatch):
    monkeypatch.setattr(device, "native_bf16", lambda dev: (False, "Old GPU has no native bf16"))
    choice = choose_precision("cuda")
    assert (choice.precision, choice.mixed_precision, choice.channels_last) == ("fp16", "fp16", True)
    assert "gradient scaler" in choice.reason


def test_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match="auto, fp32, bf16, fp16"):
        choose_precision("cpu", "int8")


def test_training_resolution_prints_once(no_native_bf16, capsys):
    device._announced.clear()
    assert accelerate_mixed_precision("auto", cpu=True) == "no"
    assert accelerate_mixed_precision("auto", cpu=True) == "no"
    err = capsys.readouterr().err
    assert err.count("training precision fp32") == 1 and "neither AVX512_BF16" in err
    assert accelerate_mixed_precision("no", cpu=True) == "no"


def test_predict_defaults_to_auto():
    args = build_parser().parse_args(["predict", "x.png", "--out", "c.parquet"])
    assert args.precision == "auto" and args.channels_last is None
    args = build_parser().parse_args(["predict", "x.png", "--out", "c.parquet", "--no-channels-last"])
    assert args.channels_last is False


def test_predict_records_the_choice(decals_examples, tmp_path, no_native_bf16):
    import json

    import timm

    from timm_galaxy_attn.catalog import predict

    model = timm.create_model("galaxy_attn_vgg_small", widths=(8, 8, 12, 16, 16, 16), num_classes=10)
    table = predict(decals_examples / "05_barred_spiral.png", model, progress=False, output="arrow")
    meta = json.loads(table.schema.metadata[b"galaxy_attn"])
    assert (meta["precision"], meta["channels_last"]) == ("fp32", True)
    assert table.column("error").to_pylist() == [None]


@pytest.mark.parametrize("variable", ["ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"])
def test_onednn_held_below_bf16_gives_fp32(monkeypatch, variable):
    monkeypatch.setenv(variable, "avx2")
    monkeypatch.setattr(
        device, "_cpu_info", lambda: {"architecture": "x86_64", "cpu_name": "New CPU", "avx512_bf16": True}
    )
    choice = choose_precision("cpu")
    assert choice.precision == "fp32"
    assert "ONEDNN_MAX_CPU_ISA=AVX2 holds oneDNN on New CPU below AVX512_CORE_BF16" in choice.reason
    monkeypatch.setenv(variable, "AVX512_CORE_BF16")  # not below: the instruction sets decide again
    assert choose_precision("cpu").precision == "bf16"


def test_machine_description_names_the_cpu_its_cores_and_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    facts = {"cpu_name": "AMD EPYC", "num_physical_cores": 2, "avx2": True, "avx512_bf16": True}
    monkeypatch.setattr(device, "_cpu_info", lambda: facts)
    assert device.machine_description("cpu") == "AMD EPYC, 2 cores, AVX512_BF16"
    monkeypatch.setattr(device, "_cpu_info", lambda: {**facts, "avx512_bf16": False})
    assert device.machine_description("cpu") == "AMD EPYC, 2 cores, AVX2"
