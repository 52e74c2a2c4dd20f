"""The pre-training model: one encoder, four weighted objectives (docs/FORMATS.md has the batch).

An objective with weight 0 has no head and costs nothing: no parameters (so DDP sees none unused),
no extra encoder pass. Defaults where the papers publish none (XLM-K publishes few):
- temperature 0.05 and 256-wide projections: common SimCLR/MoCo-style values, config knobs here;
- a 4096-vector queue per contrastive objective, filled with keys gathered from all ranks;
- the mention is read from the last layer unless ``mep_layer`` names another.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_kg.model.config import EncoderConfig
from lightning_kg.model.encoder import KnowledgeEncoder
from lightning_kg.model.heads import (
    EntityPredictionHead,
    NegativeQueue,
    ProjectionHead,
    WordPredictionHead,
    chunked_cross_entropy,
    info_nce,
)

IGNORE = -100


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
        projection_size: int = 256,
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
        if mep_contrastive_weight:
            self.mention_projection = ProjectionHead(hidden, projection_size)
            self.knowledge_projection = ProjectionHead(hidden, projection_size)
            self.mep_queue = NegativeQueue(queue_size, projection_size)
        if oe_weight:
            self.query_projection = ProjectionHead(hidden, projection_size)
            self.object_projection = ProjectionHead(hidden, projection_size)
            self.oe_queue = NegativeQueue(queue_size, projection_size)
        for head in (m for name, m in self.named_children() if name != "encoder"):
            head.apply(KnowledgeEncoder._init_weights)

    def active(self, objective: str) -> bool:
        return self.weights[objective] > 0

    def entity_parameters(self) -> list[nn.Parameter]:
        """Parameters new to a model started from XLM-R: mLUKE's first stage trains only these."""
        modules = [self.encoder.entity_embeddings] + [m for name, m in self.named_children() if name != "encoder" and name != "mlm_head"]
        return [p for m in modules for p in m.parameters()]

    def _knowledge_states(self, texts: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        """Encode several (ids, mask) groups of short texts in one pass; first-token state of each."""
        length = max(ids.shape[1] for ids, _ in texts)
        ids = torch.cat([F.pad(ids, (0, length - ids.shape[1]), value=self.config.pad_token_id) for ids, _ in texts])
        mask = torch.cat([F.pad(mask, (0, length - mask.shape[1])) for _, mask in texts])
        states = self.encoder(ids, mask).word_hidden[:, 0]
        return list(torch.split(states, [t[0].shape[0] for t in texts]))

    def _contrastive(self, name: str, queries: torch.Tensor, keys: torch.Tensor, entities: torch.Tensor,
                     query_head: nn.Module, key_head: nn.Module, queue: NegativeQueue) -> dict[str, torch.Tensor]:
        if len(queries) < 2:
            # BatchNorm needs two rows; keep the heads in the graph so DDP sees them used.
            zero = sum(p.sum() for p in (*query_head.parameters(), *key_head.parameters())) * 0.0
            return {f"{name}_loss": zero + queries.sum() * 0.0 + keys.sum() * 0.0,
                    f"{name}_rank": torch.zeros(0, dtype=torch.long, device=queries.device)}
        loss, rank = info_nce(query_head(queries), key_head(keys), entities, queue, self.temperature, push=self.training)
        return {f"{name}_loss": loss, f"{name}_rank": rank}

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        text = self.encoder(
            batch["input_ids"], batch["attention_mask"], batch["entity_ids"], batch["entity_position_ids"],
            batch["entity_attention_mask"], return_layer=self.mep_layer if self.active("mep_contrastive") else None,
        )
        if self.active("mlm"):
            masked = batch["mlm_labels"].ne(IGNORE)
            labels = batch["mlm_labels"][masked]
            logits = self.mlm_head(text.word_hidden[masked], self.encoder.embeddings.word.weight)
            out["mlm_loss"] = F.cross_entropy(logits.float(), labels) if len(labels) else logits.sum() * 0.0
            out["mlm_correct"] = logits.argmax(-1).eq(labels)
        if self.active("mep_vocab"):
            masked = batch["entity_labels"].ne(IGNORE)
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
        states = self._knowledge_states(groups) if groups and sum(g[0].shape[0] for g in groups) else [
            torch.zeros(g[0].shape[0], self.config.hidden_size, device=batch["input_ids"].device) for g in groups]
        if self.active("mep_contrastive"):
            rows, positions = batch["mep_mention_positions"].unbind(-1)
            mentions = text.layer_hidden[rows, positions]
            out.update(self._contrastive("mep_contrastive", mentions, states.pop(0), batch["mep_entities"],
                                         self.mention_projection, self.knowledge_projection, self.mep_queue))
        if self.active("oe"):
            queries, objects = states
            out.update(self._contrastive("oe", queries, objects, batch["oe_objects"],
                                         self.query_projection, self.object_projection, self.oe_queue))
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
        if self.active("mlm"):
            forward += 2 * int(batch["mlm_labels"].ne(IGNORE).sum()) * config.hidden_size * config.vocab_size
        if self.active("mep_vocab"):
            forward += 2 * int(batch["entity_labels"].ne(IGNORE).sum()) * config.entity_emb_size * config.entity_vocab_size
        return 3 * forward
