"""k-fold cross-validation as one job: train every fold in turn, return the mean validation metrics.

An Optuna trial (or any job) with ``cross_validation.folds=[1,2,3]`` trains those folds
one after the other into ``<job folder>/fold<k>`` and is scored by the mean over
folds, so a hyperparameter is chosen for every held-out speaker group, not one.
Each fold is its own W&B run. Later folds see the earlier folds' scores
(``cross_validation.index`` / ``.scores``) so pruning can report a running mean.
"""

from __future__ import annotations

import copy
import json
import logging
import statistics
from pathlib import Path

from omegaconf import DictConfig, open_dict

from mmemo.evaluation.metrics import HEADLINE

log = logging.getLogger(__name__)


def wants_folds(cfg: DictConfig) -> bool:
    node = cfg.get("cross_validation")
    return bool(node and node.get("folds"))


def train_folds(cfg: DictConfig) -> dict:
    """Train ``cross_validation.folds`` one by one; return the mean (and std) of validation metrics."""
    from mmemo.training.run import train

    folds = list(cfg.cross_validation.folds)
    if len(set(folds)) != len(folds):
        raise ValueError(f"cross_validation.folds repeats a fold: {folds}")
    base = Path(cfg.paths.output_dir)
    results = []
    for index, fold in enumerate(folds):
        fold_cfg = copy.deepcopy(cfg)
        with open_dict(fold_cfg):
            fold_cfg.data.fold = fold
            fold_cfg.paths.output_dir = str(base / f"fold{fold}")
            fold_cfg.cross_validation.folds = None
            fold_cfg.cross_validation.index = index
            fold_cfg.cross_validation.scores = [r["valid"]["UA"] for r in results]
        result = train(fold_cfg)
        results.append(result)
        log.info("fold %s (%d/%d): valid UA %.4f", fold, index + 1, len(folds), result["valid"]["UA"])
    summary = summarize(folds, results)
    summary["output_dir"] = str(base)
    base.mkdir(parents=True, exist_ok=True)
    (base / "cv_results.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    log.info("mean valid UA over folds %s: %.4f ± %.4f", folds, summary["valid"]["UA"], summary["valid_std"]["UA"])
    return summary


def summarize(folds: list, results: list[dict]) -> dict:
    """Mean and std over folds of each headline metric, for validation (and test when it ran)."""
    def stats(split: str) -> tuple[dict, dict] | tuple[None, None]:
        if any(r.get(split) is None for r in results):
            return None, None
        values = {m: [float(r[split][m]) for r in results] for m in HEADLINE}
        return ({m: statistics.fmean(v) for m, v in values.items()},
                {m: statistics.pstdev(v) if len(v) > 1 else 0.0 for m, v in values.items()})

    valid, valid_std = stats("valid")
    test, test_std = stats("test")
    return {"folds": folds, "valid": valid, "valid_std": valid_std, "test": test, "test_std": test_std,
            "per_fold": [{"fold": f, "valid_UA": r["valid"]["UA"],
                          "test_UA": (r.get("test") or {}).get("UA"),
                          "output_dir": (r.get("meta") or {}).get("output_dir")} for f, r in zip(folds, results)]}
