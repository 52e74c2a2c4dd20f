import torch
import torch.nn.functional as F

from lightning_kg.model.heads import NegativeQueue, ProjectionHead, chunked_cross_entropy, info_nce


def test_chunked_cross_entropy_equals_the_full_softmax_in_value_and_gradient():
    torch.manual_seed(0)
    hidden = torch.randn(7, 16, requires_grad=True)
    weight = torch.randn(1000, 16, requires_grad=True)
    bias = torch.randn(1000, requires_grad=True)
    labels = torch.tensor([0, 999, 500, 3, 3, 128, 777])
    loss, rank = chunked_cross_entropy(hidden, weight, bias, labels, chunk_size=128)
    grads = torch.autograd.grad(loss * 3.0, (hidden, weight, bias))
    full_logits = hidden @ weight.t() + bias
    reference = F.cross_entropy(full_logits, labels)
    expected = torch.autograd.grad(reference * 3.0, (hidden, weight, bias))
    torch.testing.assert_close(loss, reference)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    target = full_logits[torch.arange(7), labels]
    assert rank.tolist() == (full_logits > target[:, None]).sum(1).tolist()


def test_chunked_cross_entropy_under_bf16_autocast_matches_the_full_softmax():
    """bf16-mixed training: backward runs outside autocast, so the chunks must be recomputed under it."""
    torch.manual_seed(0)
    hidden = torch.randn(6, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    bias = torch.randn(50, requires_grad=True)
    labels = torch.randint(0, 50, (6,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, _ = chunked_cross_entropy(hidden, weight, bias, labels, chunk_size=7)
        full = F.cross_entropy(F.linear(hidden, weight, bias).float(), labels)
    ours_grads = torch.autograd.grad(ours, (hidden, weight, bias))
    full_grads = torch.autograd.grad(full, (hidden, weight, bias))
    torch.testing.assert_close(ours, full, atol=2e-2, rtol=2e-2)
    for a, b in zip(ours_grads, full_grads):
        assert a.dtype == b.dtype == torch.float32
        torch.testing.assert_close(a, b, atol=2e-2, rtol=5e-2)


def test_chunked_cross_entropy_never_holds_the_full_logits():
    # 50,000 entities x 64 masked slots in chunks of 1,000: the autograd graph keeps no (64 x 50,000) tensor.
    hidden = torch.randn(64, 32, requires_grad=True)
    weight = torch.randn(50_000, 32, requires_grad=True)
    bias = torch.zeros(50_000, requires_grad=True)
    loss, _ = chunked_cross_entropy(hidden, weight, bias, torch.randint(0, 50_000, (64,)), chunk_size=1000)
    saved = list(loss.grad_fn.saved_tensors)
    assert max(t.numel() for t in saved) == weight.numel()  # the table itself, nothing (N x V)
    assert all(t.shape != (64, 50_000) for t in saved)


def reference_info_nce(queries, keys, entities, query_queue, key_queue, temperature):
    """XLM-K's four terms written out one row at a time, same-entity candidates left out."""
    queries, keys = F.normalize(queries, dim=-1), F.normalize(keys, dim=-1)
    losses = []
    for queue in (key_queue, query_queue):
        for a, b in ((queries, keys), (keys, queries)):
            for i in range(len(a)):
                candidates = [b[i]] + [b[j] for j in range(len(b)) if j != i and entities[j] != entities[i]]
                candidates += [a[j] for j in range(len(a)) if j != i and entities[j] != entities[i]]
                candidates += [v for v, e in zip(queue.vectors, queue.entities) if e != entities[i]]
                logits = torch.stack([a[i] @ c for c in candidates]) / temperature
                losses.append(-torch.log_softmax(logits, 0)[0])
    return torch.stack(losses).mean()


def test_info_nce_is_xlm_ks_four_terms_over_both_queues():
    torch.manual_seed(0)
    queries, keys = torch.randn(5, 8), torch.randn(5, 8)
    entities = torch.tensor([3, 4, 3, 5, 6])
    query_queue, key_queue = NegativeQueue(size=6, dim=8), NegativeQueue(size=6, dim=8)
    query_queue.push(torch.randn(2, 8), torch.tensor([4, 9]))  # one shares row 1's entity
    key_queue.push(torch.randn(3, 8), torch.tensor([3, 7, 8]))
    expected = reference_info_nce(queries, keys, entities, query_queue, key_queue, 0.1)
    out = info_nce(queries, keys, entities, query_queue, key_queue, temperature=0.1, push=False)
    torch.testing.assert_close(out.loss, expected)


def test_info_nce_ranks_and_masks_same_entity_negatives():
    queue, other = NegativeQueue(size=0, dim=2), NegativeQueue(size=0, dim=2)
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.2]])
    # Rows 0 and 2 are the same entity: each would otherwise be the other's hardest negative.
    out = info_nce(queries, keys, torch.tensor([5, 6, 5]), other, queue, temperature=0.1, push=False)
    assert out.rank.tolist() == [0, 0, 0] and out.loss.item() < 0.1
    assert out.pair_accuracy.tolist() == [1.0, 1.0, 1.0]  # each has one other-entity negative, ranked below
    out = info_nce(queries, keys.flip(0), torch.tensor([1, 2, 3]), other, queue, temperature=0.1, push=False)
    assert out.rank[1].item() == 0 and out.rank[0].item() > 0
    # Row 0's own key is now [1, 0.2]: of its two negatives, [1, 0] scores above it and [0, 1] below.
    assert out.pair_accuracy.tolist() == [0.5, 1.0, 0.5]


def test_queues_start_full_of_random_unit_vectors_and_take_each_side():
    mentions, knowledge = NegativeQueue(size=4, dim=3), NegativeQueue(size=4, dim=3)
    torch.testing.assert_close(knowledge.vectors.norm(dim=-1), torch.ones(4))
    assert knowledge.entities.tolist() == [-1] * 4  # random vectors: negatives of every entity
    queries, keys = torch.eye(3), 2 * torch.eye(3).flip(0)
    rank = info_nce(queries, keys, torch.tensor([7, 8, 9]), mentions, knowledge, 0.1, push=True).rank
    assert rank.shape == (3,)
    # The mention queue got the (normalised) queries, the knowledge queue the keys, oldest slots first.
    torch.testing.assert_close(mentions.vectors[:3], queries)
    torch.testing.assert_close(knowledge.vectors[:3], torch.eye(3).flip(0))
    assert mentions.entities.tolist() == knowledge.entities.tolist() == [7, 8, 9, -1] and int(knowledge.cursor) == 3
    info_nce(queries[:2], keys[:2], torch.tensor([10, 11]), mentions, knowledge, 0.1, push=True)
    assert knowledge.entities.tolist() == [11, 8, 9, 10] and int(knowledge.cursor) == 1
    info_nce(queries, keys, torch.tensor([1, 2, 3]), mentions, knowledge, 0.1, push=False)
    assert int(knowledge.cursor) == 1  # push=False (evaluation) leaves the queues alone


def test_projection_head_is_xlm_ks():
    head = ProjectionHead(hidden_size=16, projection_size=16)
    first, norm, _, second, last = head.net
    assert first.bias is None and second.bias is None and norm.affine and not last.affine
    out = head(torch.randn(10, 16) * 5 + 3)
    # The last BatchNorm has no affine part: each output unit has zero mean and unit variance over the batch.
    torch.testing.assert_close(out.mean(0), torch.zeros(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(0, unbiased=False), torch.ones(16), atol=1e-4, rtol=0)
