"""Fault tolerance: a run that is preempted, killed or requeued resumes where it stopped.

``FaultTolerance`` does three things, all needed for a resumed run to match an
uninterrupted one:

* **SIGTERM** (a preempted cluster job, ``scancel``, a timeout): Lightning 2.6 stops
  after the current batch by raising ``SIGTERMException`` but saves nothing; this
  callback then writes ``last.ckpt`` and the process exits with status 0.
* **``last.ckpt`` is this callback's alone**: written at the end of every epoch and of the fit
  (so after a clean run it holds the final weights), and, with ``every_n_train_steps``,
  mid-epoch every that many optimizer steps (written to a temporary file, then renamed, so
  ``kill -9`` never leaves a torn file). ``ModelCheckpoint`` keeps only ``best.ckpt``: two
  callbacks writing one name left a stale ``last.ckpt`` behind.
  The datamodule's batch order is a pure function of (seed, epoch) and skips the
  batches an interrupted epoch already did, so no batch is repeated or lost.
* **Random-number state** (torch, numpy, python) in every checkpoint, so dropout and
  modality dropout draw the same numbers after a resume.

Resume with ``mmemo train <same overrides> hydra.run.dir=<run folder> ckpt_path=last``.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)


class FaultTolerance(Callback):
    def __init__(self, dirpath: str, every_n_train_steps: int | None = None, filename: str = "last.ckpt"):
        self.path = Path(dirpath) / filename
        self.every = int(every_n_train_steps) if every_n_train_steps else 0
        self.saved_on_sigterm: Path | None = None
        self._saved_step = -1
        self._pending_rng: dict | None = None

    def save(self, trainer) -> Path:
        """Write the full training state to ``last.ckpt`` atomically (all ranks take part)."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(str(temporary))
        if trainer.is_global_zero:
            os.replace(temporary, self.path)
        trainer.strategy.barrier("fault_tolerance_save")
        return self.path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # Saved *between* batches: after the previous batch's optimizer and LR-scheduler steps, before
        # this batch draws any random numbers. (Saving in on_train_batch_end, as ModelCheckpoint does,
        # precedes the scheduler step, and a resumed run then trails the schedule by one step.)
        if self._pending_rng is not None:  # a resumed run: continue the interrupted run's random stream
            _set_rng(self._pending_rng)
            self._pending_rng = None
        step = trainer.global_step
        if self.every and step > 0 and step % self.every == 0 and step != self._saved_step:
            self.save(trainer)
            self._saved_step = step

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # after the epoch's validation (Lightning runs it before this hook), so ModelCheckpoint's
        # and EarlyStopping's state of this epoch is in the file too
        self._save_once(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._save_once(trainer)  # a fit stopped by max_steps mid-epoch: still the final weights

    def _save_once(self, trainer) -> None:
        if trainer.fast_dev_run or trainer.global_step == self._saved_step:
            return
        self.save(trainer)
        self._saved_step = trainer.global_step

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit":
            self.saved_on_sigterm = self.save(trainer)
            log.warning("SIGTERM: saved %s at epoch %d, step %d; resume with ckpt_path=last", self.path,
                        trainer.current_epoch, trainer.global_step)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        name, keys, position, has_gauss, cached = np.random.get_state()
        # plain types only: Lightning loads checkpoints with torch.load(weights_only=True)
        checkpoint["mmemo_rng"] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                                   "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached)]}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        # Applied at the first batch, not here: creating the data iterators after a restore draws
        # from torch's generator, which the uninterrupted run did before its checkpoint.
        self._pending_rng = checkpoint.get("mmemo_rng")
        self._saved_step = checkpoint.get("global_step", -1)


def _set_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    random.setstate(state["python"])
