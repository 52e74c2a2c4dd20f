"""Prediction heads and losses of the four objectives.

- ``WordPredictionHead``: RoBERTa's LM head, decoder tied to the word embeddings (``mlm``).
- ``EntityPredictionHead`` + ``chunked_cross_entropy``: mLUKE's head, decoder tied to the entity
  table; the softmax over 1M+ entities is computed chunk by chunk (``mep_vocab``).
- ``ProjectionHead``, ``NegativeQueue``, ``info_nce``: XLM-K's contrastive setup, put together
  once per objective (``mep_contrastive`` and ``oe``) by ``ContrastiveObjective``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from lightning_kg.model.config import EncoderConfig


class WordPredictionHead(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        """(N, H) states at masked positions only -> (N, V) logits (never the whole sequence: V is 250K)."""
        return F.linear(self.norm(F.gelu(self.dense(hidden))), word_embeddings, self.bias)


class EntityPredictionHead(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.entity_emb_size)
        self.norm = nn.LayerNorm(config.entity_emb_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.entity_vocab_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(N, H) -> (N, entity_emb_size): the query the entity table is scored against."""
        return self.norm(F.gelu(self.dense(hidden)))


LOGITS_PER_CHUNK = 2**24
"""Logits a chunk of the entity softmax may hold (64 MiB in float32): a batch with few masked slots
scores more entities per chunk, so it makes few launches."""


def entities_per_chunk(masked: int, vocabulary: int, at_least: int) -> int:
    """Entities scored at once for ``masked`` slots: ``at_least`` (``mep_vocab_chunk_size``), more
    when few slots are masked, a power of two (so compiled graphs see few sizes), up to the vocabulary."""
    wanted = max(at_least, LOGITS_PER_CHUNK // max(1, masked))
    return min(vocabulary, 1 << (wanted - 1).bit_length())


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``hidden @ weight.T + bias`` against ``labels``, one vocabulary chunk at
    a time, and each label's rank: at most (N, chunk) logits exist at once, forward or backward, and
    the loss and gradients equal the full softmax's (online log-sum-exp; backward recomputes each
    chunk). No op has a shape that depends on the labels' values, so nothing waits for the device:
    the targets' logits are gathered once, and a chunk finds its labels with a clamped ``gather``
    and ``scatter_add`` rather than a boolean mask."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, chunk_size):
        count = hidden.shape[0]
        # The targets' own logits, once: (N,) float32.
        target = (hidden.float() * weight[labels].float()).sum(-1) + bias[labels].float()
        running_max = torch.full((count,), float("-inf"), device=hidden.device)
        running_sum = torch.zeros(count, device=hidden.device)
        rank = torch.zeros_like(labels)
        for start in range(0, weight.shape[0], chunk_size):
            logits = F.linear(hidden, weight[start : start + chunk_size], bias[start : start + chunk_size]).float()  # (N, C)
            chunk_max = torch.maximum(running_max, logits.max(dim=1).values)
            running_sum = running_sum * torch.exp(running_max - chunk_max) + torch.exp(logits - chunk_max[:, None]).sum(1)
            running_max = chunk_max
            # Entries scoring strictly above the target, the target's own entry left out (its logit,
            # computed in this GEMM, may round above the gathered one).
            offset = labels - start
            inside = (offset >= 0) & (offset < logits.shape[1])
            own = logits.gather(1, offset.clamp(0, logits.shape[1] - 1)[:, None]).squeeze(1)
            rank += (logits > target[:, None]).sum(1) - (inside & (own > target)).long()
        log_normaliser = running_max + torch.log(running_sum)
        ctx.save_for_backward(hidden, weight, bias, labels, log_normaliser)
        ctx.chunk_size = chunk_size
        ctx.mark_non_differentiable(rank)
        device = hidden.device.type
        ctx.autocast = (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        return (log_normaliser - target).mean(), rank

    @staticmethod
    def backward(ctx, grad_loss, grad_rank):
        # Autograd runs backward outside autocast; recompute the chunks under the forward's state
        # (bf16-mixed) so the logits match the normaliser and the dtypes agree.
        device, enabled, dtype = ctx.autocast
        with torch.autocast(device, dtype=dtype, enabled=enabled):
            return _ChunkedCrossEntropy._backward(ctx, grad_loss)

    @staticmethod
    def _backward(ctx, grad_loss):
        hidden, weight, bias, labels, log_normaliser = ctx.saved_tensors
        count, chunk_size = hidden.shape[0], ctx.chunk_size
        grad_hidden = torch.zeros_like(hidden, dtype=torch.float32)
        grad_weight = torch.empty_like(weight)
        grad_bias = torch.empty_like(bias)
        scale = grad_loss / count
        for start in range(0, weight.shape[0], chunk_size):
            chunk = weight[start : start + chunk_size]
            logits = F.linear(hidden, chunk, bias[start : start + chunk_size]).float()  # (N, C)
            probabilities = torch.exp(logits - log_normaliser[:, None])
            # softmax - one-hot: 1 off at each label inside this chunk (0 added at a clamped slot otherwise).
            offset = labels - start
            inside = (offset >= 0) & (offset < chunk.shape[0])
            probabilities.scatter_add_(1, offset.clamp(0, chunk.shape[0] - 1)[:, None], -inside.float()[:, None])
            grad_logits = probabilities * scale
            grad_hidden += grad_logits @ chunk.float()
            grad_weight[start : start + chunk_size] = (grad_logits.t() @ hidden.float()).to(weight.dtype)
            grad_bias[start : start + chunk_size] = grad_logits.sum(0).to(bias.dtype)
        return grad_hidden.to(hidden.dtype), grad_weight, grad_bias, None, None


def chunked_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, labels: torch.Tensor,
                          chunk_size: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) queries, (V, D) table, (V,) bias, (N,) labels -> (mean loss, (N,) int64 rank of each label).

    The rank counts the other entries scoring strictly higher (0 = top-1), for accuracy@k metrics.
    ``chunk_size`` entities are scored at once (the model picks it with :func:`entities_per_chunk`).
    """
    return _ChunkedCrossEntropy.apply(hidden, weight, bias, labels, chunk_size)


class ProjectionHead(nn.Module):
    """XLM-K's projection head, as its released code builds it (``ProjectionHead`` with 2 layers):
    Linear without bias, BatchNorm, ReLU, Linear without bias, BatchNorm without affine parameters,
    BatchNorm epsilon 1e-12. There the middle and output widths are the hidden size; here the output
    width is ``projection_size`` (the hidden size by default, as there)."""

    def __init__(self, hidden_size: int, projection_size: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(hidden_size, hidden_size, bias=False), nn.BatchNorm1d(hidden_size, eps=1e-12), nn.ReLU(),
            nn.Linear(hidden_size, projection_size, bias=False), nn.BatchNorm1d(projection_size, eps=1e-12, affine=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, H) -> (N, projection_size); N >= 2 in training (BatchNorm)."""
        return self.net(x)


class NegativeQueue(nn.Module):
    """A FIFO memory bank of L2-normalised vectors (and their entity ids) from earlier batches of
    every rank, without gradient and without a momentum encoder (XLM-K).

    As in XLM-K's code it starts full of random vectors (entity -1), which stay as easy negatives
    until real ones replace them: the number of candidates, and so the loss's chance level
    log(candidates), is the same from the first step to the last.
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.register_buffer("vectors", F.normalize(torch.randn(size, dim), dim=-1))
        self.register_buffer("entities", torch.full((size,), -1, dtype=torch.long))  # -1: a random start vector
        self.register_buffer("cursor", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, vectors: torch.Tensor, entities: torch.Tensor) -> None:
        """(N, D) vectors (already gathered from all ranks) and (N,) entity ids replace the oldest."""
        size = self.vectors.shape[0]
        if size == 0 or len(vectors) == 0:
            return
        vectors, entities = vectors.detach()[-size:], entities[-size:]
        slots = (self.cursor + torch.arange(len(vectors), device=vectors.device)) % size
        self.vectors[slots] = F.normalize(vectors.float(), dim=-1).to(self.vectors.dtype)
        self.entities[slots] = entities
        self.cursor.copy_((self.cursor + len(vectors)) % size)


def gather_from_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """(N_r, ...) on rank r -> (sum of N_r, ...) on every rank, rank order, no gradient. Every rank
    must call it the same number of times, with zero rows if it has none (else the others wait)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return tensor.detach()
    length = torch.tensor([tensor.shape[0]], device=tensor.device)
    lengths = [torch.zeros_like(length) for _ in range(dist.get_world_size())]
    dist.all_gather(lengths, length)
    longest = max(1, int(max(n.item() for n in lengths)))  # at least one row: no empty collectives
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.shape[0]] = tensor.detach()
    gathered = [torch.empty_like(padded) for _ in lengths]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(n.item())] for g, n in zip(gathered, lengths)])


class ContrastiveOutput(NamedTuple):
    loss: torch.Tensor  # () mean of the four InfoNCE terms
    rank: torch.Tensor  # (K,) rank of each query's key among the other keys of the batch and the key queue
    # (K,) float32: the share of the batch's other keys scored below each query's own key, NaN for a
    # query without an in-batch negative. Chance is 0.5 whatever the batch size and however full the queues are, so
    # unlike the loss and the rank it is comparable from the first step to the last.
    pair_accuracy: torch.Tensor


def _direction(queries: torch.Tensor, keys: torch.Tensor, same: torch.Tensor, queue: NegativeQueue,
               entities: torch.Tensor, temperature: float) -> torch.Tensor:
    """(K,) InfoNCE losses of (K, D) unit ``queries`` against their ``keys``: candidates are every
    key, the other queries and the queue, less those of the positive's entity."""
    eye = torch.eye(len(queries), dtype=torch.bool, device=queries.device)
    to_keys = (queries @ keys.t() / temperature).masked_fill(same, float("-inf"))
    to_queries = (queries @ queries.t() / temperature).masked_fill(same | eye, float("-inf"))
    # A copy: the queue is updated in place after this, and autograd keeps what it multiplied.
    to_queue = (queries @ queue.vectors.float().t().clone() / temperature).masked_fill(
        queue.entities[None, :].eq(entities[:, None]), float("-inf"))
    logits = torch.cat([to_keys, to_queries, to_queue], dim=1)
    return F.cross_entropy(logits, torch.arange(len(queries), device=queries.device), reduction="none")


@torch.no_grad()
def _retrieval(queries: torch.Tensor, keys: torch.Tensor, same: torch.Tensor, key_queue: NegativeQueue,
               entities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Query -> key retrieval: (K,) rank of each key among the other keys and the key queue, and
    the pair accuracy of ``ContrastiveOutput``."""
    scores = (queries @ keys.t()).masked_fill(same, float("-inf"))
    positive = scores.diagonal()
    batch_rank = (scores > positive[:, None]).sum(1)
    negatives = len(keys) - 1 - same.sum(1)
    # NaN for a query without an in-batch negative (not left out: that would size the result by the data).
    pair_accuracy = 1.0 - batch_rank / negatives.float().masked_fill(negatives == 0, float("nan"))
    queued = (queries @ key_queue.vectors.float().t()).masked_fill(key_queue.entities[None, :].eq(entities[:, None]),
                                                                    float("-inf"))
    return batch_rank + (queued > positive[:, None]).sum(1), pair_accuracy


def info_nce(queries: torch.Tensor, keys: torch.Tensor, entities: torch.Tensor, query_queue: NegativeQueue,
             key_queue: NegativeQueue, temperature: float, push: bool) -> ContrastiveOutput:
    """XLM-K's bidirectional InfoNCE with one queue per side, for (K, P) ``queries`` (mentions, or
    subject + relation) and their (K, P) ``keys`` (knowledge texts), K >= 1, (K,) entity ids.

    As XLM-K's released code (``xlmk_loss.py``: a ``word2doc`` and a ``doc2word`` loss, each
    ``bi_direction``) it averages four terms: query -> key and key -> query against the key queue,
    and the same two against the query queue. In every term the candidates are all keys, the other
    queries and one queue (vectors L2-normalised, divided by ``temperature``). Unlike XLM-K, a
    candidate of the positive's entity (two mentions of one entity in a batch, or a queued copy) is
    left out rather than counted as a negative. With ``push`` (training), both sides' vectors, from
    all ranks, then enter their queues: every rank must call this the same number of times.
    """
    queries, keys = F.normalize(queries.float(), dim=-1), F.normalize(keys.float(), dim=-1)
    same = entities[:, None].eq(entities[None, :]) & ~torch.eye(len(entities), dtype=torch.bool, device=entities.device)
    terms = [_direction(a, b, mask, queue, entities, temperature) for queue in (key_queue, query_queue)
             for a, b, mask in ((queries, keys, same), (keys, queries, same.t()))]
    loss = torch.cat(terms).mean()
    rank, pair_accuracy = _retrieval(queries, keys, same, key_queue, entities)
    if push:
        push_to_queues(queries, keys, entities, query_queue, key_queue)
    return ContrastiveOutput(loss, rank, pair_accuracy)


def push_to_queues(queries: torch.Tensor, keys: torch.Tensor, entities: torch.Tensor, query_queue: NegativeQueue,
                   key_queue: NegativeQueue) -> None:
    """Gather (K, P) queries and keys and (K,) entities from every rank (K may be 0 on some) and
    push them into their queues, so every rank's queues hold the same vectors."""
    # One collective for all three; float64 holds entity ids exactly (float32 would stop at 2**24).
    rows = gather_from_ranks(torch.cat([queries.detach(), keys.detach(), entities[:, None]], dim=1).double())
    width = queries.shape[1]
    query_queue.push(rows[:, :width], rows[:, -1].long())
    key_queue.push(rows[:, width : 2 * width], rows[:, -1].long())


class ContrastiveObjective(nn.Module):
    """One of XLM-K's contrastive objectives: a projection head and a negative queue for each side,
    queries (mentions, or subject + relation) and keys (knowledge texts, or objects).

    The heads are registered before the queues, queries before keys: the order the model's
    parameters had before this module existed, which an optimiser state is matched by.
    """

    def __init__(self, hidden_size: int, projection_size: int, queue_size: int, temperature: float):
        super().__init__()
        self.query_head = ProjectionHead(hidden_size, projection_size)
        self.key_head = ProjectionHead(hidden_size, projection_size)
        self.query_queue = NegativeQueue(queue_size, projection_size)
        self.key_queue = NegativeQueue(queue_size, projection_size)
        self.temperature = temperature

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, entities: torch.Tensor) -> ContrastiveOutput:
        """(K, H) query and key states and their (K,) entity ids -> ``info_nce``'s output, the queues
        pushed in training. K may be 0 or 1 (below BatchNorm's two rows in training): the loss is then
        a zero that still reaches both heads, the rank and pair accuracy are empty."""
        if len(queries) < (2 if self.training else 1):
            # No loss here, but the heads stay in the graph (DDP must see them used) and this rank
            # still joins the queues' gather with zero rows: the other ranks wait in it.
            zero = sum(p.sum() for p in self.parameters()) * 0.0
            empty = torch.zeros(0, dtype=torch.long, device=queries.device)
            if self.training:
                nothing = queries.new_zeros(0, self.key_queue.vectors.shape[1])
                push_to_queues(nothing, nothing, empty, self.query_queue, self.key_queue)
            return ContrastiveOutput(zero + queries.sum() * 0.0 + keys.sum() * 0.0, empty, queries.new_zeros(0))
        return info_nce(self.query_head(queries), self.key_head(keys), entities, self.query_queue, self.key_queue,
                        self.temperature, push=self.training)
