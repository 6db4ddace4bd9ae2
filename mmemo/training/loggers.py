"""Experiment loggers: CSV always works; W&B is offline unless the user turns it online."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path

from mmemo.errors import InvalidInput, MissingDependency

log = logging.getLogger(__name__)
WANDB_MODES = ("online", "offline", "disabled")
#: wandb's older spellings (Lightning's WandbLogger sets WANDB_MODE=dryrun when given offline=True).
_ALIASES = {"dryrun": "offline", "run": "online"}


def _has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def make_wandb_logger(*, mode: str = "offline", project: str = "mmemo", entity: str | None = None,
                      group: str | None = None, name: str | None = None, tags: list[str] | None = None,
                      save_dir: str = ".", **init_options):
    """A ``WandbLogger`` whose run lives in ``<save_dir>/wandb``.

    Each call starts a new W&B run, so every Hydra multirun job is its own run
    (grouped by ``group``). Online mode without credentials fails here, before
    training, instead of prompting for a key half-way through.
    """
    mode = _ALIASES.get(mode, mode) or "offline"  # an empty WANDB_MODE means unset
    if mode not in WANDB_MODES:
        raise InvalidInput(f"logger.wandb.mode must be one of {WANDB_MODES}, got {mode!r}")
    if mode == "online" and not _has_wandb_credentials():
        raise MissingDependency(
            "W&B is set online but no API key was found. Run `wandb login` or set WANDB_API_KEY, "
            "or keep logging offline (the default) and upload later with `wandb sync <run>/wandb`."
        )
    from lightning.pytorch.loggers import WandbLogger

    Path(save_dir).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_SILENT", "true")
    # The mode goes to wandb.init; Lightning's own offline=True would also set WANDB_MODE=dryrun in
    # os.environ, changing the resolved config of every later job of an in-process sweep.
    return WandbLogger(project=project, entity=entity, group=group, name=name or Path(save_dir).name,
                       tags=list(tags or []), save_dir=save_dir, mode=mode, **init_options)


def finish_wandb() -> None:
    """Close the current W&B run, so the next in-process run starts a fresh one."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()
