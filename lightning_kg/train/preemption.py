"""Stop on SIGTERM with a checkpoint, so a preempted run loses at most the step it was in.

Lightning's own handler does the signal-time work (it only sets ``trainer.received_sigterm``); this
callback does the rest between steps: all ranks agree that one of them was signalled, save
``last.ckpt`` (written to a temporary name and renamed, so a second signal or a SIGKILL during the
save leaves the previous one whole), and stop. ``--ckpt_path last`` then resumes exactly there.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Callback


class SaveOnSigterm(Callback):
    def __init__(self, checkpoint_dir: str | Path):
        self.checkpoint_dir = Path(checkpoint_dir)
        self.saved: Path | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.saved is not None:
            return
        # Collective, so every rank saves (DeepSpeed writes a shard per rank) or none does.
        if trainer.strategy.reduce_boolean_decision(bool(trainer.received_sigterm), all=False):
            self.saved = self.checkpoint_dir / "last.ckpt"
            trainer.save_checkpoint(self.saved)
            trainer.should_stop = True
