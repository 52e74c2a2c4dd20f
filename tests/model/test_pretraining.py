import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lightning_kg.dataset.format import OBJECTIVES
from lightning_kg.model.config import EncoderConfig, ObjectiveSettings
from lightning_kg.model.pretraining import KnowledgePretrainingModel
from tests.model.tiny_model import ENTITIES, VOCAB, fixed_batch, model


def test_every_loss_falls_on_a_fixed_batch():
    net, batch = model(), fixed_batch()
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        out = net(batch)
        first = first or {k: v.item() for k, v in out.losses().items()}
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    last = {k: v.item() for k, v in net(batch).losses().items()}
    assert set(last) == set(OBJECTIVES)
    for name in last:
        assert last[name] < 0.5 * first[name], (name, first[name], last[name])


def test_an_objective_with_weight_zero_has_no_head_and_no_output():
    net = model(mep_contrastive_weight=0.0, oe_weight=0.0)
    assert net.mep_contrastive is None and net.oe is None
    assert {name.split(".")[0] for name in net.state_dict()} == {"encoder", "mlm_head", "entity_head"}  # no queue buffers
    assert {type(m).__name__ for m in net.modules()}.isdisjoint({"ContrastiveObjective", "ProjectionHead", "NegativeQueue"})
    out = net(fixed_batch())
    assert set(out.losses()) == {"mlm", "mep_vocab"} and set(out.ranks()) == {"mep_vocab"} and not out.pair_accuracies()
    assert (out.mep_contrastive_loss, out.mep_contrastive_rank, out.oe_loss, out.oe_pair_accuracy) == (None,) * 4
    torch.testing.assert_close(out.loss, out.mlm_loss + out.mep_vocab_loss)
    out.loss.backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad and p is not net.encoder.embeddings.token_type.weight)


@pytest.mark.parametrize("aware", [False, True])
def test_entity_parameters_are_the_tensors_new_to_a_word_only_start(aware):
    torch.manual_seed(0)
    net = KnowledgePretrainingModel(EncoderConfig.preset("tiny", VOCAB, ENTITIES, use_entity_aware_attention=aware))
    names = {name for name, p in net.named_parameters() if any(p is q for q in net.entity_parameters())}
    assert {n.split(".")[0] for n in names} == {"encoder", "entity_head", "mep_contrastive", "oe"}
    contrastive = {n for n, _ in net.named_parameters() if n.startswith(("mep_contrastive.", "oe."))}
    assert {".".join(n.split(".")[:2]) for n in contrastive} == {f"{o}.{h}" for o in ("mep_contrastive", "oe") for h in ("query_head", "key_head")}
    assert contrastive <= names
    encoder = {n for n in names if n.startswith("encoder.")}
    queries = {f"encoder.layers.{i}.{q}.{kind}" for i in range(2) for q in ("w2e_query", "e2w_query", "e2e_query")
               for kind in ("weight", "bias")}
    assert encoder - queries == {n for n, _ in net.named_parameters() if n.startswith("encoder.entity_embeddings.")}
    assert (encoder & queries) == (queries if aware else set())


def test_weights_scale_the_sum_and_all_zero_is_refused():
    out = model(mlm_weight=0.5, mep_vocab_weight=2.0, mep_contrastive_weight=0.0, oe_weight=0.0)(fixed_batch())
    torch.testing.assert_close(out.loss, 0.5 * out.mlm_loss + 2.0 * out.mep_vocab_loss)
    with pytest.raises(ValueError, match="not all 0"):
        model(mlm_weight=0.0, mep_vocab_weight=0.0, mep_contrastive_weight=0.0, oe_weight=0.0)


def test_activation_checkpointing_gives_the_same_gradients():
    batch = fixed_batch()
    plain = model(mep_contrastive_weight=0.0, oe_weight=0.0)
    torch.manual_seed(0)
    config = EncoderConfig.preset("tiny", VOCAB, ENTITIES, dropout=0.0, attention_dropout=0.0, activation_checkpointing=True)
    checkpointed = KnowledgePretrainingModel(config, ObjectiveSettings(queue_size=0, mep_contrastive_weight=0.0, oe_weight=0.0))
    checkpointed.load_state_dict(plain.state_dict())
    plain(batch).loss.backward()
    checkpointed.train()(batch).loss.backward()
    for a, b in zip(plain.parameters(), checkpointed.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad)


def test_the_encoder_compiles():
    net = model(mep_contrastive_weight=0.0, oe_weight=0.0).eval()
    batch = fixed_batch()
    compiled = torch.compile(net.encoder, backend="eager", fullgraph=True)
    args = (batch["input_ids"], batch["attention_mask"], batch["entity_ids"], batch["entity_position_ids"], batch["entity_attention_mask"])
    for padded in (False, True):  # given, as training gives it: reading it from the mask would break the graph
        torch.testing.assert_close(compiled(*args, padded=padded).word_hidden, net.encoder(*args, padded=padded).word_hidden)


def keep_mention_pairs(batch: dict, count: int) -> dict:
    """The batch with only its first ``count`` mep_contrastive pairs."""
    kept = dict(batch)
    for key in ("mep_mention_positions", "mep_entities", "mep_knowledge_ids", "mep_knowledge_mask"):
        kept[key] = batch[key][:count]
    return kept


def _train_step_on_rank(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=60))
    net = model(queue_size=8)  # seeded: the same weights and random queue starts on both ranks
    out = net.train()(keep_mention_pairs(fixed_batch(), 1 if rank == 0 else 3))
    out.loss.backward()
    queues = {name: buffer for name, buffer in net.named_buffers() if "_queue." in name}
    torch.save({"queues": queues, "losses": {k: v.item() for k, v in out.losses().items()}},
               Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow  # two ranks in spawned processes
def test_a_rank_with_one_mention_pair_still_joins_the_queue_gather(tmp_path):
    """Rank 0 has a single pair (too few for BatchNorm, so no loss there), rank 1 three: rank 0
    must still take part in the all_gather that fills the queues, or rank 1 waits forever."""
    torch.manual_seed(0)
    context = mp.start_processes(_train_step_on_rank, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + 240
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the two ranks did not finish one training step: one waits in a collective the other skipped")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert ranks[0]["losses"]["mep_contrastive"] == 0.0 and ranks[1]["losses"]["mep_contrastive"] > 0.0
    for name, buffer in ranks[0]["queues"].items():
        torch.testing.assert_close(buffer, ranks[1]["queues"][name], msg=name)
    # The mention queues hold rank 1's three pairs (rank 0 gave none); the 8-slot oe queues the last 8
    # of the 12 facts gathered in rank order (6 from each rank).
    batch = fixed_batch()
    assert ranks[0]["queues"]["mep_contrastive.key_queue.entities"].tolist() == batch["mep_entities"][:3].tolist() + [-1] * 5
    objects = batch["oe_objects"].tolist()
    assert ranks[0]["queues"]["oe.key_queue.entities"].tolist() == objects[4:] + objects


@pytest.mark.parametrize("mep_layer", [1, None])
def test_mep_contrastive_reads_both_sides_from_mep_layer(mep_layer):
    """The mention (its first token) and the knowledge text (its first token) both come from layer
    ``mep_layer`` (XLM-K's layer_of_cts_loss), the last one when None."""
    net, batch = model(mep_layer=mep_layer).eval(), fixed_batch()
    seen = {}
    for name in ("query_head", "key_head"):
        getattr(net.mep_contrastive, name).register_forward_pre_hook(lambda module, args, name=name: seen.setdefault(name, args[0]))
    with torch.no_grad():
        net(batch)
        layer = mep_layer or 2
        text = net.encoder(batch["input_ids"], batch["attention_mask"], batch["entity_ids"], batch["entity_position_ids"],
                           batch["entity_attention_mask"], return_layer=layer).layer_hidden
        knowledge = net.encoder(batch["mep_knowledge_ids"], batch["mep_knowledge_mask"], return_layer=layer).layer_hidden
    rows, positions = batch["mep_mention_positions"].unbind(-1)
    torch.testing.assert_close(seen["query_head"], text[rows, positions])
    torch.testing.assert_close(seen["key_head"], knowledge[:, 0])
    if mep_layer == 1:  # and layer 1 is not the last layer's state
        last = net.encoder(batch["mep_knowledge_ids"], batch["mep_knowledge_mask"]).word_hidden[:, 0]
        assert not torch.allclose(seen["key_head"], last)


def test_zero3_sees_every_tensor_of_the_output():
    """ZeRO-3 hooks a module's output tensors (to gather its parameters again for backward) only inside
    tuples, lists and dicts: a bare dataclass hid the loss from it, and the entity table, which the
    mep_vocab loss reads outside its own module, reached backward released (shape [0])."""
    from deepspeed.runtime.zero.utils import apply_to_tensors_only

    out = model()(fixed_batch())
    seen = []
    apply_to_tensors_only(lambda tensor: seen.append(tensor) or tensor, out)
    assert len(seen) == len(out.keys()) >= 10 and any(tensor is out.loss for tensor in seen)
