"""A Hydra sweeper that runs an Optuna study: ask trials, launch them as Hydra jobs, tell results.

Same config surface as hydra-optuna-sweeper (direction, study_name, storage, n_trials,
n_jobs, sampler, params in Hydra's override grammar), on current Optuna. Additions:
conditional parameter blocks, resuming a stored study (``n_trials`` is the study's total),
trial identity passed to each job (``optuna.*`` keys, so a Lightning callback can report to
the trial from any launcher), and best.yaml + history.png. Pruning is not the sweeper's:
jobs prune themselves (``mmemo.sweeps.pruning``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class OptunaSweeper(Sweeper):
    def __init__(self, *, direction: str = "maximize", study_name: str | None = None, storage: str | None = None,
                 n_trials: int = 20, n_jobs: int = 1, sampler: Any = None,
                 params: dict | None = None, objective: str = "valid.UA", max_failure_rate: float = 0.0):
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"hydra.sweeper.direction must be maximize or minimize, got {direction!r}")
        if n_trials < 1 or n_jobs < 1:
            raise ValueError("hydra.sweeper.n_trials and n_jobs must be >= 1")
        self.direction, self.study_name, self.storage = direction, study_name or "mmemo", storage
        self.n_trials, self.n_jobs = int(n_trials), int(n_jobs)
        self.sampler = sampler
        self.params = OmegaConf.to_container(params, resolve=True) if isinstance(params, DictConfig) else params
        self.objective, self.max_failure_rate = objective, float(max_failure_rate)
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> list:
        import optuna

        from mmemo.sweeps.optuna_study import (
            finished_count,
            objective_value,
            open_study,
            recover_interrupted,
            suggest,
            write_study_outputs,
        )
        from mmemo.sweeps.search_space import parse_search_space, to_overrides

        assert self.config is not None and self.launcher is not None
        space = parse_search_space(self.params, list(arguments))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        study = open_study(self.study_name, self.storage, self.direction, self.sampler)
        recover_interrupted(study)
        if study.trials and hasattr(study.sampler, "reseed_rng"):
            # a seeded sampler rebuilt on resume would replay the draws of the first run
            study.sampler.reseed_rng()
        done = finished_count(study)
        log.info("Optuna study %s (%s): %d of %d trials finished; searching %s", self.study_name,
                 self.storage or "in memory", done, self.n_trials, ", ".join(space.names()))
        returns, failures, launched = [], 0, 0
        while (remaining := self.n_trials - finished_count(study)) > 0:
            trials = [study.ask() for _ in range(min(self.n_jobs, remaining))]
            batch = []
            for trial in trials:
                identity = [f"++optuna.trial={trial.number}", f"++optuna.study_name={self.study_name}",
                            f"++optuna.storage={self.storage}" if self.storage else "++optuna.storage=null"]
                batch.append(list(space.fixed) + to_overrides(suggest(trial, space)) + identity)
            results = self.launcher.launch(batch, initial_job_idx=trials[0].number)
            launched += len(trials)
            for trial, result in zip(trials, results):
                if result.status == JobStatus.COMPLETED:
                    value = objective_value(result.return_value, self.objective)
                    study.tell(trial, value)
                    log.info("trial %d: %s = %.4f", trial.number, self.objective, value)
                elif isinstance(result._return_value, optuna.TrialPruned):
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    log.info("trial %d pruned", trial.number)
                else:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    failures += 1
                    log.error("trial %d failed: %r", trial.number, result._return_value)
                    if failures / launched > self.max_failure_rate:
                        raise RuntimeError(f"trial {trial.number} failed (max_failure_rate="
                                           f"{self.max_failure_rate})") from result._return_value
            returns.append(results)
            write_study_outputs(study, sweep_dir, fixed=space.fixed, metric=self.objective,
                                trial_dirs=_known_trial_dirs(sweep_dir))
        written = write_study_outputs(study, sweep_dir, fixed=space.fixed, metric=self.objective,
                                      trial_dirs=_known_trial_dirs(sweep_dir))
        if written:
            best = study.best_trial
            log.info("best trial %d: %s = %.4f with %s; wrote %s", best.number, self.objective, best.value,
                     " ".join(to_overrides(best.params)), ", ".join(str(p) for p in written))
        return returns


def _known_trial_dirs(sweep_dir: Path) -> dict[int, Path]:
    """Job folders of earlier runs of this sweep, by trial number (read from their saved overrides)."""
    found = {}
    for overrides in sweep_dir.glob("*/.hydra/overrides.yaml"):
        for line in overrides.read_text(encoding="utf-8").splitlines():
            if "optuna.trial=" in line:
                try:
                    found[int(line.rsplit("=", 1)[1].strip().strip("'\""))] = overrides.parent.parent
                except ValueError:
                    pass
    return found
