"""Balanced accuracy as a local ``evaluate`` module (loads offline).

Mean recall over the classes present in the references (scikit-learn ``balanced_accuracy_score``).
"""

import warnings

import evaluate
from sklearn.metrics import balanced_accuracy_score

from ._core import check_labels
from ._info import class_id_metric_info

_DESCRIPTION = "Unweighted mean of per-class recall over classes present in the references."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
    num_classes (int, optional): number of classes; ids must lie in 0..num_classes-1.
Returns:
    balanced_accuracy (float): in [0, 1].
"""


class BalancedAccuracy(evaluate.Metric):
    def _info(self):
        return class_id_metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references, num_classes=None):
        refs, preds, _ = check_labels(references, predictions, num_classes)
        with warnings.catch_warnings():
            # predictions of a class absent from the references only lower the true classes' recall
            warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
            return {"balanced_accuracy": float(balanced_accuracy_score(refs, preds))}
