"""Finished runs from a W&B project, as :class:`~mmemo.evaluation.tables.Run` records.

mmemo logs each run's resolved config and its ``test/UA``, ``test/WA``,
``test/macro_F1`` ... metrics, so a project's runs can be tabulated without
their local folders (e.g. runs made on a cluster). Needs network access and a
W&B API key; the error says so when they are missing.
"""

from __future__ import annotations

from pathlib import Path

from mmemo.errors import MissingDependency
from mmemo.evaluation.tables import Run

TEST_PREFIX = "test/"


def load_wandb_runs(project: str, *, filters: dict | None = None, api=None) -> list[Run]:
    """Runs of ``entity/project`` that logged test metrics (``api`` is injectable for tests)."""
    if api is None:
        try:
            import wandb

            api = wandb.Api(timeout=30)
        except Exception as error:  # wandb raises several types for missing keys / no network
            raise MissingDependency(f"cannot reach the W&B API for {project!r} ({error}). Run `wandb login` (or set "
                               "WANDB_API_KEY) on a machine with network access, or build the table from local "
                               "run folders instead: mmemo table runs/...") from error
    runs = []
    for remote in api.runs(project, filters=filters or {}):
        summary = dict(remote.summary)
        test = {k[len(TEST_PREFIX):]: v for k, v in summary.items()
                if k.startswith(TEST_PREFIX) and isinstance(v, (int, float))}
        if "UA" not in test and "CCC" not in test:  # not an mmemo test summary
            continue
        config = dict(remote.config)
        meta = {"config": config, "fold": (config.get("data") or {}).get("fold"), "seed": config.get("seed"),
                "dataset": (config.get("data") or {}).get("name") or "?", "wandb": remote.path}
        runs.append(Run(Path(f"wandb:{'/'.join(remote.path)}"), test, meta))
    return runs
