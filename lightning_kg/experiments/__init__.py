"""Experiment drivers: commands that run many fits and compare them (``ablate``), with the
charts and summaries of ``lightning_kg.charts``."""
