"""Prediction heads and losses of the four objectives.

- ``WordPredictionHead``: RoBERTa's LM head, decoder tied to the word embeddings (``mlm``).
- ``EntityPredictionHead`` + ``chunked_cross_entropy``: mLUKE's head, decoder tied to the entity
  table; the softmax over 1M+ entities is computed chunk by chunk (``mep_vocab``).
- ``ProjectionHead``, ``NegativeQueue``, ``info_nce``: XLM-K's contrastive setup
  (``mep_contrastive`` and ``oe``).
"""

from __future__ import annotations

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


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``hidden @ weight.T + bias`` against ``labels``, one vocabulary chunk at
    a time: at most (N, chunk) logits exist at once, forward or backward, and the loss and
    gradients equal the full softmax's (online log-sum-exp; backward recomputes each chunk)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, chunk_size):
        count = hidden.shape[0]
        running_max = torch.full((count,), float("-inf"), device=hidden.device)
        running_sum = torch.zeros(count, device=hidden.device)
        rows = torch.arange(count, device=hidden.device)
        target = torch.zeros(count, device=hidden.device)
        for start in range(0, weight.shape[0], chunk_size):
            logits = F.linear(hidden, weight[start : start + chunk_size], bias[start : start + chunk_size]).float()
            chunk_max = torch.maximum(running_max, logits.max(dim=1).values)
            running_sum = running_sum * torch.exp(running_max - chunk_max) + torch.exp(logits - chunk_max[:, None]).sum(1)
            running_max = chunk_max
            inside = (labels >= start) & (labels < start + logits.shape[1])
            target[inside] = logits[rows[inside], labels[inside] - start]
        log_normaliser = running_max + torch.log(running_sum)
        ctx.save_for_backward(hidden, weight, bias, labels, log_normaliser)
        ctx.chunk_size = chunk_size
        device = hidden.device.type
        ctx.autocast = (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        return (log_normaliser - target).mean()

    @staticmethod
    def backward(ctx, grad_loss):
        # Autograd runs backward outside autocast; recompute the chunks under the forward's state
        # (bf16-mixed) so the logits match the normaliser and the dtypes agree.
        device, enabled, dtype = ctx.autocast
        with torch.autocast(device, dtype=dtype, enabled=enabled):
            return _ChunkedCrossEntropy._backward(ctx, grad_loss)

    @staticmethod
    def _backward(ctx, grad_loss):
        hidden, weight, bias, labels, log_normaliser = ctx.saved_tensors
        count, chunk_size = hidden.shape[0], ctx.chunk_size
        rows = torch.arange(count, device=hidden.device)
        grad_hidden = torch.zeros_like(hidden, dtype=torch.float32)
        grad_weight = torch.empty_like(weight)
        grad_bias = torch.empty_like(bias)
        scale = grad_loss / count
        for start in range(0, weight.shape[0], chunk_size):
            chunk = weight[start : start + chunk_size]
            logits = F.linear(hidden, chunk, bias[start : start + chunk_size]).float()
            probabilities = torch.exp(logits - log_normaliser[:, None])
            inside = (labels >= start) & (labels < start + chunk.shape[0])
            probabilities[rows[inside], labels[inside] - start] -= 1.0
            grad_logits = probabilities * scale
            grad_hidden += grad_logits @ chunk.float()
            grad_weight[start : start + chunk_size] = (grad_logits.t() @ hidden.float()).to(weight.dtype)
            grad_bias[start : start + chunk_size] = grad_logits.sum(0).to(bias.dtype)
        return grad_hidden.to(hidden.dtype), grad_weight, grad_bias, None, None


def chunked_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, labels: torch.Tensor,
                          chunk_size: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) queries, (V, D) table, (V,) bias, (N,) labels -> (mean loss, (N,) rank of each label).

    The rank counts the other entries scoring strictly higher (0 = top-1), for accuracy@k metrics.
    """
    loss = _ChunkedCrossEntropy.apply(hidden, weight, bias, labels, chunk_size)
    with torch.no_grad():
        target = (hidden.float() * weight[labels].float()).sum(-1) + bias[labels].float()
        rank = torch.zeros_like(labels)
        for start in range(0, weight.shape[0], chunk_size):
            logits = F.linear(hidden, weight[start : start + chunk_size], bias[start : start + chunk_size]).float()
            own = (labels[:, None] - start) == torch.arange(logits.shape[1], device=labels.device)
            rank += ((logits > target[:, None]) & ~own).sum(1)
    return loss, rank


class ProjectionHead(nn.Module):
    """Linear, BatchNorm, ReLU, Linear: the 2-layer MLP head of SimCLR-style contrastive learning
    that XLM-K puts on each side (mention, knowledge, query, object)."""

    def __init__(self, hidden_size: int, projection_size: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.BatchNorm1d(hidden_size), nn.ReLU(),
                                 nn.Linear(hidden_size, projection_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class NegativeQueue(nn.Module):
    """A FIFO memory bank of key vectors (and their entity ids) from earlier batches on every rank.
    Keys enter detached and gathered from all ranks; there is no momentum encoder (XLM-K)."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.register_buffer("vectors", torch.zeros(size, dim))
        self.register_buffer("entities", torch.full((size,), -1, dtype=torch.long))  # -1 = empty slot
        self.register_buffer("cursor", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, vectors: torch.Tensor, entities: torch.Tensor) -> None:
        size = self.vectors.shape[0]
        if size == 0:
            return
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            vectors, entities = _gather_padded(vectors.detach()), _gather_padded(entities)
            keep = entities.ne(-2)
            vectors, entities = vectors[keep], entities[keep]
        vectors, entities = vectors.detach()[-size:], entities[-size:]
        slots = (self.cursor + torch.arange(len(vectors), device=vectors.device)) % size
        self.vectors[slots] = vectors.to(self.vectors.dtype)
        self.entities[slots] = entities
        self.cursor.copy_((self.cursor + len(vectors)) % size)


def _gather_padded(tensor: torch.Tensor) -> torch.Tensor:
    """all_gather for tensors whose first dimension differs across ranks (padding rows: -2 / 0)."""
    length = torch.tensor([tensor.shape[0]], device=tensor.device)
    lengths = [torch.zeros_like(length) for _ in range(dist.get_world_size())]
    dist.all_gather(lengths, length)
    longest = int(max(l.item() for l in lengths))
    padded = torch.full((longest, *tensor.shape[1:]), -2 if tensor.dtype == torch.long else 0,
                        dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.empty_like(padded) for _ in lengths]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(l.item())] for g, l in zip(gathered, lengths)])


def info_nce(queries: torch.Tensor, keys: torch.Tensor, entities: torch.Tensor, queue: NegativeQueue,
             temperature: float, push: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE between (K, P) queries and their (K, P) keys, L2-normalised.

    query -> key: negatives are the other keys of the batch and the queue; key -> query: the other
    queries of the batch (the queue holds keys only). Negatives of the same entity as the positive
    are masked out (a batch often holds two mentions of one entity). Returns (loss, (K,) rank of
    the positive key among all candidates). With ``push`` (training), the keys then enter the queue.
    """
    queries, keys = F.normalize(queries.float(), dim=-1), F.normalize(keys.float(), dim=-1)
    same = entities[:, None].eq(entities[None, :]) & ~torch.eye(len(entities), dtype=torch.bool, device=entities.device)
    in_batch = (queries @ keys.t()) / temperature
    in_batch = in_batch.masked_fill(same, float("-inf"))
    # A copy: the queue is updated in place below, after autograd saved what it multiplied.
    queued = (queries @ queue.vectors.t().float().clone()) / temperature
    queued = queued.masked_fill(queue.entities[None, :].eq(-1) | queue.entities[None, :].eq(entities[:, None]), float("-inf"))
    logits = torch.cat([in_batch, queued], dim=1)
    targets = torch.arange(len(queries), device=queries.device)
    reverse = ((keys @ queries.t()) / temperature).masked_fill(same, float("-inf"))
    loss = 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(reverse, targets))
    with torch.no_grad():
        positive = logits[targets, targets]
        rank = (logits > positive[:, None]).sum(1)
    if push:
        queue.push(keys, entities)
    return loss, rank
