"""The model's two settings dataclasses: the encoder's sizes (``EncoderConfig``; field names follow
Hugging Face's LukeConfig where one exists, so conversion in and out, ``hf_convert.py``, is a plain
rename) and the objectives' weights and knobs (``ObjectiveSettings``, ``--model.objective_settings.*``)."""

from __future__ import annotations

import typing
from dataclasses import dataclass, replace

from lightning_kg.dataset.format import OBJECTIVES

PRESETS = {
    # name: (layers, hidden, heads, intermediate, entity_emb_size)
    "tiny": (2, 64, 4, 128, 32),
    "base": (12, 768, 12, 3072, 256),  # XLM-R base; mLUKE's entity embeddings are 256-wide
    "large": (24, 1024, 16, 4096, 256),
}


@dataclass(frozen=True)
class EncoderConfig:
    vocab_size: int
    """Word vocabulary size (250,002 for XLM-R)."""
    entity_vocab_size: int
    """Entity vocabulary size, [PAD], [UNK] and [MASK] included."""
    hidden_size: int = 64
    """Width of every layer."""
    num_layers: int = 2
    """Transformer layers."""
    num_heads: int = 4
    """Attention heads per layer."""
    intermediate_size: int = 128
    """Width of the feed-forward block."""
    entity_emb_size: int = 32
    """Width of the entity table, projected to ``hidden_size`` (mLUKE: 256, to keep 1M+ entities small)."""
    max_position_embeddings: int = 514
    """Rows of the position tables; RoBERTa's offset uses the first ``pad_token_id + 1`` of them."""
    type_vocab_size: int = 1
    """Token types (XLM-R has one)."""
    pad_token_id: int = 1
    """Word padding id (XLM-R's <pad>); positions count from ``pad_token_id + 1``."""
    layer_norm_eps: float = 1e-5
    """LayerNorm epsilon."""
    dropout: float = 0.1
    """Dropout on embeddings and sublayer outputs."""
    attention_dropout: float = 0.1
    """Dropout on attention probabilities."""
    use_entity_aware_attention: bool = False
    """LUKE's four query projections (word/entity to word/entity); off by default as in mLUKE."""
    activation_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass: less memory, about a third more compute."""

    @classmethod
    def preset(cls, name: str, vocab_size: int, entity_vocab_size: int, **overrides) -> EncoderConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown model size {name!r}; expected one of {sorted(PRESETS)}")
        layers, hidden, heads, intermediate, entity_emb = PRESETS[name]
        config = cls(vocab_size=vocab_size, entity_vocab_size=entity_vocab_size, hidden_size=hidden, num_layers=layers,
                     num_heads=heads, intermediate_size=intermediate, entity_emb_size=entity_emb)
        return replace(config, **overrides)

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass(frozen=True)
class ObjectiveSettings:
    """The four objectives' weights and settings, declared once for the model and the LightningModule
    (``--model.objective_settings.mlm_weight 0``). A weight of 0 turns its objective off: no head, no queue,
    nothing the loader would build only for it."""

    mlm_weight: float = 1.0
    """Weight of masked language modelling (0 turns it off)."""
    mep_vocab_weight: float = 1.0
    """Weight of mLUKE's masked entity prediction over the entity vocabulary."""
    mep_contrastive_weight: float = 1.0
    """Weight of XLM-K's contrastive masked entity prediction."""
    oe_weight: float = 1.0
    """Weight of XLM-K's object entailment."""
    mep_layer: int | None = None
    """Encoder layer (1-based) read on both sides of ``mep_contrastive``: the mention's first token and the
    knowledge text's first token (XLM-K's ``layer_of_cts_loss``; None: the last)."""
    temperature: float = 0.05
    """InfoNCE temperature of the contrastive objectives (XLM-K publishes none; 0.05)."""
    queue_size: int = 4096
    """Vectors in each of the two memory banks per contrastive objective (one per side)."""
    projection_size: int | None = None
    """Output width of the contrastive projection heads (None: the hidden size, as XLM-K)."""
    mep_vocab_chunk_size: int = 8192
    """Entities scored at once by ``mep_vocab``'s exact chunked softmax (bounds its memory to (masked slots x chunk) logits)."""

    def __post_init__(self):
        if any(w < 0 for w in self.weights.values()) or not any(self.weights.values()):
            raise ValueError(f"model.objective_settings: weights must be >= 0 and not all 0; got {self.weights}")

    @property
    def weights(self) -> dict[str, float]:
        """Each objective's weight, in :data:`OBJECTIVES` order."""
        return dict(zip(OBJECTIVES, (self.mlm_weight, self.mep_vocab_weight, self.mep_contrastive_weight, self.oe_weight)))

    def active(self, objective: str) -> bool:
        return self.weights[objective] > 0


# EncoderConfig fields the data sets (model.vocab_size and friends), so model.encoder must not.
_LINKED_ENCODER_FIELDS = ("vocab_size", "entity_vocab_size", "pad_token_id")


def check_encoder_overrides(overrides) -> dict:
    """``model.encoder`` as a dict of ``EncoderConfig`` fields, each of the field's type; a
    ``ValueError`` naming ``model.encoder.<key>`` otherwise (a misspelt key would be a bare
    TypeError, a wrong type a failure deep inside torch)."""
    if overrides is None:
        return {}
    overrides = overrides.as_dict() if hasattr(overrides, "as_dict") else overrides
    if not isinstance(overrides, dict):
        raise ValueError(f"model.encoder is {overrides!r}, expected a mapping of encoder settings, e.g. {{activation_checkpointing: true}}")
    types = typing.get_type_hints(EncoderConfig)
    for key, value in overrides.items():
        if key in _LINKED_ENCODER_FIELDS:
            raise ValueError(f"model.encoder.{key}: set from the dataset (--data.data_dir), not here")
        if key not in types:
            settable = sorted(set(types) - set(_LINKED_ENCODER_FIELDS))
            raise ValueError(f"model.encoder.{key}: no such encoder setting; expected one of {', '.join(settable)}")
        expected = types[key]
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        fits = {bool: isinstance(value, bool), int: numeric and isinstance(value, int), float: numeric}.get(expected, isinstance(value, expected))
        if not fits:
            raise ValueError(f"model.encoder.{key} is {value!r} ({type(value).__name__}), expected {expected.__name__}")
    return overrides
