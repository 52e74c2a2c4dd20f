"""The encoder: XLM-R/RoBERTa's post-LN transformer reading word tokens and LUKE's entity tokens.

Everything the forward pass needs is in this file. Words and entities are embedded separately,
concatenated, and run through the same layers, so every layer lets words attend to entities and
back (LUKE). Attention goes through ``scaled_dot_product_attention`` so GPUs get fused kernels:
with no mask when no position is padded (the flash kernel takes none) and a boolean one otherwise
(an additive float mask is materialised and keeps SDPA on slower kernels). There is no Python loop
over the batch, and the module compiles with ``torch.compile``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from lightning_kg.model.config import EncoderConfig


class EncoderOutput(NamedTuple):
    word_hidden: torch.Tensor  # (B, S, H)
    entity_hidden: torch.Tensor | None  # (B, E, H)
    layer_hidden: torch.Tensor | None  # (B, S, H) word states after layer ``return_layer``


def roberta_position_ids(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """Positions count from ``pad_token_id + 1``; padding keeps ``pad_token_id`` (RoBERTa, XLM-R)."""
    real = input_ids.ne(pad_token_id).long()
    return torch.cumsum(real, dim=1) * real + pad_token_id


class WordEmbeddings(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.pad_token_id = config.pad_token_id
        self.word = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size, padding_idx=config.pad_token_id)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, S) int64 -> (B, S, H)."""
        positions = roberta_position_ids(input_ids, self.pad_token_id)
        embedded = self.word(input_ids) + self.position(positions) + self.token_type.weight[0]
        return self.dropout(self.norm(embedded))


class EntityEmbeddings(nn.Module):
    """An entity token = its (narrow) embedding projected to the hidden size + the mean of the
    position embeddings of its mention's word positions + token type (LUKE)."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.table = nn.Embedding(config.entity_vocab_size, config.entity_emb_size, padding_idx=0)
        # Hugging Face's LUKE has the projection only when the widths differ; so do we.
        self.dense = (nn.Linear(config.entity_emb_size, config.hidden_size, bias=False)
                      if config.entity_emb_size != config.hidden_size else nn.Identity())
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, entity_ids: torch.Tensor, entity_position_ids: torch.Tensor) -> torch.Tensor:
        """(B, E) entity indices, (B, E, M) word positions (-1 padding) -> (B, E, H)."""
        real = entity_position_ids.ne(-1).unsqueeze(-1).type_as(self.position.weight)
        positions = (self.position(entity_position_ids.clamp(min=0)) * real).sum(-2) / real.sum(-2).clamp(min=1e-7)
        embedded = self.dense(self.table(entity_ids)) + positions + self.token_type.weight[0]
        return self.dropout(self.norm(embedded))


class Layer(nn.Module):
    """Post-LN transformer layer over the concatenated word and entity states."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        hidden = config.hidden_size
        self.num_heads, self.head_size = config.num_heads, config.head_size
        self.query, self.key, self.value = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.entity_aware = config.use_entity_aware_attention
        if self.entity_aware:
            self.w2e_query, self.e2w_query, self.e2e_query = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(hidden, config.intermediate_size)
        self.ffn_out = nn.Linear(config.intermediate_size, hidden)
        self.ffn_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.attention_dropout = config.attention_dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_size).transpose(1, 2)

    def forward(self, hidden: torch.Tensor, key_mask: torch.Tensor | None, words: int) -> torch.Tensor:
        """(B, T, H) states, (B, 1, 1, T) bool mask (True: attend) or None (nothing padded),
        ``words`` = S word positions first."""
        key, value = self._heads(self.key(hidden)), self._heads(self.value(hidden))
        dropout = self.attention_dropout if self.training else 0.0
        if self.entity_aware and hidden.shape[1] > words:
            # LUKE's four query kinds in one fused call: queries carry [to-word | to-entity] halves and
            # keys are placed in the matching half, so q.k picks the right query for each key.
            word_states, entity_states = hidden[:, :words], hidden[:, words:]
            query = torch.cat([
                torch.cat([self._heads(self.query(word_states)), self._heads(self.w2e_query(word_states))], -1),
                torch.cat([self._heads(self.e2w_query(entity_states)), self._heads(self.e2e_query(entity_states))], -1),
            ], dim=2)
            zeros = torch.zeros_like(key)
            key = torch.cat([torch.cat([key[:, :, :words], zeros[:, :, :words]], -1),
                             torch.cat([zeros[:, :, words:], key[:, :, words:]], -1)], dim=2)
            attended = F.scaled_dot_product_attention(query, key, value, attn_mask=key_mask, dropout_p=dropout,
                                                      scale=1.0 / math.sqrt(self.head_size))
        else:
            attended = F.scaled_dot_product_attention(self._heads(self.query(hidden)), key, value,
                                                      attn_mask=key_mask, dropout_p=dropout)
        attended = attended.transpose(1, 2).reshape(hidden.shape)
        hidden = self.attention_norm(hidden + self.dropout(self.attention_out(attended)))
        return self.ffn_norm(hidden + self.dropout(self.ffn_out(F.gelu(self.ffn_in(hidden)))))


class KnowledgeEncoder(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.embeddings = WordEmbeddings(config)
        self.entity_embeddings = EntityEmbeddings(config)
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.num_layers))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # RoBERTa's initialisation: N(0, 0.02), zero biases, zero padding rows, unit LayerNorms.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        entity_ids: torch.Tensor | None = None,
        entity_position_ids: torch.Tensor | None = None,
        entity_attention_mask: torch.Tensor | None = None,
        return_layer: int | None = None,
        padded: bool | None = None,
    ) -> EncoderOutput:
        """Words (B, S) with mask (B, S); optional entities (B, E), positions (B, E, M), mask (B, E).
        ``return_layer`` (1-based) also returns the word states after that layer. ``padded``: whether
        any word or entity position is padding, as the caller counted it on the host; None reads the
        masks, which waits for the device (training passes the collator's count instead)."""
        words = input_ids.shape[1]
        hidden = self.embeddings(input_ids)
        mask = attention_mask
        has_entities = entity_ids is not None and entity_ids.shape[1] > 0
        if has_entities:
            hidden = torch.cat([hidden, self.entity_embeddings(entity_ids, entity_position_ids)], dim=1)
            mask = torch.cat([attention_mask, entity_attention_mask], dim=1)
        if padded is None:
            padded = not bool(mask.all())
        # (B, 1, 1, T), broadcast over heads and queries. A row with no real position (none in our
        # batches: every row has <s>) attends to nothing and gets zeros.
        key_mask = mask[:, None, None, :].bool() if padded else None
        layer_hidden = None
        for number, layer in enumerate(self.layers, 1):
            if self.config.activation_checkpointing and self.training:
                hidden = checkpoint(layer, hidden, key_mask, words, use_reentrant=False)
            else:
                hidden = layer(hidden, key_mask, words)
            if number == return_layer:
                layer_hidden = hidden[:, :words]
        return EncoderOutput(hidden[:, :words], hidden[:, words:] if has_entities else None, layer_hidden)
