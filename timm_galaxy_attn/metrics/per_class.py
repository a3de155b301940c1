"""Per-class precision, recall, F1, support and the confusion matrix as a local ``evaluate`` module.

A class never predicted has precision 0, a class absent from the references has support 0 and recall 0,
and F1 is 0 whenever it has no true positive (scikit-learn ``zero_division=0``).
"""

import evaluate
import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from ._core import check_labels
from ._info import class_id_metric_info

_DESCRIPTION = "Per-class precision/recall/F1/support and the confusion matrix (rows = true class)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
    num_classes (int, optional): number of classes (default: highest id seen + 1).
Returns:
    precision, recall, f1 (list of float), support (list of int): one entry per class id;
    confusion_matrix (list of list of int): rows = true class, columns = predicted class.
"""


class PerClass(evaluate.Metric):
    def _info(self):
        return class_id_metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references, num_classes=None):
        refs, preds, k = check_labels(references, predictions, num_classes)
        labels = np.arange(k)
        precision, recall, f1, support = precision_recall_fscore_support(
            refs, preds, labels=labels, zero_division=0
        )
        return {
            "precision": [float(v) for v in precision],
            "recall": [float(v) for v in recall],
            "f1": [float(v) for v in f1],
            "support": [int(v) for v in support],
            "confusion_matrix": confusion_matrix(refs, preds, labels=labels).tolist(),
        }
