"""Optuna studies for mmemo sweeps: sampling overrides, resuming, and the files a study leaves.

Kept apart from the Hydra plugin (``hydra_plugins/mmemo_optuna_sweeper``) so it can be
tested and reused without Hydra's launch machinery.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from mmemo.sweeps.search_space import SearchSpace, format_value, to_overrides

log = logging.getLogger(__name__)


def open_study(study_name: str, storage: str | None, direction: str, sampler=None, pruner=None) -> optuna.Study:
    """Create the study, or load it when ``storage`` already holds one of that name (resume)."""
    if storage and storage.startswith("sqlite:///"):
        Path(storage[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return optuna.create_study(study_name=study_name, storage=storage, direction=direction, sampler=sampler,
                               pruner=pruner, load_if_exists=True)


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Sample the space define-by-run (a conditional block only when its condition holds)."""
    chosen: dict[str, Any] = {}
    for param in space.params:
        if param.when is not None and format_value(chosen.get(param.when[0])) != param.when[1]:
            continue
        if param.kind == "choice":
            chosen[param.name] = trial.suggest_categorical(param.name, list(param.choices))
        elif param.kind == "int":
            chosen[param.name] = trial.suggest_int(param.name, int(param.low), int(param.high),
                                                   step=int(param.step or 1), log=param.log)
        else:
            chosen[param.name] = trial.suggest_float(param.name, param.low, param.high, step=param.step,
                                                     log=param.log)
    return chosen


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Trials left RUNNING by a killed sweep are marked FAIL and their parameters queued again.

    Assumes one sweeper process per study (the documented use); completed and
    pruned trials are kept, so a rerun continues where the sweep stopped.
    """
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        if trial.params:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        log.warning("trial %d was interrupted; its parameters are queued again", trial.number)
    return [t.number for t in stale]


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def objective_value(result: Any, metric: str) -> float:
    """The number to optimise from a job's return value: itself, or ``metric`` as a dotted key."""
    if isinstance(result, (int, float)):
        return float(result)
    value = result
    for part in metric.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(f"the job's result has no {metric!r} (objective metric); it has {sorted(result)}")
        value = value[part]
    return float(value)


def write_study_outputs(study: optuna.Study, folder: str | Path, *, fixed: tuple[str, ...] = (),
                        metric: str = "", trial_dirs: Mapping[int, Path] | None = None) -> list[Path]:
    """``best.yaml`` (the best trial's overrides and value), ``best_config.yaml``
    (its full composed config, when its job folder is known) and ``history.png``."""
    import shutil

    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    best = study.best_trial
    overrides = list(fixed) + to_overrides(best.params)
    summary = {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "objective": metric,
        "best_trial": best.number,
        "best_value": float(best.value),
        "best_params": {k: v for k, v in best.params.items()},
        "overrides": overrides,
        # one (non-multirun) job retrains the best configuration on every fold and tests it once
        "final_command": "mmemo train " + " ".join(_quoted(o) for o in overrides + ["test=true"]),
        "trials": {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
                   for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)},
    }
    written = [folder / "best.yaml"]
    written[0].write_text(yaml.safe_dump(summary, sort_keys=False), encoding="utf-8")
    source = (trial_dirs or {}).get(best.number)
    if source is not None and (Path(source) / ".hydra" / "config.yaml").is_file():
        shutil.copyfile(Path(source) / ".hydra" / "config.yaml", folder / "best_config.yaml")
        written.append(folder / "best_config.yaml")
    written.append(plot_history(study, folder / "history.png"))
    return written


def _quoted(override: str) -> str:
    return f"'{override}'" if any(c in override for c in " ()[]{},*?") else override


def plot_history(study: optuna.Study, path: Path) -> Path:
    """Objective value of every finished trial and the best so far (Optuna's matplotlib plot)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_optimization_history

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib backend experimental
        axes = plot_optimization_history(study)
    axes.set_title(f"Optuna study {study.study_name}")
    axes.figure.set_size_inches(7, 4)
    axes.figure.tight_layout()
    axes.figure.savefig(path, dpi=120)
    plt.close(axes.figure)
    return path
