"""Cloze probing of what a checkpoint knows, per language (LAMA, mLAMA, mLUKE's entity prompts).

The flow, one module each: ``templates`` (relation x language -> "[X] ... [Y]" from a YAML file),
``queries`` (fact shards -> cloze queries with their candidate sets, and what was skipped and why),
``scoring`` (the model: entity-based and word-based scores, label embeddings), ``metrics`` (ranks ->
P@1, P@10, MRR, cross-lingual consistency, entity alignment), ``report`` (terminal table, CSV, PNG),
``run`` (the ``probe`` verb).
"""
