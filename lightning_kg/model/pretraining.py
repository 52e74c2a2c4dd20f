"""The pre-training model: one encoder, four weighted objectives (docs/FORMATS.md has the batch).

An objective with weight 0 (``ObjectiveSettings``) has no head and costs nothing: no parameters
(so DDP sees none unused), no extra encoder pass. ``forward`` returns a ``PretrainingOutput``.

The contrastive objectives follow XLM-K's released code (microsoft/Unicoder, ``pretraining/xlmk/``)
where it decides: projection heads Linear-BN-ReLU-Linear-BN as there (``heads.ProjectionHead``),
output as wide as the hidden size; two queues per objective, one per side, filled with vectors
gathered from all ranks and started with random vectors (both heads and both queues of an objective
are one ``heads.ContrastiveObjective``); the four-term bidirectional loss
(``heads.info_nce``); both sides of ``mep_contrastive`` read from the same layer (its
``layer_of_cts_loss``, ``mep_layer`` here). Where neither the code nor the paper gives a value,
these are config knobs: temperature 0.05 (a common SimCLR/MoCo value), ``queue_size`` 4096,
``mep_layer`` the last layer. ``oe`` (no released code) reads the last layer on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from lightning_kg.data.batches import batch_counts, masked_inputs
from lightning_kg.dataset.format import CONTRASTIVE_OBJECTIVES, OBJECTIVES
from lightning_kg.model.config import EncoderConfig, ObjectiveSettings
from lightning_kg.model.encoder import KnowledgeEncoder
from lightning_kg.model.heads import ContrastiveObjective, EntityPredictionHead, WordPredictionHead, chunked_cross_entropy, entities_per_chunk


@dataclass
class PretrainingOutput(ModelOutput):
    """What ``KnowledgePretrainingModel.forward`` returns. An inactive objective's fields are None.
    An active one whose inputs the batch lacks (no masked token, no fact: single-task batches) has a
    loss of 0 that still reaches its head (DDP must see every parameter used, and evaluation logs
    it on every rank) and empty per-example fields.

    A ``ModelOutput`` (an ordered dict of the fields that are set) rather than a bare dataclass:
    ZeRO-3 hooks the tensors of a module's output only inside tuples, lists and dicts, and without
    that hook the entity table, used outside its own module, is not gathered again for backward."""

    loss: torch.Tensor | None = None
    """() the active objectives' losses, weighted and summed: what the optimiser minimises (always set by ``forward``)."""
    mlm_loss: torch.Tensor | None = None
    """() mean cross-entropy over the masked tokens."""
    mlm_correct: torch.Tensor | None = None
    """(masked tokens,) bool: the top-scored word is the masked one."""
    mlm_token_losses: torch.Tensor | None = None
    """(masked tokens,) float32, detached: each masked token's cross-entropy (validation per language)."""
    mep_vocab_loss: torch.Tensor | None = None
    """() mean cross-entropy over the masked entities, the softmax over the whole entity vocabulary."""
    mep_vocab_rank: torch.Tensor | None = None
    """(masked entities,) int64: the entities scored above the masked one (0 = top-1)."""
    mep_contrastive_loss: torch.Tensor | None = None
    """() mean of XLM-K's four InfoNCE terms over the mention/knowledge-text pairs."""
    mep_contrastive_rank: torch.Tensor | None = None
    """(pairs,) int64: each mention's knowledge text's rank among the batch's other texts and the key queue."""
    mep_contrastive_pair_accuracy: torch.Tensor | None = None
    """(pairs,) float32: the share of the batch's other texts scored below the mention's own, NaN for a
    mention without an in-batch negative; 0.5 by chance at every step, unlike the loss and the rank."""
    oe_loss: torch.Tensor | None = None
    """() mean of the four InfoNCE terms over the facts (subject + relation against object)."""
    oe_rank: torch.Tensor | None = None
    """(facts,) int64: each fact's object's rank among the batch's other objects and the key queue."""
    oe_pair_accuracy: torch.Tensor | None = None
    """(facts,) float32: as ``mep_contrastive_pair_accuracy``, for objects."""

    def losses(self) -> dict[str, torch.Tensor]:
        """Each active objective's () loss by name, in :data:`OBJECTIVES` order."""
        losses = (self.mlm_loss, self.mep_vocab_loss, self.mep_contrastive_loss, self.oe_loss)
        return {name: loss for name, loss in zip(OBJECTIVES, losses) if loss is not None}

    def ranks(self) -> dict[str, torch.Tensor]:
        """The ranking objectives' (examples,) int64 ranks by name (``mep_vocab``, ``mep_contrastive``, ``oe``), active ones only."""
        ranks = (self.mep_vocab_rank, self.mep_contrastive_rank, self.oe_rank)
        return {name: rank for name, rank in zip(OBJECTIVES[1:], ranks) if rank is not None}

    def pair_accuracies(self) -> dict[str, torch.Tensor]:
        """The contrastive objectives' pair accuracies by name, active ones only."""
        accuracies = (self.mep_contrastive_pair_accuracy, self.oe_pair_accuracy)
        return {name: accuracy for name, accuracy in zip(CONTRASTIVE_OBJECTIVES, accuracies) if accuracy is not None}


class KnowledgePretrainingModel(nn.Module):
    def __init__(self, config: EncoderConfig, objective_settings: ObjectiveSettings = ObjectiveSettings()):
        super().__init__()
        self.config = config
        self.objective_settings = objective_settings
        if objective_settings.mep_layer is not None and not 1 <= objective_settings.mep_layer <= config.num_layers:
            raise ValueError(f"model.objective_settings.mep_layer must be in 1..{config.num_layers}; got {objective_settings.mep_layer}")
        self.mep_layer = objective_settings.mep_layer or config.num_layers
        self.encoder = KnowledgeEncoder(config)
        # Registered in this order (heads, then mep_contrastive, then oe) since before these were
        # modules: an optimiser state is matched to parameters by position.
        self.mlm_head = WordPredictionHead(config) if objective_settings.active("mlm") else None
        self.entity_head = EntityPredictionHead(config) if objective_settings.active("mep_vocab") else None
        projection_size = objective_settings.projection_size or config.hidden_size

        def contrastive(objective: str) -> ContrastiveObjective | None:
            if not objective_settings.active(objective):
                return None
            return ContrastiveObjective(config.hidden_size, projection_size, objective_settings.queue_size, objective_settings.temperature)

        self.mep_contrastive = contrastive("mep_contrastive")
        self.oe = contrastive("oe")
        for head in (m for name, m in self.named_children() if name != "encoder"):
            head.apply(KnowledgeEncoder._init_weights)

    def active(self, objective: str) -> bool:
        return self.objective_settings.active(objective)

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

    def forward(self, batch: dict[str, torch.Tensor]) -> PretrainingOutput:
        """A batch (docs/FORMATS.md) -> each active objective's loss and per-example figures, and their weighted sum."""
        out = PretrainingOutput()
        text = self.encoder(
            batch["input_ids"], batch["attention_mask"], batch["entity_ids"], batch["entity_position_ids"],
            batch["entity_attention_mask"], return_layer=self.mep_layer if self.active("mep_contrastive") else None,
            padded=batch_counts(batch)["text_padding"] > 0,
        )
        if self.active("mlm"):
            positions, labels = masked_inputs(batch, "mlm")
            logits = self.mlm_head(text.word_hidden.flatten(0, 1)[positions], self.encoder.embeddings.word.weight)  # (masked, V)
            token_losses = F.cross_entropy(logits.float(), labels, reduction="none")  # (masked,)
            out.mlm_loss = token_losses.mean() if len(labels) else logits.sum() * 0.0
            out.mlm_token_losses = token_losses.detach()
            out.mlm_correct = logits.argmax(-1).eq(labels)
        if self.active("mep_vocab"):
            positions, labels = masked_inputs(batch, "entity")
            queries = self.entity_head(text.entity_hidden.flatten(0, 1)[positions]) if text.entity_hidden is not None else None
            if queries is not None and len(labels):
                table = self.encoder.entity_embeddings.table.weight
                chunk = entities_per_chunk(len(labels), table.shape[0], self.objective_settings.mep_vocab_chunk_size)
                out.mep_vocab_loss, out.mep_vocab_rank = chunked_cross_entropy(queries, table, self.entity_head.bias, labels, chunk)
            else:
                out.mep_vocab_loss = sum(p.sum() for p in self.entity_head.parameters()) * 0.0
                out.mep_vocab_rank = torch.zeros(0, dtype=torch.long, device=batch["input_ids"].device)

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
            mentions = text.layer_hidden[rows, positions]  # (pairs, H)
            (out.mep_contrastive_loss, out.mep_contrastive_rank,
             out.mep_contrastive_pair_accuracy) = self.mep_contrastive(mentions, at_mep_layer[0], batch["mep_entities"])
        if self.active("oe"):
            queries, objects = last[-2:]  # (facts, H) each
            out.oe_loss, out.oe_rank, out.oe_pair_accuracy = self.oe(queries, objects, batch["oe_objects"])
        weights = self.objective_settings.weights
        out.loss = sum(weights[name] * loss for name, loss in out.losses().items())
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
