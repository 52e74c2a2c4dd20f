import torch
import torch.nn.functional as F

from lightning_kg.model.heads import NegativeQueue, chunked_cross_entropy, info_nce


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
    saved = [t for t in loss.grad_fn.saved_tensors]
    assert max(t.numel() for t in saved) == weight.numel()  # the table itself, nothing (N x V)
    assert all(t.shape != (64, 50_000) for t in saved)


def test_info_nce_ranks_and_masks_same_entity_negatives():
    queue = NegativeQueue(size=4, dim=2)
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.2]])
    # Rows 0 and 2 are the same entity: each would otherwise be the other's hardest negative.
    loss, rank = info_nce(queries, keys, torch.tensor([5, 6, 5]), queue, temperature=0.1, push=True)
    assert rank.tolist() == [0, 0, 0] and loss.item() < 0.1
    assert queue.entities.tolist() == [5, 6, 5, -1] and int(queue.cursor) == 3
    _, rank = info_nce(queries, keys.flip(0), torch.tensor([1, 2, 3]), queue, temperature=0.1, push=False)
    assert rank[1].item() == 0 and rank[0].item() > 0
    assert int(queue.cursor) == 3  # push=False (evaluation) leaves the queue alone
