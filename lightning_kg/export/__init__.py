"""``python -m lightning_kg export``: a training checkpoint -> a Hugging Face directory."""
