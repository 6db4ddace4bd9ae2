"""W&B sweeps from the same search space as Optuna: ``mmemo sweep wandb CONFIG``.

``CONFIG`` is an hparams_search config (a name under ``configs/hparams_search/`` or a
yaml path). Its ``hydra.sweeper.params`` (Hydra's override grammar) become a W&B
sweep spec; each agent job runs ``mmemo sweep job CONFIG <key=value ...>``, which drops
parameters whose condition does not hold (W&B has no conditional parameters), runs
``mmemo train hparams_search=CONFIG ...`` as a Hydra run (k-fold inside, one W&B run
per fold grouped by the sweep), and reports the objective to the agent's own run.
"""

from __future__ import annotations

import os
import random
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from mmemo.errors import InvalidInput, MissingDependency, MissingInput
from mmemo.evaluation.report import read_metrics
from mmemo.sweeps.search_space import Param, SearchSpace, format_value, parse_search_space

METHODS = ("bayes", "random", "grid")


def search_config_path(config: str) -> Path:
    """A yaml path as given, or ``configs/hparams_search/<name>.yaml``."""
    from mmemo.config import config_dir

    path = Path(config)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise MissingInput(f"no search config at {path}")
        return path
    path = config_dir() / "hparams_search" / f"{config}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in (config_dir() / "hparams_search").glob("*.yaml"))
        raise MissingInput(f"no hparams_search config {config!r}; available: {names}")
    return path


def load_search(config: str) -> tuple[SearchSpace, dict]:
    """The search space and the sweeper settings (direction, objective, n_trials) of a search config."""
    node = OmegaConf.load(search_config_path(config))
    sweeper = OmegaConf.to_container(node.get("hydra", {}).get("sweeper", {}), resolve=False) or {}
    if not sweeper.get("params"):
        raise InvalidInput(f"{config}: hydra.sweeper.params is empty; nothing to search")
    return parse_search_space(sweeper["params"]), sweeper


def wandb_parameter(param: Param) -> dict[str, Any]:
    """One parameter in W&B's sweep grammar."""
    if param.kind == "choice":
        return {"values": list(param.choices)}
    if param.kind == "int":
        if param.step not in (None, 1):
            return {"values": list(range(int(param.low), int(param.high) + 1, int(param.step)))}
        if param.log:
            return {"distribution": "q_log_uniform_values", "min": int(param.low), "max": int(param.high), "q": 1}
        return {"distribution": "int_uniform", "min": int(param.low), "max": int(param.high)}
    if param.step is not None:
        return {"distribution": "q_uniform", "min": param.low, "max": param.high, "q": param.step}
    if param.log:
        return {"distribution": "log_uniform_values", "min": param.low, "max": param.high}
    return {"distribution": "uniform", "min": param.low, "max": param.high}


def job_command(config: str) -> list[str]:
    """The agent's command template (W&B substitutes ``${args_no_hyphens}`` with key=value pairs)."""
    return ["${env}", "mmemo", "sweep", "job", config, "${args_no_hyphens}"]


def to_wandb_spec(space: SearchSpace, sweeper: dict, *, config: str, method: str = "bayes",
                  name: str | None = None) -> dict:
    """A W&B sweep spec: method, metric (the sweeper's objective), parameters, command."""
    if method not in METHODS:
        raise InvalidInput(f"--method must be one of {METHODS}, got {method!r}")
    parameters: dict[str, dict] = {}
    for param in space.params:
        spec = wandb_parameter(param)
        if method == "grid" and "values" not in spec:
            raise InvalidInput(f"grid search needs discrete values; {param.name} is a continuous interval "
                             "(use choice(...) or range(...), or --method bayes|random)")
        if param.name in parameters and parameters[param.name] != spec:
            if "values" in spec and "values" in parameters[param.name]:
                merged = parameters[param.name]["values"] + [v for v in spec["values"]
                                                             if v not in parameters[param.name]["values"]]
                spec = {"values": merged}
            else:
                raise InvalidInput(f"{param.name} has different ranges in two conditional blocks; W&B sweeps "
                                 "hold one range per parameter")
        parameters[param.name] = spec
    for fixed in space.fixed:
        key, _, value = fixed.partition("=")
        parameters[key] = {"value": value}
    objective = str(sweeper.get("objective", "valid.UA"))
    return {
        "name": name or f"mmemo-{config}",
        "method": method,
        "metric": {"name": objective.replace(".", "/"),
                   "goal": "maximize" if sweeper.get("direction", "maximize") == "maximize" else "minimize"},
        "parameters": parameters,
        "command": job_command(config),
        **({"run_cap": int(sweeper["n_trials"])} if sweeper.get("n_trials") else {}),
    }


def sample_commands(spec: dict, space: SearchSpace, config: str, count: int = 3, seed: int = 0) -> list[str]:
    """Example job commands as the agent would run them (random draws from the spec)."""
    rng = random.Random(seed)
    commands = []
    for _ in range(count):
        drawn = {name: _draw(rng, p) for name, p in spec["parameters"].items()}
        args = [f"{k}={format_value(v)}" for k, v in drawn.items()]
        commands.append(shlex.join(["mmemo", "sweep", "job", config, *args]) + "\n    -> "
                        + shlex.join(["mmemo", "train", *train_overrides(config, args, space)]))
    return commands


def _draw(rng: random.Random, p: dict):
    import math

    if "value" in p:
        return p["value"]
    if "values" in p:
        return rng.choice(p["values"])
    low, high = p["min"], p["max"]
    kind = p["distribution"]
    if kind == "int_uniform":
        return rng.randint(low, high)
    if kind in ("log_uniform_values", "q_log_uniform_values"):
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
        return round(value) if kind.startswith("q_") else value
    value = rng.uniform(low, high)
    return round(value / p["q"]) * p["q"] if kind == "q_uniform" else value


def train_overrides(config: str, args: list[str], space: SearchSpace) -> list[str]:
    """``hparams_search=CONFIG`` plus the job's values whose conditions hold."""
    values = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise InvalidInput(f"expected key=value, got {arg!r}")
        values[key] = value
    active = {p.name for p in space.active(values)}
    searched = {p.name for p in space.params}
    kept = [f"{k}={v}" for k, v in values.items() if k in active or k not in searched]
    return [f"hparams_search={config}" if not config.endswith((".yaml", ".yml")) else
            f"hparams_search={Path(config).stem}", *kept]


def require_online() -> None:
    """W&B sweeps run on the W&B server: refuse offline mode or a missing API key, clearly."""
    from mmemo.training.loggers import _has_wandb_credentials

    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "dryrun", "disabled"):
        raise MissingDependency(f"W&B sweeps need the W&B server, but WANDB_MODE={mode}. Unset it (or set "
                           "WANDB_MODE=online) and log in, or use the Optuna sweeper offline: "
                           "mmemo train -m hparams_search=<name>. `--dry-run` prints the spec without W&B.")
    if not _has_wandb_credentials():
        raise MissingDependency("W&B sweeps need an API key: run `wandb login` or set WANDB_API_KEY. Without one, "
                           "use the Optuna sweeper (mmemo train -m hparams_search=<name>); `--dry-run` prints "
                           "the W&B spec and job commands.")


def start_wandb_sweep(config: str, *, method: str = "bayes", count: int | None = None, project: str | None = None,
                      entity: str | None = None, dry_run: bool = False) -> dict:
    """Build the spec; with ``dry_run`` print it and example jobs, else create the sweep and run an agent."""
    import yaml

    space, sweeper = load_search(config)
    spec = to_wandb_spec(space, sweeper, config=config, method=method)
    if dry_run:
        print(yaml.safe_dump(spec, sort_keys=False))
        print("# job command template: " + " ".join(spec["command"]))
        print("# example jobs (random draws):")
        for command in sample_commands(spec, space, config):
            print("  " + command)
        return spec
    require_online()
    import wandb

    project = project or os.environ.get("WANDB_PROJECT", "mmemo")
    sweep_id = wandb.sweep(spec, project=project, entity=entity)
    print(f"W&B sweep {sweep_id} created in {project}; starting an agent (count={count or 'unlimited'})")
    wandb.agent(sweep_id, project=project, entity=entity, count=count)
    return spec


def run_job(config: str, args: list[str]) -> dict:
    """One W&B sweep job: train (k-fold) as a Hydra run, then log the objective to the agent's run.

    The folds log to their own W&B runs, grouped by the sweep; the agent's run
    (``WANDB_RUN_ID``) receives only the configuration and the cross-validated metrics,
    which the sweep optimises.
    """
    import json
    import tempfile

    space, sweeper = load_search(config)
    overrides = train_overrides(config, args, space)
    sweep_id = os.environ.get("WANDB_SWEEP_ID", "local")
    run_id = os.environ.get("WANDB_RUN_ID")
    run_dir = Path(os.environ.get("MMEMO_ROOT", ".")) / "runs" / "wandb_sweeps" / sweep_id / (run_id or "job")
    fold_env = {k: v for k, v in os.environ.items() if k not in ("WANDB_RUN_ID", "WANDB_SWEEP_ID")}
    command = [sys.executable, "-m", "mmemo.cli", "train", *overrides, f"hydra.run.dir={run_dir}",
               f"logger.wandb.group=sweep-{sweep_id}", f"logger.wandb.name={run_id or 'job'}-fold${{data.fold}}"]
    print("running: " + shlex.join(command), flush=True)
    subprocess.run(command, env=fold_env, check=True)
    summary_path = run_dir / "cv_results.json"  # the crossval recipe's summary; else one run's metrics
    result = (json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file()
              else read_metrics(run_dir))
    metrics = {f"{split}/{name}": value for split in ("valid", "valid_std", "test")
               for name, value in (result.get(split) or {}).items() if isinstance(value, (int, float))}
    if run_id:
        import wandb

        with tempfile.TemporaryDirectory() as scratch:
            run = wandb.init(dir=scratch, config=dict(a.partition("=")[::2] for a in args))
            run.log(metrics)
            run.finish()
    print(json.dumps(metrics, indent=2))
    return metrics
