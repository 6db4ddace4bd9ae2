"""How metrics are named and scaled in tables and plots: one place, so a table and its chart agree.

Classification metrics (UA, WA, F1) read as percentages; CCC, Pearson, MAE and the soft-label
divergences are conventionally reported as plain numbers (CCC 0.612, not 61.2), as the
dimensional-emotion literature does.
"""

from __future__ import annotations

METRIC_LABELS = {"UA": "UA", "WA": "WA", "macro_F1": "macro-F1", "weighted_F1": "weighted-F1",
                 "UA_CCC": "(UA+CCC)/2"}
#: Metrics shown in percent; the rest (CCC, Pearson, MAE, KL, JS, per dimension) as plain fractions.
PERCENT_METRICS = ("UA", "WA", "macro_F1", "weighted_F1")


def is_percent(metric: str) -> bool:
    return metric in PERCENT_METRICS


def metric_label(metric: str) -> str:
    """``CCC_arousal`` -> ``CCC arousal``; headline metrics by their usual names."""
    return METRIC_LABELS.get(metric, metric.replace("_", " ", 1))
