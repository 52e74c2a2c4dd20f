"""The check that a Hugging Face export gives our numbers, shared by the tests that export from each
form a run leaves (a ``.ckpt``, a DeepSpeed directory, DeepSpeed's ``zero_to_fp32`` output)."""

from pathlib import Path

import torch
from transformers import AutoModel, LukeForMaskedLM

from lightning_kg.model.pretraining import KnowledgePretrainingModel

ENCODER_INPUTS = ("input_ids", "attention_mask", "entity_ids", "entity_position_ids", "entity_attention_mask")


def assert_export_matches(out: Path, model: KnowledgePretrainingModel, inputs: dict[str, torch.Tensor]) -> None:
    """``LukeForMaskedLM`` from ``out`` gives our word and entity logits, ``AutoModel`` our word and
    entity states (fp32, 1e-4), and both load with no missing or unexpected key beyond the heads.
    ``inputs`` holds ``ENCODER_INPUTS``: ``(batch, seq)`` words, ``(batch, entities)`` entities,
    ``(batch, entities, mention_length)`` entity positions."""
    hf, info = LukeForMaskedLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    base, info = AutoModel.from_pretrained(out, output_loading_info=True)
    assert type(base).__name__ == "LukeModel" and not info["missing_keys"]
    model = model.eval()
    with torch.no_grad():
        theirs, their_states = hf.eval()(**inputs), base.eval()(**inputs)
        ours = model.encoder(*(inputs[k] for k in ENCODER_INPUTS))
        words = model.mlm_head(ours.word_hidden, model.encoder.embeddings.word.weight)
        entities = model.entity_head(ours.entity_hidden) @ model.encoder.entity_embeddings.table.weight.t() + model.entity_head.bias
    torch.testing.assert_close(theirs.logits, words, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(theirs.entity_logits, entities, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(their_states.last_hidden_state, ours.word_hidden, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(their_states.entity_last_hidden_state, ours.entity_hidden, atol=1e-4, rtol=1e-4)
