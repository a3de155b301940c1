"""benchmarks/speed.py: the default-precision training check and the table, on stand-in measurements."""

from __future__ import annotations

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def speed():
    return load_script("benchmarks/speed.py", "bench_speed")


def test_training_check_keeps_the_best_round_and_divides_auto_by_fp32(speed, monkeypatch, tmp_path):
    calls = []
    emulated = {"no": [10.0, 12.0], "auto": [11.0, 9.0]}
    native = {"no": [10.0, 8.0], "auto": [30.0, 25.0]}

    def fake_train(tmp, value, env):
        table = emulated if env == speed.AVX2_ENV else native
        calls.append((value, env))
        precision = "bf16" if env is None and value == "auto" else "fp32"
        return {"precision": precision, "images_per_s": table[value].pop(0)}

    monkeypatch.setattr(speed, "train_speed", fake_train)
    monkeypatch.setattr(
        speed, "matmul_peaks", lambda env=None: {"fp32": 100.0, "bf16": 1.0 if env else 400.0}
    )
    rows = speed.training_check(tmp_path, rounds=2)
    assert [c[0] for c in calls] == ["no", "auto"] * 4  # interleaved, both settings
    native_row, avx2_row = rows
    assert native_row["auto_precision"] == "bf16" and native_row["ratio"] == pytest.approx(3.0)
    assert avx2_row["auto_precision"] == "fp32" and avx2_row["ratio"] == pytest.approx(11.0 / 12.0)
    assert avx2_row["matmul_gflops"]["bf16"] == 1.0


def test_markdown_marks_the_auto_row_and_names_the_machine(speed):
    row = dict(model="m", image_size=32, train_images_per_s=5.0, infer_images_per_s=20.0)
    result = {
        "machine": {
            "cpu_model": "Test CPU",
            "cpus": 2,
            "flags": {"avx2": True, "avx512_bf16": False},
            "torch": "x",
        },
        "command": "python benchmarks/speed.py",
        "date": "2026-12-01",
        "minutes": 3.0,
        "auto": "precision fp32: auto: Test CPU has neither",
        "throughput": [
            {
                **row,
                "precision": "fp32",
                "auto": True,
                "train_fraction_of_peak": 0.5,
                "infer_fraction_of_peak": 0.9,
            },
            {
                **row,
                "precision": "bf16",
                "auto": False,
                "train_fraction_of_peak": 0.1,
                "infer_fraction_of_peak": 0.1,
            },
        ],
        "predict": {
            "native": {
                "setup": "9 JPEGs",
                "rows": [{"mode": "predict", "n_images": 9, "images_per_s": 8.0, "ratio": 0.8}],
                "costs": {
                    "decode_s": 0.0008,
                    "forward_s": 0.0013,
                    "in_run": {"decode_s": 0.0012, "forward_s": 0.002},
                },
            }
        },
        "runtimes": [
            {
                "model": "m",
                "runtime": "torch.compile fp32",
                "images_per_s": 3.0,
                "ratio": 1.5,
                "compile_s": 20,
            }
        ],
        "training": [
            {
                "setting": "native",
                "matmul_gflops": {"fp32": 100.0, "bf16": 0.3},
                "auto_precision": "fp32",
                "auto_images_per_s": 14.0,
                "fp32_images_per_s": 14.5,
                "ratio": 14.0 / 14.5,
            }
        ],
    }
    text = speed.markdown(result)
    assert text.startswith("# Speed on Test CPU (2 CPUs; avx2), torch x")
    assert "| m | 32 | fp32 (auto) | 5.0 | 50% | 20.0 | 90% |" in text
    assert "| m | 32 | bf16 | 5.0 | 10% |" in text
    assert "| native (9 JPEGs) | predict | 9 | 8.0 | 0.80 |" in text
    assert (
        "- native: decode + forward CPU ms per image, one thread alone 0.80 + 1.30, "
        "inside the run 1.20 + 2.00" in text
    )
    assert "| m | torch.compile fp32 | 3.0 | 1.50 | 20 |" in text
    assert "| native | 100 / 0.3 | fp32 | 14.0 | 14.5 | 0.97 |" in text
