"""lightning_kg: cross-lingual language-model pre-training with multilingual knowledge."""

__version__ = "0.1.0"
