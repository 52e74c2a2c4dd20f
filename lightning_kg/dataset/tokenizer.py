"""Word tokenizer: a local Hugging Face tokenizer, or a SentencePiece-style BPE trained here.

Either way the result follows XLM-R's conventions (``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3,
pairs as ``<s> A </s></s> B </s>``), so a model started from XLM-R and one trained from scratch
read the same shards the same way. ``<ent>``/``<ent2>`` are LUKE's entity-marker tokens.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>"]
ENTITY_MARKERS = ["<ent>", "<ent2>"]


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerBase:
    """Load a tokenizer saved with ``save_pretrained`` from a local directory; never reaches a hub.

    ``tokenizer.json`` (what XLM-R's directory on the Hub holds, and what we save) is read by
    ``tokenizers`` alone. A directory with only XLM-R's ``sentencepiece.bpe.model`` needs the
    ``sentencepiece`` package to be converted, which this project does not depend on.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer directory not found: {path} (expected a local directory "
                                "holding tokenizer.json or sentencepiece.bpe.model)")
    if not (path / "tokenizer.json").exists():
        if not (path / "sentencepiece.bpe.model").exists():
            raise FileNotFoundError(f"{path} holds neither tokenizer.json nor sentencepiece.bpe.model: not a tokenizer directory")
        if importlib.util.find_spec("sentencepiece") is None:
            raise ValueError(f"{path} holds sentencepiece.bpe.model but no tokenizer.json: converting it needs the "
                             "sentencepiece package (pip install sentencepiece), or write tokenizer.json once where it is "
                             f"installed: AutoTokenizer.from_pretrained('{path}').save_pretrained('{path}')")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as error:  # noqa: BLE001 - json, tokenizers and transformers each raise their own
        # Their messages give a line and column but not the file, which a traceback buries.
        named = path / "tokenizer.json" if (path / "tokenizer.json").exists() else path
        raise ValueError(f"{named}: cannot be read as a tokenizer ({type(error).__name__}: {error}); expected the files "
                         "save_pretrained writes (prepare writes them into <dataset>/tokenizer)") from error
    if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError(f"tokenizer in {path} has no mask or pad token; an MLM tokenizer is expected")
    return tokenizer
