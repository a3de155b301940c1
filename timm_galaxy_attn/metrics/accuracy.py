"""Accuracy as a local ``evaluate`` module (loads offline: ``evaluate.load(path_to_this_file)``)."""

import evaluate
from sklearn.metrics import accuracy_score

from ._core import check_labels
from ._info import class_id_metric_info

_DESCRIPTION = "Fraction of examples whose predicted class equals the reference class."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
    num_classes (int, optional): number of classes; ids must lie in 0..num_classes-1.
Returns:
    accuracy (float): in [0, 1].
"""


class Accuracy(evaluate.Metric):
    def _info(self):
        return class_id_metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references, num_classes=None):
        refs, preds, _ = check_labels(references, predictions, num_classes)
        return {"accuracy": float(accuracy_score(refs, preds))}
