"""A dataset of constructed facts whose answers the tests know, in the docs/FORMATS.md layout.

Built with ``lightning_kg/recipes/synthetic_shards``'s word-level tokenizer (one token per ``w<n>`` word, so a
label's token count is its word count) and shard writer. Every subject has one fact per relation:
- ``P1``: subject ``i`` -> ``P1_OBJECTS[i % 4]``, labels of two tokens, the second shared ("w48"):
  the number of masks says nothing about the answer, and only the first mask's state can tell it;
- ``P2``: subject ``i`` -> ``P2_OBJECTS[i % 3]``, labels of one, two and three tokens.
Every object is the answer of an equal share of a relation's facts, so a scorer that ignores the
subject is at chance exactly. One object is spelt the same in English and French, the others differ;
German facts have no template.
"""

from __future__ import annotations

import json
from pathlib import Path

from lightning_kg.recipes.synthetic_shards import WORDS, write_shard, write_tokenizer

P1_OBJECTS = (3, 4, 5, 6)
P2_OBJECTS = (7, 8, 9)
LABELS = {  # entity -> language -> label
    3: {"en": "w40 w48", "fr": "w50 w48", "de": "w40 w48"},
    4: {"en": "w41 w48", "fr": "w41 w48", "de": "w41 w48"},
    5: {"en": "w42 w48", "fr": "w52 w48", "de": "w42 w48"},
    6: {"en": "w43 w48", "fr": "w53 w48", "de": "w43 w48"},
    7: {"en": "w54", "fr": "w54", "de": "w54"},
    8: {"en": "w55 w56", "fr": "w55 w56", "de": "w55 w56"},
    9: {"en": "w57 w58 w59", "fr": "w57 w58 w59", "de": "w57 w58 w59"},
}
# Every word is in the tokenizer's vocabulary (w0..w59): none reads as <unk>.
assert all(int(word[1:]) < WORDS for labels in LABELS.values() for label in labels.values() for word in label.split())
TEMPLATES = {"P1": {"en": "[X] w1 w2 [Y] w3", "fr": "w4 [Y] w5 [X] w6"},  # French: the subject after the object
             "P2": {"en": "[X] w7 [Y] w3", "fr": "w8 [X] w7 [Y]"}}
FIRST_SUBJECT = 10
SUBJECTS = 36


def subject_label(entity: int, lang: str) -> str:
    """Two words (w10..w27 and w30..w31), unique per subject; English and French alike, German differs."""
    number = entity - FIRST_SUBJECT
    return f"w{10 + number % 18} w{30 + number // 18}" + (" w9" if lang == "de" else "")


def answer(subject: int, relation: str) -> int:
    objects = P1_OBJECTS if relation == "P1" else P2_OBJECTS
    return objects[(subject - FIRST_SUBJECT) % len(objects)]


def fact_samples(subjects: range, langs: tuple[str, ...]) -> list[dict]:
    samples = []
    for subject in subjects:
        for relation in ("P1", "P2"):
            obj = answer(subject, relation)
            for lang in langs:
                meta = {"query_ids": [0, 2], "lang": lang, "subject": subject, "relation": relation, "object": obj,
                        "subject_label": subject_label(subject, lang), "relation_label": relation, "object_label": LABELS[obj][lang]}
                samples.append({"__key__": f"{subject}-{relation}-{obj}-{lang}", "json": json.dumps(meta).encode()})
    return samples


def make_fact_dataset(directory: Path, heldout_subjects: int = 12) -> Path:
    """Tokenizer, entity vocabulary, fact shards (train: the first subjects in en, fr and de; heldout:
    the last ``heldout_subjects`` in en and fr) and manifest under ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_tokenizer(directory / "tokenizer")
    entities = FIRST_SUBJECT + SUBJECTS
    with open(directory / "entity_vocab.jsonl", "w", encoding="utf-8") as out:
        for index in range(entities):
            if index < 3:
                name, titles = ["[PAD]", "[UNK]", "[MASK]"][index], {}
            else:
                name = f"Q{index}"
                titles = LABELS.get(index) or {lang: subject_label(index, lang) for lang in ("en", "fr", "de")}
            out.write(json.dumps({"id": index, "entity": name, "count": entities - index, "titles": titles}) + "\n")
    split = entities - heldout_subjects
    shards = {"facts-train": [write_shard(directory / "facts-train-000000.tar", fact_samples(range(FIRST_SUBJECT, split), ("en", "fr", "de")))],
              "facts-heldout": [write_shard(directory / "facts-heldout-000000.tar", fact_samples(range(split, entities), ("en", "fr")))]}
    manifest = {"format": 1, "languages": ["de", "en", "fr"], "config": {"max_seq_length": 32, "knowledge_max_length": 32},
                "counts": {"entities": entities}, "shards": shards}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return directory
