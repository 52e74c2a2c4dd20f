"""Attention takes no mask when nothing is padded and a boolean one otherwise (so SDPA may pick its
fused kernels), with the results of the additive float mask it replaced."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_kg.model.config import EncoderConfig
from lightning_kg.model.encoder import KnowledgeEncoder
from tests.model.tiny_model import ENTITIES, VOCAB, fixed_batch, model

SDPA = F.scaled_dot_product_attention


def additive_mask_attention(query, key, value, attn_mask=None, **options):
    """SDPA as the encoder called it before: (B, 1, 1, T) float bias, 0 for real keys and the dtype's
    minimum for padding; all zeros when nothing was padded."""
    real = torch.ones(key.shape[0], 1, 1, key.shape[2], dtype=torch.bool) if attn_mask is None else attn_mask
    bias = (1.0 - real.to(query.dtype)) * torch.finfo(query.dtype).min
    return SDPA(query, key, value, attn_mask=bias, **options)


def inputs(padded: bool) -> tuple[torch.Tensor, ...]:
    """(B=4, S=12) words and (B, E=3) entities; with ``padded``, rows of 12, 9, 5 and 12 words and 3, 1, 0, 2 entities."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(4, VOCAB, (4, 12), generator=generator)
    ids[:, 0] = 0
    mask, entity_mask = torch.ones_like(ids), torch.ones(4, 3, dtype=torch.long)
    if padded:
        for row, (words, entities) in enumerate([(12, 3), (9, 1), (5, 0), (12, 2)]):
            ids[row, words:], mask[row, words:], entity_mask[row, entities:] = 1, 0, 0
    entity_ids = torch.randint(3, ENTITIES, (4, 3), generator=generator) * entity_mask
    positions = torch.tensor([[1, 2], [3, -1], [4, -1]]).expand(4, 3, 2).clone()
    return ids, mask, entity_ids, positions, entity_mask


@pytest.mark.parametrize("aware", [False, True], ids=["plain", "entity-aware"])
@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
def test_boolean_or_no_mask_gives_the_additive_masks_results(monkeypatch, aware, padded):
    torch.manual_seed(0)
    encoder = KnowledgeEncoder(EncoderConfig.preset("tiny", VOCAB, ENTITIES, use_entity_aware_attention=aware)).eval()
    args = inputs(padded)
    masks = []
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, attn_mask=None, **o: masks.append(attn_mask) or SDPA(*a, attn_mask=attn_mask, **o))
    ours = encoder(*args, padded=padded)
    read = encoder(*args)  # padded=None: read from the masks
    assert all(m is None for m in masks) if not padded else all(m.dtype == torch.bool and m.shape == (4, 1, 1, 15) for m in masks)
    monkeypatch.setattr(F, "scaled_dot_product_attention", additive_mask_attention)
    before = encoder(*args, padded=padded)
    words, entities = args[1].bool(), args[4].bool()
    for out in (ours, read):  # padding positions are anything either way; real ones must agree
        torch.testing.assert_close(out.word_hidden[words], before.word_hidden[words], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.entity_hidden[entities], before.entity_hidden[entities], atol=1e-5, rtol=1e-5)


def test_the_model_masks_text_rows_only_when_the_collator_counted_padding(monkeypatch):
    """The text pass takes its mask form from ``counts`` (no read of the device); knowledge texts are always masked."""
    net = model().eval()
    masks = []
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, attn_mask=None, **o: masks.append(attn_mask) or SDPA(*a, attn_mask=attn_mask, **o))
    for text_padding in (0, 5):
        masks.clear()
        batch = fixed_batch()
        batch["counts"] = {"text_padding": text_padding, "masked_words": 12, "masked_entities": 6, "tokens": 0, "samples": 12}
        net(batch)
        layers = net.config.num_layers
        assert [m is None for m in masks] == [text_padding == 0] * layers + [False] * layers, text_padding
