"""Several folds in one job, scored by the mean validation metrics (``recipe=crossval``).

An Optuna trial (or any job) with ``cross_validation.folds=[1,2,3]`` runs
``cross_validation.inner`` (the train recipe by default) on those folds one after the other,
into ``<job folder>/fold<k>``, and is scored by the mean over folds, so a hyperparameter is
chosen for every held-out speaker group, not one. Each fold is its own W&B run. Later folds see
the earlier folds' scores (``cross_validation.index`` / ``.scores``) so pruning can report a
running mean. The inner recipe is named by its ``_target_``, never imported here.
"""

from __future__ import annotations

import copy
import json
import logging
import statistics
from pathlib import Path

from hydra.utils import get_method
from omegaconf import DictConfig, open_dict

from mmemo.data.targets import selection_metric
from mmemo.errors import InvalidInput
from mmemo.evaluation.metrics import HEADLINE

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Run the inner recipe on ``cross_validation.folds``; return the mean (and std) of validation metrics."""
    options = cfg.cross_validation
    folds = list(options.folds or [])
    if not folds:
        raise InvalidInput("recipe=crossval needs cross_validation.folds, e.g. [1,2,3]")
    if len(set(folds)) != len(folds):
        raise InvalidInput(f"cross_validation.folds repeats a fold: {folds}")
    inner = get_method(options.inner._target_)
    metric = selection_metric(cfg.get("task", "categorical"))
    base = Path(cfg.paths.output_dir)
    results = []
    for index, fold in enumerate(folds):
        fold_cfg = copy.deepcopy(cfg)
        with open_dict(fold_cfg):
            fold_cfg.data.fold = fold
            fold_cfg.paths.output_dir = str(base / f"fold{fold}")
            fold_cfg.cross_validation.index = index
            fold_cfg.cross_validation.scores = [r["valid"][metric] for r in results]
        result = inner(fold_cfg)
        results.append(result)
        log.info("fold %s (%d/%d): valid %s %.4f", fold, index + 1, len(folds), metric, result["valid"][metric])
    summary = summarize(folds, results, metric)
    summary["output_dir"] = str(base)
    base.mkdir(parents=True, exist_ok=True)
    (base / "cv_results.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    log.info("mean valid %s over folds %s: %.4f ± %.4f", metric, folds, summary["valid"][metric],
             summary["valid_std"][metric])
    return summary


def summarize(folds: list, results: list[dict], metric: str = "UA") -> dict:
    """Mean and std over folds of each scalar metric every fold has (UA/WA/F1, CCC per dimension, ...),
    for validation (and test when it ran); ``metric`` is the one the folds are selected on."""
    def stats(split: str) -> tuple[dict, dict] | tuple[None, None]:
        if any(r.get(split) is None for r in results):
            return None, None
        names = [m for m in (*HEADLINE, *results[0][split]) if all(_scalar(r[split].get(m)) for r in results)]
        values = {m: [float(r[split][m]) for r in results] for m in dict.fromkeys(names)}
        return ({m: statistics.fmean(v) for m, v in values.items()},
                {m: statistics.pstdev(v) if len(v) > 1 else 0.0 for m, v in values.items()})

    valid, valid_std = stats("valid")
    test, test_std = stats("test")
    return {"folds": folds, "valid": valid, "valid_std": valid_std, "test": test, "test_std": test_std,
            "selection": metric,
            "per_fold": [{"fold": f, f"valid_{metric}": r["valid"][metric],
                          f"test_{metric}": (r.get("test") or {}).get(metric),
                          "output_dir": (r.get("meta") or {}).get("output_dir")} for f, r in zip(folds, results)]}


def _scalar(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
