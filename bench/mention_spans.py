"""What prepare makes of the gensim English and Bulgarian excerpts: mention spans that carry more than
their anchor (a trailing comma or full stop), entities named by links outside the main namespace, and
the parse stage's pages/s.

Both excerpts are prepared whole (no Wikidata, every link an entity, the tokenizer trained with the
demo's 8,000 pieces). Each link of each parsed paragraph is tokenized as packing does and its token
span decoded; a span whose text is the anchor plus punctuation counts as carrying punctuation. An
entity ``lang:Title`` whose title the dump's own namespaces, interwiki or interlanguage prefixes
claim (``Namespaces.classify`` not "article") comes from outside the main namespace.

    python bench/mention_spans.py
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import sys
import tempfile
import unicodedata
from importlib.util import find_spec
from pathlib import Path

from common import record

from lightning_kg.dataset.entity_vocab import EntityVocab
from lightning_kg.dataset.tokenizer import load_tokenizer
from lightning_kg.prepare.config import PrepareConfig
from lightning_kg.prepare.mediawiki import read_site
from lightning_kg.prepare.parse import work_file
from lightning_kg.prepare.pipeline import prepare
from lightning_kg.prepare.samples import char_spans_to_token_spans

EXCERPTS = ["test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
            "test/test_data/bgwiki-latest-pages-articles-shortened.xml.bz2"]


def span_counts(out: Path, dumps: int) -> tuple[int, int, int]:
    """(mention spans, spans of anchor + punctuation, other spans that differ from their anchor)."""
    tokenizer = load_tokenizer(out / "tokenizer")
    total = punctuation = other = 0
    for number in range(dumps):
        with gzip.open(work_file(out / ".work", number), "rt", encoding="utf-8") as lines:
            for line in lines:
                for text, spans in json.loads(line)["paragraphs"]:
                    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
                    tokens = char_spans_to_token_spans(encoded["offset_mapping"], [(s, e) for s, e, _ in spans])
                    for (start, end, _), span in zip(spans, tokens):
                        total += 1
                        anchor = unicodedata.normalize("NFKC", text[start:end]).strip()
                        decoded = tokenizer.decode(encoded["input_ids"][span[0]:span[1]]).strip() if span else ""
                        extra = decoded.replace(anchor, "", 1) if anchor in decoded else None
                        if decoded == anchor:
                            continue
                        if extra and all(unicodedata.category(c)[0] in "PS" or c.isspace() for c in extra):
                            punctuation += 1
                        else:
                            other += 1
    return total, punctuation, other


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    if find_spec("gensim") is None:
        sys.exit("gensim is not installed: its wheel ships the Wikipedia excerpts this benchmark reads")
    dumps = [str(Path(find_spec("gensim").origin).parent / name) for name in EXCERPTS]
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda entry: messages.append(entry.getMessage())
    logging.getLogger("lightning_kg").addHandler(handler)
    logging.getLogger("lightning_kg").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "out"
        prepare(PrepareConfig(wikipedia=dumps, out=str(out), tokenizer_vocab_size=8000, max_seq_length=128, min_entity_count=1,
                              val_fraction=0.0, heldout_fact_fraction=0.0))
        total, punctuation, other = span_counts(out, len(dumps))
        namespaces = {site.language: site.namespaces for site in map(read_site, dumps)}
        vocab = EntityVocab.load(out / "entity_vocab.jsonl")
        outside = [e for e in vocab.entities[3:] if namespaces[e.split(":", 1)[0]].classify(e.split(":", 1)[1])[0] != "article"]
    parsed = next(m for m in messages if m.startswith("parsed "))
    pages_per_second = float(parsed.rsplit("(", 1)[1].split()[0])
    print(f"gensim en + bg excerpts: {total} mention spans, {punctuation} carry punctuation ({punctuation / total:.1%}), "
          f"{other} differ otherwise; {len(outside)} entities from outside the main namespace {outside[:5]}; {parsed}")
    record("cpu", "mention spans carrying punctuation, gensim en+bg excerpts, %", 100 * punctuation / total, None, None,
           packages=("lightning-kg", "tokenizers"))
    record("cpu", "entities from outside the main namespace, gensim en+bg excerpts", len(outside), None, None, 0,
           packages=("lightning-kg",))
    record("cpu", "prepare parse pages/s, gensim en+bg excerpts, 1 worker", pages_per_second, None, None, packages=("lightning-kg",))


if __name__ == "__main__":
    main()
