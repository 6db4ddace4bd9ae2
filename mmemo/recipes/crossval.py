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
    base = Path(cfg.paths.output_dir)
    results = []
    for index, fold in enumerate(folds):
        fold_cfg = copy.deepcopy(cfg)
        with open_dict(fold_cfg):
            fold_cfg.data.fold = fold
            fold_cfg.paths.output_dir = str(base / f"fold{fold}")
            fold_cfg.cross_validation.index = index
            fold_cfg.cross_validation.scores = [r["valid"]["UA"] for r in results]
        result = inner(fold_cfg)
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
