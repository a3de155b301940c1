"""The ``evaluate.MetricInfo`` shared by the class-id metric modules (accuracy, macro-F1, ...).

Imported relatively by those scripts, so ``evaluate`` copies it beside them like ``_core.py``.
"""

import datasets
import evaluate


def class_id_metric_info(
    description: str, inputs_description: str, citation: str = ""
) -> evaluate.MetricInfo:
    """MetricInfo of a metric over int64 ``predictions`` and ``references`` (class ids)."""
    return evaluate.MetricInfo(
        description=description,
        citation=citation,
        inputs_description=inputs_description,
        features=datasets.Features(
            {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
        ),
    )
