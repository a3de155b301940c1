"""Expected calibration error (top-label, equal-width bins) as a local ``evaluate`` module (loads offline)."""

import datasets
import evaluate
import numpy as np

from ._core import check_probabilities, expected_calibration_error

_DESCRIPTION = (
    "Expected calibration error of the top-label confidence (Guo et al. 2017): the bin-size weighted mean of "
    "|accuracy - mean confidence| over equal-width confidence bins."
)
_CITATION = """@inproceedings{guo2017calibration,
  title={On Calibration of Modern Neural Networks}, author={Guo, Chuan and Pleiss, Geoff and Sun, Yu and
  Weinberger, Kilian Q.}, booktitle={ICML}, year={2017}}"""
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of list of float): class probabilities per example (rows sum to 1; softmax of logits).
    references (list of int): true class ids.
    n_bins (int): number of equal-width confidence bins, default 15.
Returns:
    ece (float): in [0, 1]; 0 is perfectly calibrated.
"""


class ExpectedCalibrationError(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, predictions, references, n_bins=15):
        probs, labels = check_probabilities(np.asarray(predictions, dtype=np.float64), references)
        return {"ece": expected_calibration_error(probs, labels, n_bins=n_bins)}
