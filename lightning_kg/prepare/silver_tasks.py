"""Silver transfer tasks from the prepared dumps: NER, entity typing and relation classification
built from link anchors, the way WikiANN (NER) and distant supervision (relations) are built, so a
pre-trained encoder can be fine-tuned in one language and tested zero-shot in the others on the
same dumps it was trained on (``python -m lightning_kg transfer``).

Anchors are the links, and each unlinked occurrence of an article's title in its own text (the
subject a page never links to; WikiANN propagated anchors likewise).
- ``typing`` (``.relx``, ``<e1>`` only): each anchor of a typed entity, marked in its sentence,
  labelled with the entity's type (``entity_types``: Wikidata ``P31``, ``P279`` up to a depth).
- ``ner`` (``.conll``, IOB2): each sentence with anchors, all of them typed; the anchors are the spans.
  Other unlinked names stay ``O``: silver, not gold.
- ``relation`` (``.relx``): each ordered pair of anchors in a sentence whose entities have a fact
  (subject ``<e1>``, object ``<e2>``) labelled with its property (``P17``); pairs with no fact either
  way are ``no_relation``, at most ``no_relation_ratio`` per related pair in each file.

Splits are disjoint by entity and by language: entities are dealt by a stable hash into those
fine-tuning may see and those held out (``transfer_heldout_fraction``); in ``transfer_language``
an example of seen entities only is ``train``, of held-out ones only ``dev``; in every other
language an example of held-out entities only is ``test``; any other example is dropped (counted).
Files are ``<out>/tasks/<task>/<language>.<split>.<ext>`` (``dataset.task_files``).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lightning_kg.dataset.entity_vocab import EntityVocab
from lightning_kg.dataset.task_examples import NO_RELATION, Example, RelationExample, SpanExample, TypingExample
from lightning_kg.dataset.task_files import EXAMPLE_EXTENSIONS, write_examples
from lightning_kg.prepare.chunk_pool import ChunkPool
from lightning_kg.prepare.config import PrepareConfig
from lightning_kg.prepare.entity_types import type_entities
from lightning_kg.prepare.knowledge_base import KnowledgeBase
from lightning_kg.prepare.parse import iter_documents
from lightning_kg.prepare.samples import SENTENCE_END
from lightning_kg.prepare.shards import stable_fraction

log = logging.getLogger("lightning_kg.prepare")
TASKS = ("typing", "ner", "relation")
# A word: one CJK character (no spaces to split on there, as WikiANN's zh and ja), a run of word
# characters, or one other visible character (punctuation stands apart, as CoNLL tokenizes it).
# Longer "sentences" are lists or tables with no sentence end (a run of letters and symbols), and
# would outgrow a fine-tuning sequence once cut into subwords.
MAX_WORDS = 100
DISAMBIGUATION = re.compile(r"\s*\([^()]*\)$")  # "Georgia (country)" -> "Georgia"
WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]|\w+|[^\w\s]")


@dataclass(frozen=True)
class AnchoredSentence:
    """A sentence's words and its anchors ``(first word, one past the last, entity)``; entity None
    for a link outside the entity vocabulary."""

    words: tuple[str, ...]
    anchors: tuple[tuple[int, int, str | None], ...]
    language: str
    source: str  # "site:title", for messages


def _words(text: str) -> list[str]:
    return WORD.findall(text)


def anchored_sentences(text: str, spans: Iterable[tuple[int, int, str | None]], language: str, source: str) -> Iterator[AnchoredSentence]:
    """The sentences of a paragraph ``text`` with anchors ``spans`` (character start, end, entity):
    cut where ``samples.SENTENCE_END`` says, never inside an anchor; words split at anchor edges."""
    spans = sorted(spans)
    inside = [(start, end) for start, end, _ in spans]
    cuts = [m.end() for m in SENTENCE_END.finditer(text) if not any(s < m.end() < e for s, e in inside)]
    for lo, hi in zip([0, *cuts], [*cuts, len(text)]):
        words: list[str] = []
        anchors = []
        position = lo
        for start, end, entity in spans:
            if start < lo or end > hi:
                continue
            words += _words(text[position:start])
            first = len(words)
            words += _words(text[start:end])
            if len(words) > first:
                anchors.append((first, len(words), entity))
            position = end
        words += _words(text[position:hi])
        if words:
            yield AnchoredSentence(tuple(words), tuple(anchors), language, source)


def with_own_mentions(sentence: AnchoredSentence, name: str, entity: str) -> AnchoredSentence:
    """``sentence`` with each unlinked occurrence of ``name`` (its article's title, a trailing
    "(disambiguation)" left out) made an anchor of the article's own ``entity``, as WikiANN
    propagated its anchors: a page never links to itself, so its subject (the lead's bold name)
    would otherwise be an untagged name beside the anchors its facts relate it to."""
    words = [word.casefold() for word in _words(DISAMBIGUATION.sub("", name))]
    if not words:
        return sentence
    taken = [False] * len(sentence.words)
    for start, end, _ in sentence.anchors:
        taken[start:end] = [True] * (end - start)
    folded = [word.casefold() for word in sentence.words]
    found, position = [], 0
    while position <= len(folded) - len(words):
        end = position + len(words)
        if folded[position:end] == words and not any(taken[position:end]):
            found.append((position, end, entity))
            position = end
        else:
            position += 1
    if not found:
        return sentence
    return AnchoredSentence(sentence.words, tuple(sorted(sentence.anchors + tuple(found))), sentence.language, sentence.source)


def typing_examples(sentence: AnchoredSentence, types: dict[str, str]) -> list[tuple[TypingExample, frozenset[str]]]:
    """One example per anchor of a typed entity, with the entities it involves."""
    return [(TypingExample(sentence.words, (start, end), types[entity], sentence.language, sentence.source), frozenset([entity]))
            for start, end, entity in sentence.anchors if entity in types]


def ner_example(sentence: AnchoredSentence, types: dict[str, str]) -> tuple[SpanExample, frozenset[str]] | None:
    """The sentence with its anchors as spans, where it has some and all are typed; else None."""
    if not sentence.anchors or any(entity not in types for _, _, entity in sentence.anchors):
        return None
    spans = tuple((start, end, types[entity]) for start, end, entity in sentence.anchors)
    return SpanExample(sentence.words, spans, sentence.language, sentence.source), frozenset(e for _, _, e in sentence.anchors)


def relation_examples(sentence: AnchoredSentence, relations: dict[tuple[str, str], str],
                      types: dict[str, str]) -> list[tuple[RelationExample, frozenset[str]]]:
    """Each ordered pair of anchors of two entities with a fact (``relations``: (subject, object) ->
    property), and each unordered pair with none either way as ``no_relation`` (head the first).
    Only typed entities pair up: an entity Wikidata does not class (a title without an item) has no
    facts read, so its pairs would all be ``no_relation`` whatever the text says."""
    found = []
    anchors = [a for a in sentence.anchors if a[2] in types]
    for i, (head_start, head_end, head) in enumerate(anchors):
        for j, (tail_start, tail_end, tail) in enumerate(anchors):
            if head == tail:
                continue
            label = relations.get((head, tail))
            if label is None and (i > j or (tail, head) in relations):
                continue
            found.append((RelationExample(sentence.words, (head_start, head_end), (tail_start, tail_end), label or NO_RELATION,
                                          sentence.language, sentence.source), frozenset([head, tail])))
    return found


def fact_relations(facts: dict[str, list[tuple[str, str]]]) -> dict[tuple[str, str], str]:
    """(subject, object) -> property of the facts; a pair stated by several properties takes the
    first in sorted order (one label per example)."""
    relations: dict[tuple[str, str], str] = {}
    for subject in sorted(facts):
        for prop, obj in sorted(facts[subject]):
            relations.setdefault((subject, obj), prop)
    return relations


def is_heldout(entity: str, fraction: float) -> bool:
    """Whether fine-tuning never sees ``entity`` (a stable hash: the same on every run)."""
    return stable_fraction(f"transfer|{entity}") < fraction


def split_of(language: str, entities: frozenset[str], train_language: str, heldout_fraction: float) -> str | None:
    """``train``, ``dev`` or ``test`` for an example of ``entities`` in ``language``; None where it
    would cross the entity split (seen and held-out entities together, or seen ones in a test)."""
    held = {is_heldout(entity, heldout_fraction) for entity in entities}
    if held == {False}:
        return "train" if language == train_language else None
    if held == {True}:
        return "dev" if language == train_language else "test"
    return None


def cap_no_relation(examples: list[RelationExample], ratio: float) -> list[RelationExample]:
    """At most ``ratio x related`` ``no_relation`` examples, picked by a stable hash of each
    (so the same on every run), in their first order."""
    negative = [i for i, e in enumerate(examples) if e.label == NO_RELATION]
    keep = math.floor(ratio * (len(examples) - len(negative)))
    chosen = set(sorted(negative, key=lambda i: stable_fraction(f"{examples[i].source}|{i}"))[:keep])
    return [e for i, e in enumerate(examples) if e.label != NO_RELATION or i in chosen]


def build_tasks(sentences: Iterable[AnchoredSentence], types: dict[str, str], relations: dict[tuple[str, str], str],
                train_language: str, heldout_fraction: float, no_relation_ratio: float) -> dict[str, dict[tuple[str, str], list[Example]]]:
    """task -> (language, split) -> examples, with a counted log line per task of what each split
    kept and what the entity split dropped."""
    tasks: dict[str, dict[tuple[str, str], list[Example]]] = {task: defaultdict(list) for task in TASKS}
    dropped: dict[str, Counter] = {task: Counter() for task in TASKS}
    too_long = 0
    for sentence in sentences:
        if len(sentence.words) > MAX_WORDS:
            too_long += 1
            continue
        ner = ner_example(sentence, types)
        made = {"typing": typing_examples(sentence, types), "ner": [ner] if ner else [],
                "relation": relation_examples(sentence, relations, types)}
        for task, examples in made.items():
            for example, entities in examples:
                split = split_of(sentence.language, entities, train_language, heldout_fraction)
                if split is None:
                    dropped[task][sentence.language] += 1
                else:
                    tasks[task][(sentence.language, split)].append(example)
    if too_long:
        log.info("transfer tasks: %d sentence(s) over %d words left out (lists and tables the sentence cut missed)", too_long, MAX_WORDS)
    capped = Counter()
    for key, examples in tasks["relation"].items():
        kept = cap_no_relation(examples, no_relation_ratio)
        capped[key[0]] += len(examples) - len(kept)
        tasks["relation"][key] = kept
    for task in TASKS:
        kept = Counter()
        for (_, split), examples in tasks[task].items():
            kept[split] += len(examples)
        extra = f"; {sum(capped.values())} no_relation over the ratio {no_relation_ratio}" if task == "relation" else ""
        log.info("transfer task %s: kept %d train, %d dev (%s), %d test (%d languages); dropped %d crossing the entity split%s",
                 task, kept["train"], kept["dev"], train_language, kept["test"],
                 len({language for language, split in tasks[task] if split == "test"}), sum(dropped[task].values()), extra)
    return {task: dict(sorted(found.items())) for task, found in tasks.items()}


def write_tasks(out: Path, tasks: dict[str, dict[tuple[str, str], list[Example]]]) -> dict[str, dict[str, int]]:
    """``<out>/tasks/<task>/<language>.<split>.<ext>`` for every non-empty list; files of an earlier
    run that this one did not write are removed. Returns task -> file name -> examples."""
    written: dict[str, dict[str, int]] = {}
    for task, found in tasks.items():
        directory = out / "tasks" / task
        directory.mkdir(parents=True, exist_ok=True)
        names = {}
        for (language, split), examples in found.items():
            if examples:
                name = f"{language}.{split}{EXAMPLE_EXTENSIONS[type(examples[0])]}"
                write_examples(directory / name, examples)
                names[name] = len(examples)
        for path in sorted(directory.iterdir()):
            if path.is_file() and path.name not in names:
                path.unlink()
                log.info("removed %s: a task file of an earlier run with other settings", path)
        written[task] = names
    return written


def document_sentences(work_dir: Path, summaries: list[dict], links: dict[str, dict[str, int]], entities: list[str]) -> Iterator[AnchoredSentence]:
    """The sentences of every parsed article, anchors resolved through the merge's link table
    (``links``: site -> target -> entity index; ``entities``: the vocabulary's keys)."""
    for dump, article in iter_documents(work_dir, list(range(len(summaries)))):
        site, language = summaries[dump]["site"], summaries[dump]["lang"]
        known, title = links.get(site, {}), article["title"]
        own = entities[known[title]] if title in known else None  # the article's entity, where some page links to it
        for text, spans in article["paragraphs"]:
            resolved = [(start, end, entities[known[target]] if target in known else None) for start, end, target in spans]
            for sentence in anchored_sentences(text, resolved, language, f"{site}:{title}"):
                yield with_own_mentions(sentence, title, own) if own else sentence


def prepare_transfer_tasks(out: Path, work_dir: Path, summaries: list[dict], data_paths: list[str], kb: KnowledgeBase,
                           config: PrepareConfig) -> dict[str, dict[str, int]]:
    """Type the vocabulary's entities, build the three tasks from the parsed articles and write them
    (the last step of ``prepare``, under ``transfer_tasks``). Returns what :func:`write_tasks` does."""
    vocab = EntityVocab.load(out / "entity_vocab.jsonl")
    links = json.loads((work_dir / "links.json").read_text(encoding="utf-8"))
    with ChunkPool(config.workers if data_paths else 1, work_dir) as pool:
        types = type_entities(vocab.entities[3:], kb.facts, data_paths, config.type_classes, config.type_depth, pool)
    tasks = build_tasks(document_sentences(work_dir, summaries, links, vocab.entities), types, fact_relations(kb.facts),
                        config.transfer_language, config.transfer_heldout_fraction, config.no_relation_ratio)
    written = write_tasks(out, tasks)
    if empty := [task for task in TASKS if not written[task]]:
        why = "no Wikidata input (--wikidata)" if not data_paths else "see the counts above (types, facts, anchors per sentence)"
        log.warning("transfer tasks without any example: %s (%s)", ", ".join(empty), why)
    return written
