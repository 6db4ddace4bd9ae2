"""Test helpers: a callback that interrupts its own run at a given training step (as a cluster would)."""

from __future__ import annotations

import os
import signal

from lightning.pytorch.callbacks import Callback


class InterruptAt(Callback):
    """Send ``signal_name`` (SIGTERM, SIGKILL) to this process when ``step`` batches have trained."""

    def __init__(self, step: int, signal_name: str = "SIGTERM"):
        self.step, self.signal = int(step), getattr(signal, signal_name)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signal)
