"""Names and ids that the shards, the batches, the model and its logs agree on (docs/FORMATS.md).
The reserved entity ids ([PAD], [UNK], [MASK] = 0, 1, 2) are defined with the vocabulary, in
``entity_vocab.py``."""

OBJECTIVES = ("mlm", "mep_vocab", "mep_contrastive", "oe")
"""The four objectives, in the order configs, logs and metrics list them."""
CONTRASTIVE_OBJECTIVES = ("mep_contrastive", "oe")
"""XLM-K's two objectives: projection heads, negative queues and pair accuracy."""
IGNORE_INDEX = -100
"""Label of a position no loss reads (``torch.nn.functional.cross_entropy``'s default)."""
