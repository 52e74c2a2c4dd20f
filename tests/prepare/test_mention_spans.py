"""A mention's token span holds the mention's words and nothing else (no trailing comma or full stop):
with the tokenizer prepare trains, and with an XLM-R-style SentencePiece Unigram tokenizer built here."""

import bz2
import json
import unicodedata

import pytest
import webdataset as wds
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from lightning_kg.dataset.entity_vocab import EntityVocab
from lightning_kg.prepare.pipeline import prepare
from lightning_kg.prepare.tokenizer_training import PUNCTUATION
from tests.factories import config, page, xml_dump

EN = ("[[Tokyo]], the capital of [[Japan]], lies in [[Asia]]. People in ([[Tokyo]]) say «[[Japan]]»; [[Asia]]'s largest city "
      "is [[Tokyo]]! Is [[Japan]]? Yes: [[Asia]]… and \"[[Tokyo]]\", [[Washington, D.C.]], and [[Japan]].")
BG = "[[Токио]], столицата на [[Япония]], е в [[Азия]]. ([[Токио]]) и „[[Япония]]“; [[Азия]]!"


def write_dumps(source):
    source.mkdir()
    pages = [page(f"Page {i}", EN) for i in range(12)]
    (source / "enwiki-pages-articles.xml.bz2").write_bytes(bz2.compress(xml_dump("en", pages).encode()))
    (source / "bgwiki-pages-articles.xml.bz2").write_bytes(bz2.compress(xml_dump("bg", [page(f"Страница {i}", BG) for i in range(12)]).encode()))
    return source


def xlmr_style_tokenizer(texts, directory):
    """A Unigram model as SentencePiece trains XLM-R's (no piece spans a word and the punctuation
    after it, by its split by Unicode script), then used as XLM-R's tokenizer.json uses it: split at
    whitespace only, "▁" before every text."""
    learner = Tokenizer(models.Unigram())
    learner.normalizer = normalizers.NFKC()
    learner.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(prepend_scheme="always"),
                                                     pre_tokenizers.Split(PUNCTUATION, behavior="isolated")])
    special = ["<s>", "<pad>", "</s>", "<unk>"]
    learner.train_from_iterator(texts, trainers.UnigramTrainer(vocab_size=200, special_tokens=special, unk_token="<unk>",
                                                                show_progress=False))
    pieces = [tuple(piece) for piece in json.loads(learner.to_str())["model"]["vocab"]]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=3))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                             special_tokens=[("<s>", 0), ("</s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
                                   unk_token="<unk>", pad_token="<pad>", mask_token=AddedToken("<mask>", lstrip=True, special=True))
    assert [fast.convert_ids_to_tokens(i) for i in range(4)] == special  # XLM-R's ids
    assert not any(token.rstrip(",.;!?") != token and token.strip("▁,.;!?") for token in fast.get_vocab())
    fast.save_pretrained(str(directory))
    return directory


def decoded_mentions(out):
    """(decoded span, the mention's title) of every mention in the prepared text samples."""
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    vocab = EntityVocab.load(out / "entity_vocab.jsonl")
    found = []
    for sample in wds.WebDataset([str(out / s["name"]) for s in manifest["shards"]["train"]], shardshuffle=False).decode():
        ids, lang = sample["input_ids.npy"], sample["json"]["lang"]
        for start, end, entity in sample["json"]["mentions"]:
            found.append((tokenizer.decode(ids[start:end]).strip(), unicodedata.normalize("NFKC", vocab.titles[entity][lang])))
    return found


@pytest.mark.parametrize("tokenizer", ["trained", "xlmr-style"])
def test_each_mention_span_decodes_to_exactly_its_anchor(tmp_path, tokenizer):
    source = write_dumps(tmp_path / "dumps")
    settings = dict(wikipedia=[str(source / "*wiki-pages-articles.xml.bz2")], wikidata=[], languages=None, max_seq_length=64)
    if tokenizer == "xlmr-style":
        settings["tokenizer"] = str(xlmr_style_tokenizer([EN, BG] * 50, tmp_path / "xlmr"))
    prepare(config(source, tmp_path / "out", **settings))
    found = decoded_mentions(tmp_path / "out")
    assert len(found) == 12 * (12 + 6)  # every link of every page, none lost to packing
    assert [decoded for decoded, anchor in found if decoded != anchor] == []
    assert {anchor for _, anchor in found} == {"Tokyo", "Japan", "Asia", "Washington, D.C.", "Токио", "Япония", "Азия"}
