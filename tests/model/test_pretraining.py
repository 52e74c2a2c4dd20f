import pytest
import torch

from lightning_kg.model.config import EncoderConfig
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


def model(**weights):
    torch.manual_seed(0)
    config = EncoderConfig.preset("tiny", VOCAB, ENTITIES, dropout=0.0, attention_dropout=0.0)
    return KnowledgePretrainingModel(config, queue_size=0, **weights)


def test_every_loss_falls_on_a_fixed_batch():
    net, batch = model(), fixed_batch()
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        out = net(batch)
        first = first or {k: v.item() for k, v in out.items() if k.endswith("_loss")}
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
    last = {k: v.item() for k, v in net(batch).items() if k.endswith("_loss")}
    assert set(last) == {"mlm_loss", "mep_vocab_loss", "mep_contrastive_loss", "oe_loss"}
    for name in last:
        assert last[name] < 0.5 * first[name], (name, first[name], last[name])


def test_an_objective_with_weight_zero_has_no_head_and_no_output():
    net = model(mep_contrastive_weight=0.0, oe_weight=0.0)
    assert not hasattr(net, "mention_projection") and not hasattr(net, "oe_queue")
    out = net(fixed_batch())
    assert set(k for k in out if k.endswith("_loss")) == {"mlm_loss", "mep_vocab_loss"}
    torch.testing.assert_close(out["loss"], out["mlm_loss"] + out["mep_vocab_loss"])
    out["loss"].backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad and p is not net.encoder.embeddings.token_type.weight)


def test_weights_scale_the_sum_and_all_zero_is_refused():
    out = model(mlm_weight=0.5, mep_vocab_weight=2.0, mep_contrastive_weight=0.0, oe_weight=0.0)(fixed_batch())
    torch.testing.assert_close(out["loss"], 0.5 * out["mlm_loss"] + 2.0 * out["mep_vocab_loss"])
    with pytest.raises(ValueError, match="not all 0"):
        model(mlm_weight=0.0, mep_vocab_weight=0.0, mep_contrastive_weight=0.0, oe_weight=0.0)


def test_activation_checkpointing_gives_the_same_gradients():
    batch = fixed_batch()
    plain = model(mep_contrastive_weight=0.0, oe_weight=0.0)
    torch.manual_seed(0)
    config = EncoderConfig.preset("tiny", VOCAB, ENTITIES, dropout=0.0, attention_dropout=0.0, activation_checkpointing=True)
    checkpointed = KnowledgePretrainingModel(config, queue_size=0, mep_contrastive_weight=0.0, oe_weight=0.0)
    checkpointed.load_state_dict(plain.state_dict())
    plain(batch)["loss"].backward()
    checkpointed.train()(batch)["loss"].backward()
    for a, b in zip(plain.parameters(), checkpointed.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad)


def test_the_encoder_compiles():
    net = model(mep_contrastive_weight=0.0, oe_weight=0.0).eval()
    batch = fixed_batch()
    compiled = torch.compile(net.encoder, backend="eager", fullgraph=True)
    args = (batch["input_ids"], batch["attention_mask"], batch["entity_ids"], batch["entity_position_ids"], batch["entity_attention_mask"])
    torch.testing.assert_close(compiled(*args).word_hidden, net.encoder(*args).word_hidden)
