"""Search spaces in Hydra's grammar -> Optuna trials and W&B sweep specs; the sweeper loop; pruning."""

from __future__ import annotations

import statistics
import subprocess
import sys
from types import SimpleNamespace

import optuna
import pytest
import torch
import yaml
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from hydra_plugins.mmemo_optuna_sweeper.optuna_sweeper import OptunaSweeper
from mmemo.sweeps.optuna_study import objective_value, open_study, suggest
from mmemo.sweeps.pruning import OptunaPruning
from mmemo.sweeps.search_space import parse_search_space
from mmemo.sweeps.wandb_sweep import load_search, to_wandb_spec, train_overrides

SPACE = {
    "model/fusion": "choice(concat, joint_embedding)",
    "model.fusion.hidden": "range(64, 257, 64)",
    "model.fusion.dropout": "interval(0.0, 0.5)",
    "model.optim.lr": "tag(log, interval(1e-4, 3e-3))",
    "trainer.max_epochs": "tag(int, interval(5, 20))",
    "seed": "7",
    "model/fusion=joint_embedding": {"model.fusion.align_weight": "interval(0.0, 1.0)"},
}


def test_hydra_grammar_is_parsed_into_typed_parameters():
    space = parse_search_space(SPACE, ["model.fusion.dropout=choice(0.1, 0.2)"])
    by_name = {p.name: p for p in space.params}
    assert by_name["model/fusion"].choices == ("concat", "joint_embedding")
    assert (by_name["model.fusion.hidden"].kind, by_name["model.fusion.hidden"].high) == ("int", 256)
    assert by_name["model.optim.lr"].log and by_name["model.optim.lr"].kind == "float"
    assert by_name["trainer.max_epochs"].kind == "int"
    assert by_name["model.fusion.dropout"].choices == (0.1, 0.2), "a command-line override replaces the config's"
    assert by_name["model.fusion.align_weight"].when == ("model/fusion", "joint_embedding")
    assert space.fixed == ("seed=7",)
    for bad in ({"x": "tag(log, interval(0, 1))"}, {"x": "tag(cube, interval(1, 2))"},
                {"a=b": {"x": "choice(1, 2)"}}):
        with pytest.raises(ValueError):
            parse_search_space(bad)


def test_conditional_parameters_are_sampled_only_when_their_condition_holds():
    space = parse_search_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        values = suggest(study.ask(), space)
        seen.add(values["model/fusion"])
        assert ("model.fusion.align_weight" in values) == (values["model/fusion"] == "joint_embedding")
        assert 1e-4 <= values["model.optim.lr"] <= 3e-3 and values["model.fusion.hidden"] in (64, 128, 192, 256)
    assert seen == {"concat", "joint_embedding"}


def test_the_fusion_search_translates_to_a_wandb_sweep_spec():
    space, sweeper = load_search("fusion_optuna")
    spec = to_wandb_spec(space, sweeper, config="fusion_optuna")
    assert spec["method"] == "bayes" and spec["metric"] == {"name": "valid/UA", "goal": "maximize"}
    params = spec["parameters"]
    assert params["model/fusion"]["values"][0] == "concat"
    assert params["model.optim.lr"] == {"distribution": "log_uniform_values", "min": 1e-4, "max": 3e-3}
    assert params["model.fusion.dropout"] == {"distribution": "uniform", "min": 0.0, "max": 0.5}
    assert params["model.fusion.align_weight"]["distribution"] == "uniform"
    assert spec["command"][-1] == "${args_no_hyphens}" and "job" in spec["command"]
    toy = parse_search_space(SPACE)
    toy_spec = to_wandb_spec(toy, {"direction": "minimize", "objective": "valid.loss"}, config="x", method="random")
    assert toy_spec["metric"] == {"name": "valid/loss", "goal": "minimize"}
    assert toy_spec["parameters"]["model.fusion.hidden"] == {"values": [64, 128, 192, 256]}
    assert toy_spec["parameters"]["trainer.max_epochs"] == {"distribution": "int_uniform", "min": 5, "max": 20}
    assert toy_spec["parameters"]["seed"] == {"value": "7"}
    with pytest.raises(ValueError, match="grid"):
        to_wandb_spec(toy, {}, config="x", method="grid")


def test_a_wandb_job_drops_parameters_whose_condition_fails():
    space = parse_search_space(SPACE)
    args = ["model/fusion=concat", "model.fusion.align_weight=0.3", "model.optim.lr=0.001"]
    assert train_overrides("fusion_optuna", args, space) == [
        "hparams_search=fusion_optuna", "model/fusion=concat", "model.optim.lr=0.001"]
    kept = train_overrides("fusion_optuna", ["model/fusion=joint_embedding", "model.fusion.align_weight=0.3"], space)
    assert "model.fusion.align_weight=0.3" in kept


def test_wandb_sweep_cli_dry_run_and_clear_offline_error():
    dry = subprocess.run([sys.executable, "-m", "mmemo.cli", "sweep", "wandb", "fusion_optuna", "--dry-run"],
                         capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert yaml.safe_load(dry.stdout.split("# job command")[0])["metric"]["name"] == "valid/UA"
    assert "mmemo train hparams_search=fusion_optuna model/fusion=" in dry.stdout
    offline = subprocess.run([sys.executable, "-m", "mmemo.cli", "sweep", "wandb", "fusion_optuna"],
                             capture_output=True, text=True, env={"WANDB_MODE": "offline", "PATH": ""})
    assert offline.returncode == 2 and "WANDB_MODE=offline" in offline.stderr


class FakeLauncher:
    """Runs 'jobs' in-process: objective = 1 - |lr - 1e-3| * 100; jobs with hidden=64 are pruned."""

    def __init__(self):
        self.jobs = []

    def launch(self, batch, initial_job_idx):
        results = []
        for overrides in batch:
            self.jobs.append(overrides)
            values = dict(o.lstrip("+").split("=", 1) for o in overrides)
            if values.get("model.fusion.hidden") == "64":
                results.append(JobReturn(overrides=overrides, status=JobStatus.FAILED,
                                         _return_value=optuna.TrialPruned("pruned")))
            else:
                score = 1 - abs(float(values["model.optim.lr"]) - 1e-3) * 100
                results.append(JobReturn(overrides=overrides, status=JobStatus.COMPLETED,
                                         _return_value={"valid": {"UA": score}}))
        return results


def _sweeper(tmp_path, n_trials):
    sweeper = OptunaSweeper(study_name="toy", storage=f"sqlite:///{tmp_path}/study.db", n_trials=n_trials,
                            sampler=optuna.samplers.RandomSampler(seed=1),
                            params={"model.optim.lr": "tag(log, interval(1e-4, 1e-2))",
                                    "model.fusion.hidden": "choice(64, 128)"})
    sweeper.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    sweeper.launcher = FakeLauncher()
    return sweeper


def test_sweeper_tells_results_prunes_resumes_and_writes_the_best_config(tmp_path):
    first = _sweeper(tmp_path, 4)
    first.sweep(["seed=3"])
    assert len(first.launcher.jobs) == 4
    assert all("seed=3" in job and "++optuna.study_name=toy" in job for job in first.launcher.jobs)
    # an interrupted run: one more trial left RUNNING, as a killed sweep leaves it
    study = open_study("toy", f"sqlite:///{tmp_path}/study.db", "maximize")
    stale = study.ask()
    stale.suggest_float("model.optim.lr", 1e-4, 1e-2, log=True)
    stale.suggest_categorical("model.fusion.hidden", [64, 128])

    second = _sweeper(tmp_path, 6)
    second.sweep(["seed=3"])
    study = open_study("toy", f"sqlite:///{tmp_path}/study.db", "maximize")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1, "the interrupted trial is marked failed"
    finished = [t for t in study.trials if t.state != optuna.trial.TrialState.FAIL]
    assert len(finished) == 6 and len(second.launcher.jobs) == 2, "the rerun only runs what is missing"
    assert study.trials[-2].params == stale.params, "the interrupted configuration is tried again first"
    assert study.trials[-1].params not in [t.params for t in study.trials[:4]], "a resumed sampler draws anew"
    assert any(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert best["best_value"] == pytest.approx(study.best_value) and "seed=3" in best["overrides"]
    assert best["final_command"].startswith("mmemo train seed=3 ") and best["final_command"].endswith("test=true")
    assert (tmp_path / "history.png").stat().st_size > 1000


def test_objective_value_reads_a_dotted_key():
    assert objective_value({"valid": {"UA": 0.5}}, "valid.UA") == 0.5 and objective_value(0.25, "x") == 0.25
    with pytest.raises(KeyError, match="valid.WA"):
        objective_value({"valid": {"UA": 0.5}}, "valid.WA")


def test_pruning_callback_reports_the_running_fold_mean_and_prunes(tmp_path):
    from lightning.pytorch.trainer.states import TrainerFn

    storage = f"sqlite:///{tmp_path}/study.db"
    study = open_study("prune", storage, "maximize")
    trial = study.ask()
    callback = OptunaPruning(trial=trial.number, study_name="prune", storage=storage, fold_index=1,
                             previous_scores=[0.8], max_epochs=10,
                             pruner=optuna.pruners.ThresholdPruner(lower=0.7))
    trainer = SimpleNamespace(sanity_checking=False, state=SimpleNamespace(fn=TrainerFn.FITTING), current_epoch=0,
                              callback_metrics={"val/UA": torch.tensor(0.7)}, is_global_zero=True,
                              strategy=SimpleNamespace(broadcast=lambda value: value))
    callback.on_validation_end(trainer, None)  # running mean (0.8 + 0.7) / 2 = 0.75: kept
    trainer.current_epoch, trainer.callback_metrics = 1, {"val/UA": torch.tensor(0.3)}
    with pytest.raises(optuna.TrialPruned):  # best of this fold stays 0.7 -> 0.75; a lower best would prune
        callback.pruner = optuna.pruners.ThresholdPruner(lower=0.76)
        callback._trial = None
        callback.on_validation_end(trainer, None)
    reported = study.trials[0].intermediate_values
    assert reported[10] == pytest.approx(statistics.fmean([0.8, 0.7]))
    assert set(reported) == {10, 11}, "step = fold_index * max_epochs + epoch"
    trainer.state.fn = TrainerFn.VALIDATING
    callback.on_validation_end(trainer, None)  # the final validate() of a run is not a step
    assert set(study.trials[0].intermediate_values) == {10, 11}


def test_fusion_search_config_composes_with_the_optuna_sweeper_and_no_test_split():
    from hydra.utils import instantiate

    from mmemo.config import compose

    cfg = compose("train", ["hparams_search=fusion_optuna"])
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.storage.startswith("sqlite:///") and cfg.hydra.sweeper.storage.endswith("study.db")
    assert cfg.test is False and list(cfg.cross_validation.folds) == [1, 2, 3]
    callback = instantiate(cfg.callbacks.optuna_pruning)
    assert not callback.active, "outside a sweep (no optuna.trial) pruning is off"
