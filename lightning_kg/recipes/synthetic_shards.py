"""A tiny dataset directory in the docs/FORMATS.md layout, built without ``prepare``.

Random but seeded: a word-level tokenizer with XLM-R's special tokens, an entity vocabulary, a
knowledge table (some entities without texts, some texts composed, some longer than 32 tokens),
text and fact shards, and a manifest. Tests of the loader and the model reuse it, and
``bench/data_pipeline.py`` writes its long rows with it (a recipe, so a fresh clone's bench needs no test code).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import webdataset as wds
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from lightning_kg.dataset.knowledge import KnowledgeTable

WORDS = 60  # word ids 4..63; <mask> is 64, the last id
LANGS = ["en", "fr"]
MAX_SEQ_LENGTH = 64
BOS, PAD, EOS, UNK = 0, 1, 2, 3
MASK = 4 + WORDS


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def write_tokenizer(directory: Path) -> None:
    vocab = {"<s>": BOS, "<pad>": PAD, "</s>": EOS, "<unk>": UNK, **{f"w{i}": 4 + i for i in range(WORDS)}, "<mask>": MASK}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", BOS), ("</s>", EOS)])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
                            unk_token="<unk>", pad_token="<pad>", mask_token="<mask>").save_pretrained(str(directory))


def has_knowledge(entity: int) -> bool:
    """Every seventh entity has no knowledge text, to exercise the pairs that must be left out."""
    return entity % 7 != 0


def knowledge_rows(num_entities: int, rng: np.random.Generator) -> list[tuple[int, str, list[int], bool]]:
    """``<s> label </s></s> description </s>``: English for every entity with knowledge, French for
    even ones; composed for multiples of 3; lengths 6..45 tokens, so some exceed 32."""
    rows = []
    for entity in range(3, num_entities):
        if not has_knowledge(entity):
            continue
        for lang in ["en"] + (["fr"] if entity % 2 == 0 else []):
            description = rng.integers(4, MASK, rng.integers(1, 41)).tolist()
            rows.append((entity, lang, [BOS, 4 + entity % WORDS, EOS, EOS, *description, EOS], entity % 3 == 0))
    rng.shuffle(rows)  # write() must sort them
    return rows


def text_sample(key: str, rng: np.random.Generator, num_entities: int) -> dict:
    """A raw text sample (tar members as bytes) with non-overlapping mentions, some of [UNK]."""
    length = int(rng.integers(8, MAX_SEQ_LENGTH + 1))
    ids = np.concatenate([[BOS], rng.integers(4, MASK, length - 2), [EOS]]).astype(np.int32)
    mentions, position = [], 1
    while True:
        position += int(rng.integers(0, 6))
        width = int(rng.integers(1, 4))
        if position + width > length - 1:
            break
        entity = 1 if rng.random() < 0.15 else int(rng.integers(3, num_entities))
        mentions.append([position, position + width, entity])
        position += width
    meta = {"lang": LANGS[int(rng.integers(len(LANGS)))], "title": key, "mentions": mentions}
    return {"__key__": key, "input_ids.npy": npy(ids), "json": json.dumps(meta).encode()}


def fact_sample(rng: np.random.Generator, num_entities: int) -> dict:
    subject, obj = (int(e) for e in rng.integers(3, num_entities, 2))
    lang = LANGS[int(rng.integers(len(LANGS)))]
    query = [BOS, 4 + subject % WORDS, EOS, EOS, *rng.integers(4, MASK, int(rng.integers(1, 4))).tolist(), EOS]
    meta = {"query_ids": query, "lang": lang, "subject": subject, "relation": "P36", "object": obj,
            "subject_label": f"E{subject}", "relation_label": "capital", "object_label": f"E{obj}"}
    return {"__key__": f"{subject}-P36-{obj}-{lang}", "json": json.dumps(meta).encode()}


def write_shard(path: Path, samples: list[dict]) -> dict:
    """Write raw samples (members already bytes) as one tar; returns the manifest's shard entry."""
    # A whole-number mtime, as prepare writes: tar then needs no PAX header per member (reads twice as fast).
    with wds.TarWriter(str(path), encoder=False, mtime=0) as writer:
        for sample in samples:
            writer.write(sample)
    data = path.read_bytes()
    return {"name": path.name, "samples": len(samples), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def make_dataset(directory: Path, *, train_shards: int = 4, val_shards: int = 3, train_fact_shards: int = 2,
                 val_fact_shards: int = 2, samples_per_shard: int = 24, facts_per_shard: int = 20,
                 num_entities: int = 40, seed: int = 0, text_sample=text_sample,
                 max_seq_length: int = MAX_SEQ_LENGTH) -> Path:
    """Write a dataset under ``directory`` (created) and return it. ``text_sample(key, rng,
    num_entities)`` makes each text row; ``max_seq_length`` is what the manifest records, so it must be
    at least the longest row that ``text_sample`` makes (the default's rows are at most 64 tokens)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    write_tokenizer(directory / "tokenizer")
    with open(directory / "entity_vocab.jsonl", "w", encoding="utf-8") as out:
        for index, name in enumerate(["[PAD]", "[UNK]", "[MASK]"]):
            out.write(json.dumps({"id": index, "entity": name, "count": 0, "titles": {}}) + "\n")
        for index in range(3, num_entities):
            out.write(json.dumps({"id": index, "entity": f"Q{index}", "count": 100 - index,
                                  "titles": {"en": f"E{index}", "fr": f"E{index}"}}) + "\n")
    KnowledgeTable.write(directory, knowledge_rows(num_entities, rng), num_entities, LANGS)
    shards: dict[str, list[dict]] = {}
    for split, count in (("train", train_shards), ("val", val_shards)):
        shards[split] = []
        for number in range(count):
            samples = []
            for sequence in range(samples_per_shard):
                document = hashlib.sha256(f"{split}{number}{sequence // 4}".encode()).hexdigest()[:16]
                samples.append(text_sample(f"{document}-{sequence % 4:04d}", rng, num_entities))
            shards[split].append(write_shard(directory / f"{split}-{number:06d}.tar", samples))
    for split, count in (("facts-train", train_fact_shards), ("facts-val", val_fact_shards)):
        shards[split] = []
        for number in range(count):
            samples = {}
            while len(samples) < facts_per_shard:  # keys must be unique within a shard
                sample = fact_sample(rng, num_entities)
                samples[sample["__key__"]] = sample
            shards[split].append(write_shard(directory / f"{split}-{number:06d}.tar", list(samples.values())))
    manifest = {"format": 1, "languages": LANGS, "config": {"max_seq_length": max_seq_length, "knowledge_max_length": 32},
                "counts": {"entities": num_entities}, "shards": shards}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return directory
