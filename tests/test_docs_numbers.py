"""Numbers in README.md and docs/ equal the stored results they come from (JSON only; offline, fast).

Each claim names a doc, a fragment of its text and a results file under benchmarks/results/. In the
fragment, ``#`` stands for one number (captured), `` ... `` for any text in between, and the rest is literal
(whitespace and line breaks in the doc count as one space). Every occurrence of the fragment must show the
values read from the results file, formatted as the claim says.

Adding a claim is one line in ``CLAIMS``::

    Claim("docs/x.md", "reached # test accuracy", MAIN_JOB, ("test_accuracy",), F(".3f")),

``values`` are paths into the JSON (``/``-separated keys and list indexes; a list value gives all its
numbers, e.g. an interval ``[lo, hi]``) or functions of the loaded JSON; ``fmt`` is one formatter for all
numbers or a tuple, one per number. ``run0``, ``paired`` and ``tta`` build the usual paths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from conftest import REPO_ROOT

Getter = str | Callable[[Any], Any]
Formatter = Callable[[float], str]

RESULTS = "benchmarks/results"
MAIN_JOB = f"{RESULTS}/main_job/amd_epyc_2cpu.json"
ACCURACY = f"{RESULTS}/accuracy/results.json"
PAIRED = f"{RESULTS}/paired_differences.json"
TTA = f"{RESULTS}/tta_validation.json"
SPEED_AMD = f"{RESULTS}/speed/amd_epyc_2cpu.json"
NUMBER = r"([+-]?\d+(?:\.\d+)?)"
RESCORE = f"{RESULTS}/normalization/rescore.json"
LIKE_FOR_LIKE = f"{RESULTS}/accuracy_like_for_like/results.json"
SHIPPED_TINY = "galaxy_attn_vgg_tiny_s4.gz1_sdss"
RETIRED_VGG = "galaxy_attn_vgg.gz1_sdss"  # withdrawn; its scores stay in rescore.json
PAPER = f"{RESULTS}/pretrain_gz/paper_s4"
PAPER_TEST = f"{PAPER}/vs_tiny_gz_sdss/test.json"
PAPER2 = f"{RESULTS}/pretrain_gz/paper_s4_continued"  # the shipped galaxy_attn_vgg.gz_sdss: 14 + 8 epochs
PAPER2_TEST = f"{PAPER2}/vs_tiny_gz_sdss/test.json"
PAPER_RUN = f"{RESULTS}/pretrain_gz/paper_s4_joint/seed0/metrics.json"
SPIRALS = ("clockwise", "anticlockwise")
SHIPPED_VGG = "galaxy_attn_vgg.gz_sdss"


def F(spec: str, scale: float = 1.0) -> Formatter:
    """A formatter: ``value * scale`` with the format ``spec`` (``F(".1f", 100)``: a fraction as %)."""
    return lambda x: format(float(x) * scale, spec)


PCT = F(".1f", 100)  # 0.848 -> "84.8"
SPCT = F("+.1f", 100)  # 0.148 -> "+14.8"


@dataclass(frozen=True)
class Claim:
    """Numbers in ``doc`` (where ``fragment`` matches) come from ``values`` of the JSON file ``source``."""

    doc: str
    fragment: str
    source: str
    values: tuple[Getter, ...]
    fmt: Formatter | tuple[Formatter, ...] = PCT

    def pattern(self) -> re.Pattern[str]:
        """The fragment as a regex: ``#`` a captured number, `` ... `` any text, the rest literal."""
        pieces = re.sub(r"\s+", " ", self.fragment).split(" ... ")
        return re.compile(" .*? ".join(NUMBER.join(map(re.escape, p.split("#"))) for p in pieces))


def seed0(row: str, *keys: str) -> tuple[str, ...]:
    """Paths ``key`` of row ``row``'s seed-0 run (accuracy results), e.g. ``"test/ece"``."""
    return tuple(f"rows/{row}/runs/0/{k}" for k in keys)


def run0(row: str, *metrics: str) -> tuple[str, ...]:
    """Row ``row``'s seed-0 test ``metric`` and its 95% interval, for each metric (accuracy results)."""
    base = f"rows/{row}/runs/0/test"
    return tuple(p for m in metrics for p in (f"{base}/{m}", f"{base}/ci95/{m}"))


def shipped(tag: str, *metrics: str) -> tuple[str, ...]:
    """The shipped tag's test ``metric`` and 95% interval as a user loads it (normalization_rescore.py)."""
    base = f"tags/{tag}/test/train_only"
    return tuple(p for m in metrics for p in (f"{base}/{m}", f"{base}/ci95/{m}"))


def mean_std(row: str, *metrics: str) -> tuple[str, ...]:
    """Row ``row``'s mean and standard deviation over seeds of test ``metric`` (accuracy results)."""
    base = f"rows/{row}/aggregate/test"
    return tuple(p for m in metrics for p in (f"{base}_{m}_mean", f"{base}_{m}_std"))


def paired(a: str, b: str, *metrics: str) -> tuple[str, ...]:
    """[difference, lo, hi] of ``a`` minus ``b`` in paired_differences.json, for each metric."""
    return tuple(f"pairs/{a}-{b}/{m}" for m in metrics)


def tta(*metrics: str, tag: str = SHIPPED_TINY) -> tuple[str, ...]:
    """One view, then D4 TTA, on validation for each metric (tta_validation.json)."""
    return tuple(p for m in metrics for p in (f"tags/{tag}/one_view/{m}", f"tags/{tag}/d4_tta/{m}"))


def avx2_fp32_vs_bf16(d: dict[str, Any]) -> float:
    """fp32 training speed held to AVX2 over the native bf16 speed (the speed file's training rows)."""
    native, avx2 = d["training"]
    return avx2["fp32_images_per_s"] / native["auto_images_per_s"]


TABLE_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
ROW_CELLS = " | # [#, #] | # [#, #] | # [#, #] |"

README, RESULTS_MD, HUB_MD, TRAINING_MD = "README.md", "docs/results.md", "docs/hub.md", "docs/training.md"
TINY_ROW, VGG_ROW, OURS_3SEEDS = "ours_tiny_128s4_sampler", "ours_vgg_32s1", "ours_tiny_128s4"
VS_RESNET = "verdict/paired/resnet18_64"
RARE = ("test/per_class/Don't know/f1", "test/per_class/Merger/f1")
RARE_SUPPORT = ("test/per_class/Don't know/support", "test/per_class/Merger/support")
FAITH = f"{RESULTS}/attention/faithfulness.json"
KNN = f"{RESULTS}/embeddings/knn.json"
PREDICT_AVX2 = f"{RESULTS}/predict_amd_avx2.json"
THROUGHPUT_MD = "docs/throughput.md"
PRETRAIN_MD = "docs/pretraining.md"
PRETRAIN_VAL = f"{RESULTS}/pretrain_gz/validation.json"
PRETRAIN_TEST = f"{RESULTS}/pretrain_gz/test.json"
JOINT_RUN = f"{RESULTS}/pretrain_gz/tiny_s4_joint/seed0/metrics.json"
PROBE = f"{RESULTS}/linear_probe/results.json"
FT_GZ = f"{RESULTS}/finetune_gz_sdss/results.json"
CONTROL = f"{RESULTS}/pretrain_gz/control"
FT_GZ_PAIRED = "paired_vs_scratch/finetune_lr0.1/over_seeds"
SHIPPED_JOINT = "galaxy_attn_vgg_tiny_s4.gz_sdss"
F3, S3 = F(".3f"), F("+.3f")


def ft_gz_seeds(d: Any) -> int:
    """How many seeds the fine-tuning comparison from the new default weights paired."""
    return len(d["paired_vs_scratch"]["finetune_lr0.1"]["seeds"])


TEST_ORDER = ("accuracy", "macro_f1", "balanced_accuracy")
DIFF_F1_BAL = tuple(f"difference_new_minus_shipped/{m}" for m in ("macro_f1", "balanced_accuracy"))


def new_and_ci(*metrics: str) -> tuple[str, ...]:
    """The joint run's ``metric`` and its 95% interval, for each metric (pretrain_gz results)."""
    return tuple(p for m in metrics for p in (f"new/{m}", f"new/ci95/{m}"))


def probe_mean_sd(name: str) -> tuple[str, str]:
    """Mean and sd over split seeds of the test ROC-AUC of a linear-probe model."""
    return (f"summary/models/{name}/roc_auc/0", f"summary/models/{name}/roc_auc/1")


LFL_OURS, LFL_RESNET = "ours_tiny_128s4_sampler_10ep", "resnet18_128_sampler_10ep"
LFL_CONVNEXT = "convnext_atto_128_sampler_10ep"


def _seed_pairs(d: Any, above: bool | None = None) -> list[list[float]]:
    """The like-for-like paired [diff, lo, hi] per seed, peer and metric; ``above``: only those whose interval
    lies above 0 (True) or below 0 (False)."""
    metrics = ("macro_f1", "balanced_accuracy")
    pairs = [p for e in d["paired_over_seeds"].values() for m in metrics for p in e[m]]
    if above is None:
        return pairs
    return [p for p in pairs if (p[1] > 0 if above else p[2] < 0)]


def _flat_pairs(peer: str, metric: str) -> Callable[[Any], list[float]]:
    """The like-for-like per-seed [diff, lo, hi] of ours minus ``peer`` on ``metric``, flattened."""
    return lambda d: [v for p in d["paired_over_seeds"][peer][metric] for v in p]


def chirality_of(row: str) -> Callable[[Any], float]:
    """Of the true spirals (classes 1, 2) called a spiral, the share with the right winding (seed 0 test)."""

    def share(d: Any) -> float:
        cm = d["rows"][row]["runs"][0]["test"]["confusion_matrix"]
        called = [[cm[i][j] for j in (1, 2)] for i in (1, 2)]
        return (called[0][0] + called[1][1]) / sum(map(sum, called))

    return share


CLAIMS: tuple[Claim, ...] = (
    # README: the main job (benchmarks/main_job.py) and the precision on a CPU without bf16
    Claim(README, "it took # s and reached # test accuracy (macro-F1 #)", MAIN_JOB,
          ("wall_time_s", "test_accuracy", "test_macro_f1"), (F(".0f"), F(".3f"), F(".3f"))),
    Claim(README, "load average # over the last 15 minutes", MAIN_JOB,
          ("load_average_1_5_15min/after/2",), F(".1f")),
    Claim(README, "In `amd_epyc_2cpu.json` (a #-core AMD EPYC", MAIN_JOB, ("machine/cpus",), F(".0f")),
    Claim(README, "fp32 on AVX2 trains at #x the bf16 speed", SPEED_AMD, (avx2_fp32_vs_bf16,), F(".2f")),
    # README: "Which model for what": the shipped weights as loaded (normalization_rescore.py), test, 95% CI
    Claim(README, f"| `{SHIPPED_TINY}` | ...{ROW_CELLS}", RESCORE, shipped(SHIPPED_TINY, *TABLE_METRICS)),
    Claim(README, f"| `{SHIPPED_VGG}` | ...{ROW_CELLS}", PAPER2_TEST, new_and_ci(*TABLE_METRICS)),
    Claim(README, f"| `{SHIPPED_JOINT}` | ...{ROW_CELLS}", PRETRAIN_TEST, new_and_ci(*TABLE_METRICS)),
    # docs/results.md: the shipped row, the paper's network, paired differences, three-seed means
    Claim(RESULTS_MD, "on test: accuracy # [#, #], balanced accuracy # [#, #], macro-F1 # [#, #]", ACCURACY,
          run0(TINY_ROW, *TABLE_METRICS)),
    Claim(RESULTS_MD, "It is the best row on validation (macro-F1 # vs #)", ACCURACY,
          seed0(TINY_ROW, "validation/macro_f1") + seed0(OURS_3SEEDS, "validation/macro_f1")),
    Claim(RESULTS_MD, "(vs #, #, #), ECE", ACCURACY, run0(OURS_3SEEDS, *TABLE_METRICS)[::2]),
    Claim(RESULTS_MD, "ECE # before any temperature scaling (#)", ACCURACY,
          seed0(TINY_ROW, "test/ece") + seed0(OURS_3SEEDS, "test/ece"), F(".3f")),
    Claim(RESULTS_MD, "rare classes # and # F1 (#, #)", ACCURACY,
          seed0(TINY_ROW, *RARE) + seed0(OURS_3SEEDS, *RARE)),
    Claim(RESULTS_MD, "quiet run took # min: this session's machine trained the tiny network at # images/s "
          "against the # calibrated", ACCURACY, seed0(TINY_ROW, "train_minutes", "images_per_s")
          + seed0(OURS_3SEEDS, "calibrated_images_per_s"), (F(".1f"), F(".0f"), F(".0f"))),
    Claim(RESULTS_MD, "(# epochs at its calibrated # images/s;", ACCURACY,
          seed0(VGG_ROW, "epochs", "calibrated_images_per_s"), F(".0f")),
    Claim(RESULTS_MD, "# GFLOP per training image), shipped as", SPEED_AMD,
          ("throughput/0/gflop_train_per_image",), F(".1f")),
    Claim(RESULTS_MD, "It reaches test macro-F1 # [#, #] and balanced accuracy # [#, #]", ACCURACY,
          run0(VGG_ROW, "macro_f1", "balanced_accuracy")),
    Claim(RESULTS_MD, "paired interval** (# [#, #], one seed), not on balanced accuracy (# [#, #])", ACCURACY,
          (f"{VS_RESNET}/macro_f1", f"{VS_RESNET}/balanced_accuracy"), SPCT),
    Claim(RESULTS_MD, "the paired difference, # [#, #], is above 0", PAIRED,
          paired(OURS_3SEEDS, "efficientnet_b0_64", "balanced_accuracy"), SPCT),
    Claim(RESULTS_MD, "(# [#, #] macro-F1, # [#, #] balanced accuracy)", PAIRED,
          paired(OURS_3SEEDS, "resnet18_64", "macro_f1", "balanced_accuracy"), SPCT),
    Claim(RESULTS_MD, "ours averages test macro-F1 # +- # and balanced accuracy # +- # (accuracy # +- #)",
          ACCURACY, mean_std(OURS_3SEEDS, "macro_f1", "balanced_accuracy", "accuracy")),
    Claim(RESULTS_MD, "`resnet18` # +- # and # +- # (# +- #): each", ACCURACY,
          mean_std("resnet18_64", "macro_f1", "balanced_accuracy", "accuracy")),
    # README "Results in brief": rare classes and chirality, faithfulness, embeddings
    Claim(README, "gets the winding right on #% of the spirals", ACCURACY, (chirality_of(TINY_ROW),),
          F(".0f", 100)),
    Claim(README, "\"Merger\" from # and # to # and # test F1 (# and # test galaxies", ACCURACY,
          seed0(OURS_3SEEDS, *RARE) + seed0(TINY_ROW, *RARE) + seed0(TINY_ROW, *RARE_SUPPORT),
          (*(F(".0f", 100),) * 4, F(".0f"), F(".0f"))),
    Claim(README, "on a small sample: # validation galaxies, # for the ablation", FAITH,
          ("deletion/images", "decision/images"), F(".0f")),
    Claim(README, "flips #% of the predictions, the other two none", FAITH,
          ("decision/ablations/attn2/flip_rate/mean",), F(".0f", 100)),
    Claim(README, "(deletion AUC # vs # and #; ROAD MoRF # vs # and #)", FAITH,
          tuple(f"deletion/maps/{m}/deletion_auc/mean" for m in ("attn2", "brightness", "centre"))
          + tuple(f"road/maps/{m}/morf_auc/mean" for m in ("attn2", "brightness", "centre")), F(".3f")),
    Claim(README, "worse than random (deletion # vs #)", FAITH,
          tuple(f"deletion/maps/{m}/deletion_auc/mean" for m in ("attn1", "random")), F(".3f")),
    Claim(README, "#% of a galaxy's 10 nearest neighbours share its class with the tiny network's attended "
          "features, #% with resnet18's pooled features trained the same way", KNN,
          tuple(f"features/{f}/six_classes/mean" for f in (LFL_OURS, LFL_RESNET))),
    Claim(README, "trained the same way (128 px, sampler, 10 epochs), #% with raw pixels", KNN,
          ("features/pixels_32px/six_classes/mean",)),
    # README and docs/results.md: like for like (128 px, sampler, 10 epochs, three seeds each)
    Claim(README, "test macro-F1 is # +- # for the tiny network (1.2 M parameters), # +- # for `resnet18` "
          "(11.2 M) and # +- # for `convnext_atto`", LIKE_FOR_LIKE,
          tuple(p for row in (LFL_OURS, LFL_RESNET, LFL_CONVNEXT) for p in mean_std(row, "macro_f1"))),
    Claim(README, "interval above 0 in # of # comparisons (macro-F1 and balanced accuracy), both against "
          "`convnext_atto` on seed 1, and below 0 in #",
          LIKE_FOR_LIKE, (lambda d: len(_seed_pairs(d, above=True)), lambda d: len(_seed_pairs(d)),
                          lambda d: len(_seed_pairs(d, above=False))), F(".0f")),
    Claim(RESULTS_MD, "not ahead (mean macro-F1 # vs # for `resnet18`)", LIKE_FOR_LIKE,
          tuple(f"rows/{row}/aggregate/test_macro_f1_mean" for row in (LFL_OURS, LFL_RESNET))),
    Claim(README, "the shipped tiny weights had 37 epochs (test macro-F1 #)", RESCORE,
          (f"tags/{SHIPPED_TINY}/test/train_only/macro_f1",)),
    Claim(README, "at 32 px its weights (now withdrawn) scored # test macro-F1", RESCORE,
          (f"tags/{RETIRED_VGG}/test/train_only/macro_f1",)),
    Claim(README, "the one epoch its 15-minute budget bought (#)", ACCURACY,
          ("rows/paper_vgg_32/runs/0/test/macro_f1",)),
    *(Claim(RESULTS_MD, f"| {name} | # | ... | # +- # | # +- # | # +- # | # +- # |", LIKE_FOR_LIKE,
            (f"rows/{row}/runs/0/num_params",)
            + mean_std(row, "accuracy", "balanced_accuracy", "macro_f1", "tta_macro_f1"),
            (F(".2f", 1e-6), *(PCT,) * 8))
      for row, name in ((LFL_OURS, "`galaxy_attn_vgg_tiny_s4` (ours)"), (LFL_RESNET, "`resnet18`"),
                        (LFL_CONVNEXT, "`convnext_atto`"))),
    *(Claim(RESULTS_MD, f"- `{peer}` {title}: # [#, #]; # [#, #]; # [#, #]", LIKE_FOR_LIKE,
            (_flat_pairs(peer, metric),), SPCT)
      for peer in (LFL_RESNET, LFL_CONVNEXT)
      for metric, title in (("macro_f1", "macro-F1"), ("balanced_accuracy", "balanced accuracy"))),
    # docs/hub.md: D4 TTA on validation (benchmarks/tta_validation.py)
    Claim(HUB_MD, "(# -> #; accuracy # -> #, balanced accuracy # -> #;", TTA,
          tta("macro_f1", "accuracy", "balanced_accuracy")),
    # docs/training.md: emulated bf16 on the AMD EPYC held to AVX2, and the default precision's speed-up
    Claim(TRAINING_MD, "a bf16 matmul ran at # GFLOP/s against # in fp32", SPEED_AMD,
          ("training/1/matmul_gflops/bf16", "training/1/matmul_gflops/fp32"), (F(".1f"), F(".0f"))),
    Claim(TRAINING_MD, "trains at #x the speed of `--mixed-precision no` (both fp32), and natively it picks "
          "bf16 at #x fp32", SPEED_AMD, ("training/1/ratio", "training/0/ratio"), F(".2f")),
    # docs/throughput.md: the catalogue against the bare forward with simplejpeg, held to AVX2
    Claim(THROUGHPUT_MD, "(fp32; `benchmarks/results/predict_amd_avx2.json`, # JPEGs", PREDICT_AVX2,
          ("rows/0/n_images",), F(".0f")),
    Claim(THROUGHPUT_MD, "`predict` runs at #x the bare forward (#x with `--maps`) against a ceiling of #x",
          PREDICT_AVX2, ("rows/1/ratio", "rows/2/ratio", "rows/5/ratio"), F(".2f")),
    Claim(THROUGHPUT_MD, "decode and crop take # ms and its forward # ms", PREDICT_AVX2,
          ("stage_costs_1_thread/decode_s", "stage_costs_1_thread/forward_s"), F(".1f", 1000)),
    # docs/pretraining.md: the joint run, the decision on validation, test once, the linear probe
    Claim(PRETRAIN_MD, "24 epochs took # minutes (# training images/s", JOINT_RUN,
          ("wall_time_s", "images_per_s"), (F(".0f", 1 / 60), F(".0f"))),
    Claim(PRETRAIN_MD, "macro-F1 # vs # and balanced accuracy # vs # (paired differences # [#, #] and "
          "# [#, #])",
          PRETRAIN_VAL, ("new/macro_f1", "shipped/macro_f1", "new/balanced_accuracy",
                         "shipped/balanced_accuracy", "difference_new_minus_shipped/macro_f1",
                         "difference_new_minus_shipped/balanced_accuracy"), (F3,) * 4 + (S3,) * 6),
    Claim(PRETRAIN_MD, "accuracy # [#, #], macro-F1 # [#, #], balanced accuracy # [#, #]; against",
          PRETRAIN_TEST, new_and_ci("accuracy", "macro_f1", "balanced_accuracy"), F3),
    Claim(PRETRAIN_MD, "paired # [#, #], # [#, #] and # [#, #]. Per class", PRETRAIN_TEST,
          tuple(f"difference_new_minus_shipped/{m}" for m in TEST_ORDER), S3),
    Claim(PRETRAIN_MD, "test ROC-AUC # +- # with the new weights and # +- # with the old (level: old minus "
          "new # [#, #]), both above random weights (#) and raw pixels (#)", PROBE,
          (*probe_mean_sd("tiny_gz_sdss"), *probe_mean_sd("tiny_gz1_sdss"),
           "summary/minus_reference/tiny_gz1_sdss/mean", "summary/minus_reference/tiny_gz1_sdss/t95",
           "summary/models/tiny_random_init/roc_auc/0", "summary/models/pixels_32px/roc_auc/0"),
          (F3, F3, F3, F3, S3, S3, S3, F3, F3)),
    Claim(PRETRAIN_MD, "on ROC-AUC by # [#, #] (t interval over seeds)", FT_GZ,
          (f"{FT_GZ_PAIRED}/roc_auc/mean", f"{FT_GZ_PAIRED}/roc_auc/t95"), S3),
    Claim(PRETRAIN_MD, "scores validation macro-F1 # and balanced accuracy #,", f"{CONTROL}/validation.json",
          ("new/macro_f1", "new/balanced_accuracy"), F3),
    Claim(PRETRAIN_MD, "test macro-F1 # and balanced accuracy #; control minus joint on test, paired: "
          "# [#, #] and # [#, #].", f"{CONTROL}/test.json", ("new/macro_f1", "new/balanced_accuracy",
          "difference_new_minus_shipped/macro_f1", "difference_new_minus_shipped/balanced_accuracy"),
          (F3, F3) + (S3,) * 6),
    # docs/pretraining.md: the paper's network trained jointly (benchmarks/results/pretrain_gz/paper_s4)
    Claim(PRETRAIN_MD, "validation macro-F1\n  reached # at epoch 6, then the training loss rose and "
          "macro-F1 fell to # at epoch 9", f"{PAPER}/first_attempt_lr2e-3.json",
          ("history/5/val_macro_f1", "history/8/val_macro_f1"), F3),
    Claim(PRETRAIN_MD, "the # epochs the session had left took\n  # minutes (# training images/s)", PAPER_RUN,
          ("epochs", "wall_time_s", "images_per_s"), (F(".0f"), F(".0f", 1 / 60), F(".0f"))),
    Claim(PRETRAIN_MD, "macro-F1 # and balanced accuracy #, against # and # for the\n  32 px weights",
          f"{PAPER}/vs_vgg_gz1_sdss/validation.json",
          ("new/macro_f1", "new/balanced_accuracy", "shipped/macro_f1", "shipped/balanced_accuracy"), F3),
    Claim(PRETRAIN_MD, "and # and # for the tiny default (paired\n  # [#, #] and # [#, #]: rule 2",
          f"{PAPER}/vs_tiny_gz_sdss/validation.json",
          ("shipped/macro_f1", "shipped/balanced_accuracy", "difference_new_minus_shipped/macro_f1",
           "difference_new_minus_shipped/balanced_accuracy"), (F3, F3) + (S3,) * 6),
    Claim(PRETRAIN_MD, "accuracy # [#, #], macro-F1 # [#, #], balanced\n  accuracy # [#, #]. Paired",
          PAPER_TEST, new_and_ci(*TEST_ORDER), F3),
    Claim(PRETRAIN_MD, "replaces: # [#, #] macro-F1\n  and # [#, #] balanced accuracy",
          f"{PAPER}/vs_vgg_gz1_sdss/test.json", tuple(f"difference_new_minus_shipped/{m}" for m in
          ("macro_f1", "balanced_accuracy")), S3),
    Claim(PRETRAIN_MD, "against the tiny default:\n  # [#, #] and # [#, #].", PAPER_TEST,
          tuple(f"difference_new_minus_shipped/{m}" for m in ("macro_f1", "balanced_accuracy")), S3),
    Claim(PRETRAIN_MD, "its spirals (F1 # and # on validation against # and #)",
          f"{PAPER}/vs_tiny_gz_sdss/validation.json",
          tuple(f"{w}/per_class/Spiral {c}/f1" for w in ("new", "shipped") for c in SPIRALS),
          F(".2f")),
    # docs/pretraining.md: the paper's network continued in a second session (pretrain_gz/paper_s4_continued)
    Claim(PRETRAIN_MD, "bf16 autocast; # training images/s at 128 px against # on the AMX Xeon)",
          f"{PAPER2}/seed0/metrics.json", ("images_per_s", lambda d: json.loads(
              (REPO_ROOT / PAPER_RUN).read_text())["images_per_s"]), F(".0f")),
    Claim(PRETRAIN_MD, "macro-F1 fell to # after the warm-up's first epoch (# h), then rose to # at epoch 5 "
          "(# h, the best) and ended at # after 8 epochs (# h)", f"{PAPER2}/progress.json",
          ("epochs/0/macro_f1", "epochs/0/hours", "epochs/4/macro_f1", "epochs/4/hours", "epochs/7/macro_f1",
           "epochs/7/hours"), (F3, F(".2f")) * 3),
    Claim(PRETRAIN_MD, "macro-F1 # and balanced accuracy #, paired against the weights it started from "
          "# [#, #] and # [#, #] (rule 1", f"{PAPER2}/vs_shipped_gz_sdss/validation.json",
          ("new/macro_f1", "new/balanced_accuracy", "difference_new_minus_shipped/macro_f1",
           "difference_new_minus_shipped/balanced_accuracy"), (F3, F3) + (S3,) * 6),
    Claim(PRETRAIN_MD, "tiny default # [#, #] and # [#, #]: level",
          f"{PAPER2}/vs_tiny_gz_sdss/validation.json", DIFF_F1_BAL, S3),
    Claim(PRETRAIN_MD, "accuracy # [#, #], macro-F1 # [#, #], balanced accuracy # [#, #]; paired",
          PAPER2_TEST, new_and_ci(*TEST_ORDER), F3),
    Claim(PRETRAIN_MD, "14-epoch weights: # [#, #] macro-F1 and # [#, #] balanced accuracy",
          f"{PAPER2}/vs_shipped_gz_sdss/test.json", DIFF_F1_BAL, S3),
    Claim(PRETRAIN_MD, "Against the tiny default: # [#, #] and # [#, #].", PAPER2_TEST, DIFF_F1_BAL, S3),
    Claim(PRETRAIN_MD, "(test F1 # and # against the tiny default's # and #)", PAPER2_TEST,
          tuple(f"{w}/per_class/Spiral {c}/f1" for w in ("new", "shipped") for c in SPIRALS), F(".2f")),
    Claim(PRETRAIN_MD, "`Merger` (F1 # against #, # galaxies) and `Don't know` (# against #, # galaxies)",
          PAPER2_TEST, tuple(f"{w}/per_class/{c}/{k}" for c in ("Merger", "Don't know") for w, k in
          (("new", "f1"), ("shipped", "f1"), ("new", "support"))), (F(".2f"), F(".2f"), F(".0f")) * 2),
    Claim(README, "without them score test macro-F1 #, # below with the votes", f"{CONTROL}/test.json",
          ("new/macro_f1", lambda d: -d["difference_new_minus_shipped"]["macro_f1"][0]), PCT),
    # docs/training.md: fine-tuning from the new default weights on the rings
    Claim(TRAINING_MD, "from scratch ROC-AUC # +- #, fine-tuned with the backbone at lr x 0.1 # +- #", FT_GZ,
          ("conditions/scratch/mean_sd/roc_auc", "conditions/finetune_lr0.1/mean_sd/roc_auc")),
    Claim(TRAINING_MD, "paired over seeds # [#, #] ROC-AUC, ahead on # of # seeds", FT_GZ,
          (f"{FT_GZ_PAIRED}/roc_auc/mean", f"{FT_GZ_PAIRED}/roc_auc/t95", f"{FT_GZ_PAIRED}/roc_auc/wins",
           ft_gz_seeds), (SPCT,) * 3 + (F(".0f"),) * 2),
    Claim(TRAINING_MD, "accuracy # [#, #] and macro-F1 # [#, #], level", FT_GZ,
          tuple(f"{FT_GZ_PAIRED}/{m}/{k}" for m in ("accuracy", "macro_f1") for k in ("mean", "t95")), SPCT),
    # README "Results in brief": the new default and what it transfers
    Claim(README, "scores test macro-F1 # and balanced accuracy #, paired # [#, #] and # [#, #] over",
          PRETRAIN_TEST, ("new/macro_f1", "new/balanced_accuracy", "difference_new_minus_shipped/macro_f1",
                          "difference_new_minus_shipped/balanced_accuracy"), (PCT, PCT) + (SPCT,) * 6),
    Claim(README, "beats training from scratch on ROC-AUC by # [#, #] (# seeds)", FT_GZ,
          (f"{FT_GZ_PAIRED}/roc_auc/mean", f"{FT_GZ_PAIRED}/roc_auc/t95",
           ft_gz_seeds), (SPCT, SPCT, SPCT, F(".0f"))),
)  # fmt: skip


# Tables copied from a results report: every table line of the doc must be a line of the report.
TABLES: tuple[tuple[str, str], ...] = ((RESULTS_MD, f"{RESULTS}/accuracy/results.md"),)
# Sections whose tables are summaries checked number by number in CLAIMS, not copies of a report.
CLAIMED_SECTIONS: dict[str, tuple[str, ...]] = {RESULTS_MD: ("## Like for like",)}


def _unclaimed_lines(doc: str) -> list[str]:
    """The lines of ``doc`` outside its CLAIMED_SECTIONS (a section runs to the next ``## `` heading)."""
    out, skipping = [], False
    for line in (REPO_ROOT / doc).read_text().splitlines():
        if line.startswith("## "):
            skipping = line.strip() in CLAIMED_SECTIONS.get(doc, ())
        if not skipping:
            out.append(line)
    return out


@cache
def load(path: str) -> Any:
    return json.loads((REPO_ROOT / path).read_text())


@cache
def doc_text(path: str) -> str:
    return " ".join((REPO_ROOT / path).read_text().split())


def lookup(data: Any, getter: Getter) -> list[float]:
    """The number(s) at ``getter`` in ``data``: a ``/``-path (list indexes allowed) or a function."""
    if callable(getter):
        value = getter(data)
    else:
        value = data
        for key in getter.split("/"):
            value = value[int(key)] if isinstance(value, list) else value[key]
    return [float(v) for v in value] if isinstance(value, list) else [float(value)]


def expected(claim: Claim) -> list[str]:
    """The claim's numbers as the doc must show them."""
    data = load(claim.source)
    numbers = [x for g in claim.values for x in lookup(data, g)]
    fmts = claim.fmt if isinstance(claim.fmt, tuple) else (claim.fmt,) * len(numbers)
    assert len(fmts) == len(numbers), f"{claim.fragment!r}: {len(fmts)} formats for {len(numbers)} numbers"
    return [f(x) for f, x in zip(fmts, numbers, strict=True)]


def mismatches(claim: Claim, text: str) -> list[str]:
    """What is wrong with ``claim`` in ``text``: fragment missing, or numbers unlike the results file."""
    want = expected(claim)
    found = [m.groups() for m in claim.pattern().finditer(text)]
    if not found:
        return [f"{claim.doc}: fragment {claim.fragment!r} not found"]
    return [
        f"{claim.doc}: {claim.fragment!r} shows {list(got)}, {claim.source} gives {want}"
        for got in found
        if list(got) != want
    ]


def _claim_id(claim: Claim) -> str:
    return f"{claim.doc}:{claim.fragment[:40]}"


@pytest.mark.parametrize("claim", CLAIMS, ids=_claim_id)
def test_doc_number_matches_results_file(claim: Claim) -> None:
    assert claim.source.startswith(f"{RESULTS}/"), "every number comes from a file under benchmarks/results/"
    assert claim.pattern().groups == len(expected(claim)), "one # per number in the fragment"
    assert mismatches(claim, doc_text(claim.doc)) == []


@pytest.mark.parametrize("claim", CLAIMS, ids=_claim_id)
def test_a_changed_number_is_caught(claim: Claim) -> None:
    text = doc_text(claim.doc)
    match = claim.pattern().search(text)
    assert match is not None
    start, end = match.span(1)
    changed = text[:start] + match.group(1) + "1" + text[end:]  # 84.8 -> 84.81, 110 -> 1101
    assert mismatches(claim, changed), "a doc number unlike its results file must fail"


@pytest.mark.parametrize(("doc", "report"), TABLES)
def test_doc_tables_are_report_lines(doc: str, report: str) -> None:
    lines = set((REPO_ROOT / report).read_text().splitlines())
    rows = [line for line in _unclaimed_lines(doc) if line.startswith("|")]
    assert rows, f"{doc} holds no table"
    assert [r for r in rows if r not in lines] == [], f"table lines of {doc} that {report} does not hold"


def test_fragment_syntax() -> None:
    claim = Claim("README.md", "took # s ... reached # [#, #]", MAIN_JOB, ("wall_time_s",))
    m = claim.pattern().search("it took 12 s and then reached +0.5 [-1.0, 2]")
    assert m is not None and m.groups() == ("12", "+0.5", "-1.0", "2")


def _sources() -> Sequence[str]:
    return sorted({c.source for c in CLAIMS} | {report for _, report in TABLES})


@pytest.mark.parametrize("source", _sources())
def test_results_file_exists(source: str) -> None:
    assert (REPO_ROOT / source).is_file()
