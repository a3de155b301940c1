"""Macro-averaged F1 as a local ``evaluate`` module (loads offline).

Averages F1 over the classes present in the references or the predictions, with F1 = 0 for a class that
has no true positive (scikit-learn ``f1_score(average="macro", zero_division=0)``).
"""

import evaluate
from sklearn.metrics import f1_score

from ._core import check_labels
from ._info import class_id_metric_info

_DESCRIPTION = "Unweighted mean of per-class F1 over classes present in references or predictions."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
    num_classes (int, optional): number of classes; ids must lie in 0..num_classes-1.
Returns:
    macro_f1 (float): in [0, 1].
"""


class MacroF1(evaluate.Metric):
    def _info(self):
        return class_id_metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references, num_classes=None):
        refs, preds, _ = check_labels(references, predictions, num_classes)
        return {"macro_f1": float(f1_score(refs, preds, average="macro", zero_division=0))}
