"""A tiny pre-training model and one fixed batch with every objective's inputs, for the model tests
that need a forward pass without the demo data."""

import torch

from lightning_kg.model.config import EncoderConfig, ObjectiveSettings
from lightning_kg.model.pretraining import KnowledgePretrainingModel

VOCAB, ENTITIES = 60, 20


def fixed_batch():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, VOCAB - 1, (6, 16), generator=generator)
    ids[:, 0], ids[:, -1] = 0, 2
    labels = torch.full_like(ids, -100)
    labels[:, 3:5] = ids[:, 3:5]
    ids[:, 3:5] = VOCAB - 1  # <mask>
    entities = torch.randint(3, ENTITIES, (6, 2), generator=generator)
    entity_labels = torch.full_like(entities, -100)
    entity_labels[:, 0] = entities[:, 0]
    positions = torch.tensor([[3, 4], [7, -1]]).expand(6, 2, 2).clone()
    knowledge = torch.randint(4, VOCAB - 1, (6, 8), generator=generator)
    return {
        "input_ids": ids, "attention_mask": torch.ones_like(ids), "mlm_labels": labels,
        "entity_ids": torch.where(entity_labels.ne(-100), torch.tensor(2), entities), "entity_position_ids": positions,
        "entity_attention_mask": torch.ones_like(entities), "entity_labels": entity_labels,
        "mep_mention_positions": torch.stack([torch.arange(6), torch.full((6,), 3)], 1), "mep_entities": entities[:, 0],
        "mep_knowledge_ids": knowledge, "mep_knowledge_mask": torch.ones_like(knowledge),
        "oe_query_ids": knowledge.flip(1), "oe_query_mask": torch.ones_like(knowledge),
        "oe_object_ids": knowledge, "oe_object_mask": torch.ones_like(knowledge), "oe_objects": entities[:, 1],
    }


def model(queue_size=0, **settings):
    torch.manual_seed(0)
    config = EncoderConfig.preset("tiny", VOCAB, ENTITIES, dropout=0.0, attention_dropout=0.0)
    return KnowledgePretrainingModel(config, ObjectiveSettings(queue_size=queue_size, **settings))
