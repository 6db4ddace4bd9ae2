"""Recipes: what one config does, end to end. Peers, selected by ``recipe._target_``; none imports another.

====================  ==========================================================================
``train``             fit, pick the best checkpoint on validation UA, test it once, write results
``classical``         hand-crafted (or frozen-encoder) statistics + scikit-learn, same folds and files
``crossval``          several folds in one job, scored by the mean (runs ``cross_validation.inner``)
``extract``           fill the feature cache of every frozen encoder
``evaluate``          test a checkpoint on a split
====================  ==========================================================================

Shared building blocks are in :mod:`mmemo.recipes.common`.
"""

from __future__ import annotations

from hydra.utils import get_method


def run_config(cfg) -> dict:
    """Run the recipe a composed config names (``mmemo train``, ``mmemo eval`` and tests call this)."""
    target = (cfg.get("recipe") or {}).get("_target_")
    if not target:
        from mmemo.errors import InvalidInput

        raise InvalidInput("the config names no recipe (recipe._target_, e.g. mmemo.recipes.train.run)")
    return get_method(target)(cfg)
