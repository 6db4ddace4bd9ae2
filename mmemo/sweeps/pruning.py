"""Pruning an Optuna trial from inside Lightning: report each validation epoch, stop hopeless trials.

The job does not hold the sweeper's ``Trial`` object (it may run in another process,
or on a SLURM node), so the callback re-opens the trial from the study's storage by
``(study_name, trial number)``, which the sweeper passes to every job as ``optuna.*``.

Intermediate value: the running mean validation UA over folds, i.e. the mean of the
finished folds' best UA and the current fold's best UA so far. Step:
``fold_index * max_epochs + epoch``, so trials are compared at the same fold and epoch.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence

from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)


class OptunaPruning(Callback):
    def __init__(self, *, trial: int | None, study_name: str | None, storage: str | None, pruner=None,
                 monitor: str = "val/UA", mode: str = "max", fold_index: int = 0,
                 previous_scores: Sequence[float] | None = None, max_epochs: int = 1):
        self.trial_number, self.study_name, self.storage, self.pruner = trial, study_name, storage, pruner
        self.monitor, self.mode = monitor, mode
        self.fold_index, self.previous = int(fold_index or 0), [float(s) for s in previous_scores or []]
        self.max_epochs = max(1, int(max_epochs or 1))
        self.best: float | None = None
        self._trial = None
        if trial is not None and not storage:
            log.warning("Optuna pruning is off: the study has no storage the job could reach (set "
                        "hydra.sweeper.storage)")

    @property
    def active(self) -> bool:
        return self.trial_number is not None and bool(self.storage)

    def _open_trial(self):
        import optuna

        study = optuna.load_study(study_name=self.study_name, storage=self.storage, pruner=self.pruner)
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, int(self.trial_number))
        return optuna.trial.Trial(study, trial_id)

    def on_validation_end(self, trainer, pl_module) -> None:
        from lightning.pytorch.trainer.states import TrainerFn

        if not self.active or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return  # only epochs of fit() are steps; the final validate() of a run is not
        current = trainer.callback_metrics.get(self.monitor)
        if current is None:
            return
        current = float(current)
        better = max if self.mode == "max" else min
        self.best = current if self.best is None else better(self.best, current)
        step = self.fold_index * self.max_epochs + trainer.current_epoch
        prune = False
        if trainer.is_global_zero:
            if self._trial is None:
                self._trial = self._open_trial()
            value = statistics.fmean(self.previous + [self.best])
            self._trial.report(value, step)
            prune = self._trial.should_prune()
        prune = trainer.strategy.broadcast(prune)
        if prune:
            import optuna

            raise optuna.TrialPruned(f"trial {self.trial_number} pruned at step {step} "
                                     f"(fold index {self.fold_index}, epoch {trainer.current_epoch})")
