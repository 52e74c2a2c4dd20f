"""The shipped demo dataset and the arguments of a short, quiet fit on it, for the tests that train
on real shards (a helper module, not a test module: test modules import it, never each other)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The checkout these tests belong to (lightning_kg/, shards/, conf/)."""

DEMO = str(ROOT / "shards" / "demo")

SMALL = ["--data.data_dir", DEMO, "--data.num_workers", "0", "--data.batch_size", "8", "--data.fact_batch_size", "8",
         "--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "5"]
"""``fit``/``validate``/``test`` arguments: the demo in the main process, batches of 8, no progress bar."""
