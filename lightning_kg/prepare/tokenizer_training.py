"""The BPE tokenizer ``prepare`` trains when no local tokenizer is given, in XLM-R's conventions
(``lightning_kg.dataset.tokenizer`` loads it back)."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from lightning_kg.dataset.tokenizer import ENTITY_MARKERS, SPECIAL_TOKENS

# Each character that is neither a letter, a digit, a combining mark nor a format character (the
# zero-width joiners inside Persian or Hindi words), with the "▁" of a space before it, is a piece of
# its own: punctuation and symbols, which SentencePiece's script split keeps apart from words in XLM-R.
# So no piece joins a word and its comma ("y,", "ations."), nor two marks where a mention ends between
# them ("(ADHD)" + ","), and a mention's tokens end where its words do.
PUNCTUATION = Regex(r"▁?[^\p{L}\p{N}\p{M}\p{Cf}▁]")


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a BPE tokenizer over SentencePiece-style pieces (``▁word``) on ``texts`` (the prepared articles).

    Punctuation is split from words before BPE sees them (``PUNCTUATION``), as XLM-R's
    SentencePiece does. BPE rather than Unigram because the ``tokenizers`` Unigram trainer gives a
    different vocabulary on each run, and the same inputs must give byte-identical shards.
    """
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFKC()
    # "first", as XLM-R: only the text's start gets "▁", not each stretch after a special token.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(prepend_scheme="first"),
                                                       pre_tokenizers.Split(PUNCTUATION, behavior="isolated")])
    tokenizer.decoder = decoders.Metaspace(prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # <mask> comes right after the learnt pieces, as in XLM-R, and like XLM-R's it takes the space
    # before it ("of <mask>" -> "▁of", "<mask>"), so a fill-mask prompt holds no stray "▁"; the
    # entity markers after it.
    mask = AddedToken("<mask>", lstrip=True, special=True)
    tokenizer.add_special_tokens([mask, *ENTITY_MARKERS])
    bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token=mask,
        additional_special_tokens=ENTITY_MARKERS,
        model_max_length=512,
    )
