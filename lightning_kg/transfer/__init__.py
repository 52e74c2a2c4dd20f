"""Fine-tune a checkpoint on a task in one language and test it zero-shot in the others."""
