"""The pre-training model: one encoder, four weighted objectives (docs/FORMATS.md has the batch).

An objective with weight 0 has no head and costs nothing: no parameters (so DDP sees none unused),
no extra encoder pass.

The contrastive objectives follow XLM-K's released code (microsoft/Unicoder, ``pretraining/xlmk/``)
where it decides: projection heads Linear-BN-ReLU-Linear-BN as there (``heads.ProjectionHead``),
output as wide as the hidden size; two queues per objective, one per side, filled with vectors
gathered from all ranks and started with random vectors; the four-term bidirectional loss
(``heads.info_nce``); both sides of ``mep_contrastive`` read from the same layer (its
``layer_of_cts_loss``, ``mep_layer`` here). Where neither the code nor the paper gives a value,
these are config knobs: temperature 0.05 (a common SimCLR/MoCo value), ``queue_size`` 4096,
``mep_layer`` the last layer. ``oe`` (no released code) reads the last layer on both sides.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_kg.data.batches import batch_counts
from lightning_kg.dataset.format import IGNORE_INDEX
from lightning_kg.model.config import EncoderConfig
from lightning_kg.model.encoder import KnowledgeEncoder
from lightning_kg.model.heads import (
    EntityPredictionHead,
    NegativeQueue,
    ProjectionHead,
    WordPredictionHead,
    chunked_cross_entropy,
    info_nce,
    push_to_queues,
)


class KnowledgePretrainingModel(nn.Module):
    def __init__(
        self,
        config: EncoderConfig,
        mlm_weight: float = 1.0,
        mep_vocab_weight: float = 1.0,
        mep_contrastive_weight: float = 1.0,
        oe_weight: float = 1.0,
        mep_layer: int | None = None,
        temperature: float = 0.05,
        queue_size: int = 4096,
        projection_size: int | None = None,
        mep_vocab_chunk_size: int = 8192,
    ):
        super().__init__()
        self.config = config
        self.weights = {"mlm": mlm_weight, "mep_vocab": mep_vocab_weight,
                        "mep_contrastive": mep_contrastive_weight, "oe": oe_weight}
        if any(w < 0 for w in self.weights.values()) or not any(self.weights.values()):
            raise ValueError(f"objective weights must be >= 0 and not all 0; got {self.weights}")
        if mep_layer is not None and not 1 <= mep_layer <= config.num_layers:
            raise ValueError(f"mep_layer must be in 1..{config.num_layers}; got {mep_layer}")
        self.mep_layer = mep_layer or config.num_layers
        self.temperature = temperature
        self.chunk_size = mep_vocab_chunk_size
        self.encoder = KnowledgeEncoder(config)
        self.mlm_head = WordPredictionHead(config) if mlm_weight else None
        self.entity_head = EntityPredictionHead(config) if mep_vocab_weight else None
        hidden = config.hidden_size
        projection_size = projection_size or hidden
        if mep_contrastive_weight:
            self.mention_projection = ProjectionHead(hidden, projection_size)
            self.knowledge_projection = ProjectionHead(hidden, projection_size)
            self.mep_mention_queue = NegativeQueue(queue_size, projection_size)
            self.mep_knowledge_queue = NegativeQueue(queue_size, projection_size)
        if oe_weight:
            self.query_projection = ProjectionHead(hidden, projection_size)
            self.object_projection = ProjectionHead(hidden, projection_size)
            self.oe_query_queue = NegativeQueue(queue_size, projection_size)
            self.oe_object_queue = NegativeQueue(queue_size, projection_size)
        for head in (m for name, m in self.named_children() if name != "encoder"):
            head.apply(KnowledgeEncoder._init_weights)

    def active(self, objective: str) -> bool:
        return self.weights[objective] > 0

    def entity_parameters(self) -> list[nn.Parameter]:
        """Parameters new to a model started from XLM-R: mLUKE's first stage trains only these (LUKE's
        ``--fix-bert-weights``: the entity embeddings and the entity head), plus the contrastive heads and,
        with entity-aware attention, the w2e/e2w/e2e queries."""
        modules = [self.encoder.entity_embeddings] + [m for name, m in self.named_children() if name not in ("encoder", "mlm_head")]
        if self.config.use_entity_aware_attention:
            modules += [getattr(layer, q) for layer in self.encoder.layers for q in ("w2e_query", "e2w_query", "e2e_query")]
        return [p for m in modules for p in m.parameters()]

    def _knowledge_states(self, texts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Encode several (ids, mask) groups of short texts in one pass. Returns the first-token
        states of each group after the last layer and after ``mep_layer``, each (N_group, H)."""
        length = max(ids.shape[1] for ids, _ in texts)
        ids = torch.cat([F.pad(ids, (0, length - ids.shape[1]), value=self.config.pad_token_id) for ids, _ in texts])
        mask = torch.cat([F.pad(mask, (0, length - mask.shape[1])) for _, mask in texts])
        # Short texts of different lengths: nearly always padded, so always masked (no host read to tell).
        out = self.encoder(ids, mask, return_layer=self.mep_layer, padded=True)
        sizes = [t[0].shape[0] for t in texts]
        return list(torch.split(out.word_hidden[:, 0], sizes)), list(torch.split(out.layer_hidden[:, 0], sizes))

    def _contrastive(self, name: str, queries: torch.Tensor, keys: torch.Tensor, entities: torch.Tensor,
                     query_head: nn.Module, key_head: nn.Module, query_queue: NegativeQueue,
                     key_queue: NegativeQueue) -> dict[str, torch.Tensor]:
        """``{name}_loss``, ``{name}_rank`` and ``{name}_pair_accuracy`` (see ``heads.ContrastiveOutput``)
        for (K, H) query and key states."""
        if len(queries) < (2 if self.training else 1):
            # Training BatchNorm needs two rows. No loss here, but the heads stay in the graph (DDP
            # must see them used) and this rank still joins the queues' gather with zero rows: the
            # other ranks wait in it.
            zero = sum(p.sum() for p in (*query_head.parameters(), *key_head.parameters())) * 0.0
            empty = torch.zeros(0, dtype=torch.long, device=queries.device)
            if self.training:
                nothing = queries.new_zeros(0, key_queue.vectors.shape[1])
                push_to_queues(nothing, nothing, empty, query_queue, key_queue)
            return {f"{name}_loss": zero + queries.sum() * 0.0 + keys.sum() * 0.0, f"{name}_rank": empty,
                    f"{name}_pair_accuracy": queries.new_zeros(0)}
        out = info_nce(query_head(queries), key_head(keys), entities, query_queue, key_queue, self.temperature,
                       push=self.training)
        return {f"{name}_loss": out.loss, f"{name}_rank": out.rank, f"{name}_pair_accuracy": out.pair_accuracy}

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        text = self.encoder(
            batch["input_ids"], batch["attention_mask"], batch["entity_ids"], batch["entity_position_ids"],
            batch["entity_attention_mask"], return_layer=self.mep_layer if self.active("mep_contrastive") else None,
            padded=batch_counts(batch)["text_padding"] > 0,
        )
        if self.active("mlm"):
            masked = batch["mlm_labels"].ne(IGNORE_INDEX)
            labels = batch["mlm_labels"][masked]
            logits = self.mlm_head(text.word_hidden[masked], self.encoder.embeddings.word.weight)
            out["mlm_loss"] = F.cross_entropy(logits.float(), labels) if len(labels) else logits.sum() * 0.0
            out["mlm_correct"] = logits.argmax(-1).eq(labels)
        if self.active("mep_vocab"):
            masked = batch["entity_labels"].ne(IGNORE_INDEX)
            labels = batch["entity_labels"][masked]
            queries = self.entity_head(text.entity_hidden[masked]) if text.entity_hidden is not None else None
            if queries is not None and len(labels):
                out["mep_vocab_loss"], out["mep_vocab_rank"] = chunked_cross_entropy(
                    queries, self.encoder.entity_embeddings.table.weight, self.entity_head.bias, labels, self.chunk_size)
            else:
                out["mep_vocab_loss"] = sum(p.sum() for p in self.entity_head.parameters()) * 0.0
                out["mep_vocab_rank"] = torch.zeros(0, dtype=torch.long, device=batch["input_ids"].device)

        groups = []
        if self.active("mep_contrastive"):
            groups.append((batch["mep_knowledge_ids"], batch["mep_knowledge_mask"]))
        if self.active("oe"):
            groups += [(batch["oe_query_ids"], batch["oe_query_mask"]), (batch["oe_object_ids"], batch["oe_object_mask"])]
        if groups and sum(g[0].shape[0] for g in groups):
            last, at_mep_layer = self._knowledge_states(groups)
        else:
            last = at_mep_layer = [text.word_hidden.new_zeros(g[0].shape[0], self.config.hidden_size) for g in groups]
        if self.active("mep_contrastive"):
            rows, positions = batch["mep_mention_positions"].unbind(-1)
            mentions = text.layer_hidden[rows, positions]
            out.update(self._contrastive("mep_contrastive", mentions, at_mep_layer[0], batch["mep_entities"],
                                         self.mention_projection, self.knowledge_projection, self.mep_mention_queue,
                                         self.mep_knowledge_queue))
        if self.active("oe"):
            queries, objects = last[-2:]
            out.update(self._contrastive("oe", queries, objects, batch["oe_objects"], self.query_projection,
                                         self.object_projection, self.oe_query_queue, self.oe_object_queue))
        out["loss"] = sum(self.weights[name] * out[f"{name}_loss"] for name in self.weights if self.active(name))
        return out

    def flops_per_batch(self, batch: dict[str, torch.Tensor]) -> int:
        """Training FLOPs of one batch (forward + backward = 3x forward): 2 FLOPs per weight per
        token in the layers, attention's two (T x T) products, and the heads at masked slots only."""
        config = self.config
        layer_weights = config.num_layers * (4 * config.hidden_size**2 + 2 * config.hidden_size * config.intermediate_size)
        sequences = [batch["attention_mask"].shape[1] + batch["entity_ids"].shape[1]] * batch["input_ids"].shape[0]
        for key in ("mep_knowledge_ids", "oe_query_ids", "oe_object_ids"):
            if key in batch:
                sequences += [batch[key].shape[1]] * batch[key].shape[0]
        forward = sum(2 * layer_weights * t + 4 * config.num_layers * config.hidden_size * t * t for t in sequences)
        counts = batch_counts(batch)  # host ints: counting here must not wait for the device
        if self.active("mlm"):
            forward += 2 * counts["masked_words"] * config.hidden_size * config.vocab_size
        if self.active("mep_vocab"):
            forward += 2 * counts["masked_entities"] * config.entity_emb_size * config.entity_vocab_size
        return 3 * forward
