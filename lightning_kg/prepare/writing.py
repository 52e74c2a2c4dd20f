"""Steps 3 and 5 of ``prepare``: links to entities, the vocabulary, knowledge texts and shards."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from tqdm import tqdm

from lightning_kg.dataset.entity_vocab import EntityVocab
from lightning_kg.dataset.knowledge import KnowledgeTable
from lightning_kg.prepare.config import PrepareConfig
from lightning_kg.prepare.knowledge_base import KnowledgeBase
from lightning_kg.prepare.parsing import iter_documents
from lightning_kg.prepare.samples import TextSequence, encode_texts, join_sequences, knowledge_text, pack_document
from lightning_kg.prepare.shards import ShardJournal, ShardSink

log = logging.getLogger("lightning_kg.prepare")
REDIRECT_HOPS = 5
ENCODE_BATCH_DOCUMENTS = 64  # documents tokenized in one call: amortises the call, bounds what is held


def stable_fraction(text: str) -> float:
    """A number in [0, 1) fixed by ``text``: splits by hash are the same on every machine and run."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def doc_hash(site: str, title: str) -> str:
    """A document's key: its wiki's site id and title (simplewiki and enwiki share a language, not pages)."""
    return hashlib.blake2b(f"{site}:{title}".encode(), digest_size=8).hexdigest()


class LinkResolver:
    """Link target -> entity key: follow redirects in the link's wiki, then that wiki's sitelinks."""

    def __init__(self, summaries: list[dict], kb: KnowledgeBase):
        self.kb = kb
        self.redirects: dict[str, dict[str, str]] = {}
        for summary in summaries:
            self.redirects.setdefault(summary["site"], {}).update(summary["redirects"])

    def target(self, site: str, title: str) -> str:
        """The title a link to ``title`` in wiki ``site`` lands on, redirects followed ("" where
        a redirect leads out of the main namespace)."""
        redirects = self.redirects.get(site, {})
        for _ in range(REDIRECT_HOPS):
            if title not in redirects:
                break
            title = redirects[title]
        return title

    def __call__(self, site: str, lang: str, title: str) -> str | None:
        """The entity key, or None where a redirect leads out of the main namespace (a shortcut
        such as English Wikipedia's "MOS:BOLD" to a project page): no article, no entity."""
        title = self.target(site, title)
        return self.kb.resolve(site, lang, title) if title else None


def linked_targets(summaries: list[dict]) -> set[tuple[str, str]]:
    """(site, title) of every page the wikis link to, redirects followed: the Wikidata items whose
    sitelinks are among them are the only ones the vocabulary can hold."""
    resolver = LinkResolver(summaries, KnowledgeBase())
    return {(s["site"], target) for s in summaries for title in s["link_counts"] if (target := resolver.target(s["site"], title))}


def build_vocab(summaries: list[dict], resolve: LinkResolver, kb: KnowledgeBase, config: PrepareConfig) -> EntityVocab:
    """Mention counts over all languages -> the entity vocabulary (``min_entity_count``, ``max_entities``)."""
    counts: Counter = Counter()
    titles: dict[str, dict[str, str]] = {}
    for summary in summaries:
        site, lang = summary["site"], summary["lang"]
        for title, count in summary["link_counts"].items():
            entity = resolve(site, lang, title)
            if entity is None:
                continue
            counts[entity] += count
            if entity in kb.titles:
                titles[entity] = kb.titles[entity]
            else:
                titles.setdefault(entity, {})[lang] = entity.split(":", 1)[1] if ":" in entity else title
    return EntityVocab.build(counts, titles, min_count=config.min_entity_count, max_size=config.max_entities)


def entity_labels(vocab: EntityVocab, kb: KnowledgeBase, index: int) -> dict[str, str]:
    """Labels per language: Wikidata's, else the entity's Wikipedia titles."""
    entity = vocab.entities[index]
    return kb.labels.get(entity) or vocab.titles[index]


def tokenize_knowledge(tokenizer, texts: list[tuple[str, str]], max_length: int) -> list[list[int]]:
    """``<s> label </s></s> description </s>`` (or ``<s> label </s>``), truncating the description."""
    result: list[list[int] | None] = [None] * len(texts)
    paired = [i for i, (_, description) in enumerate(texts) if description]
    single = [i for i, (_, description) in enumerate(texts) if not description]
    if paired:
        encoded = tokenizer([texts[i][0] for i in paired], [texts[i][1] for i in paired],
                            truncation=True, max_length=max_length)["input_ids"]
        for i, ids in zip(paired, encoded):
            result[i] = ids
    if single:
        encoded = tokenizer([texts[i][0] for i in single], truncation=True, max_length=max_length)["input_ids"]
        for i, ids in zip(single, encoded):
            result[i] = ids
    return result


def knowledge_texts(vocab: EntityVocab, kb: KnowledgeBase, languages: list[str], heldout_subjects: set[str],
                    config: PrepareConfig) -> list[tuple[int, str, str, str, bool]]:
    """One knowledge text per entity and language, as ``(entity index, lang, label, description, composed)``;
    facts of held-out subjects are not used."""
    texts = []
    wanted = set(languages)
    for index in range(3, len(vocab)):
        entity = vocab.entities[index]
        labels = entity_labels(vocab, kb, index)
        descriptions, aliases = kb.descriptions.get(entity, {}), kb.aliases.get(entity, {})
        facts = [] if entity in heldout_subjects else kb.facts.get(entity, [])
        for lang in sorted(labels):
            if lang not in wanted:
                continue
            stated = [(kb.labels[p][lang], kb.labels[o][lang]) for p, o in facts
                      if lang in kb.labels.get(p, {}) and lang in kb.labels.get(o, {})]
            label, description, composed = knowledge_text(labels[lang], descriptions.get(lang), stated[: config.facts_per_description],
                                                          aliases.get(lang, [])[: config.knowledge_aliases])
            texts.append((index, lang, label, description, composed))
    return texts


def write_knowledge(out: Path, vocab: EntityVocab, kb: KnowledgeBase, tokenizer, texts: list[tuple[int, str, str, str, bool]],
                    languages: list[str], max_length: int) -> dict:
    """The knowledge table of ``texts`` (from :func:`knowledge_texts`), tokenized."""
    rows_text = [(label, description) for _, _, label, description, _ in texts]
    rows_meta = [(index, lang, composed) for index, lang, _, _, composed in texts]
    rows = []
    batch = 1024
    for start in tqdm(range(0, len(rows_text), batch), desc="knowledge", unit="batch", disable=None):
        chunk, meta = rows_text[start : start + batch], rows_meta[start : start + batch]
        for ids, (index, lang, composed) in zip(tokenize_knowledge(tokenizer, chunk, max_length), meta):
            rows.append((index, lang, ids, composed))
    KnowledgeTable.write(out, rows, num_entities=len(vocab), langs=languages)
    if not rows and len(vocab) > 3:
        labelled = sorted({lang for index in range(3, len(vocab)) for lang in entity_labels(vocab, kb, index)})
        log.warning("no knowledge text written: none of the %d entities has a label in languages %s (their labels are in: %s); "
                    "mep_contrastive and oe have nothing to read", len(vocab) - 3, languages, ", ".join(labelled) or "no language")
    return {"texts": len(rows), "composed": sum(1 for r in rows if r[3])}


def link_table(summaries: list[dict], resolve: LinkResolver, vocab: EntityVocab) -> dict[str, dict[str, int]]:
    """site -> link target -> entity index, for every target linked in the dumps and kept in the vocabulary.
    Saved by the merge stage, so writing shards needs neither Wikidata nor the redirects again."""
    table: dict[str, dict[str, int]] = {}
    for summary in summaries:
        per_site = table.setdefault(summary["site"], {})
        for title in summary["link_counts"]:
            entity = resolve(summary["site"], summary["lang"], title)
            index = vocab.index(entity) if entity is not None else -1
            if index > 2:
                per_site[title] = index
    return table


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_text_shards(out: Path, work_dir: Path, summaries: dict[int, dict], numbers: list[int],
                      links: dict[str, dict[str, int]], tokenizer, journal: ShardJournal, first_shard: int,
                      config: PrepareConfig) -> dict:
    """Pack the parsed articles of dumps ``numbers`` into text samples; a document goes wholly to
    train or to val. Shards are numbered from ``first_shard`` (slices write disjoint ranges)."""
    sinks = {split: ShardSink(out, split, journal, config.shard_max_samples, config.shard_max_bytes, first_shard)
             for split in ("train", "val")}
    # Per split, the sample being filled: consecutive sequences of one language share a sample while they fit.
    pending: dict[str, tuple[dict, TextSequence] | None] = {"train": None, "val": None}

    def emit(split: str) -> None:
        meta, sequence = pending[split]
        sinks[split].write({"__key__": meta["key"], "input_ids.npy": sequence.input_ids,
                            "json": {"lang": meta["lang"], "title": meta["title"], "mentions": sequence.mentions.tolist()}})
        pending[split] = None

    documents = {"train": 0, "val": 0}
    mentions = Counter()
    total = sum(summaries[i]["articles"] for i in numbers)
    articles = tqdm(iter_documents(work_dir, numbers), total=total, desc="text", unit="doc", disable=None)
    for batch in _batches(articles, ENCODE_BATCH_DOCUMENTS):
        resolved_batch = []
        for dump, article in batch:
            known = links.get(summaries[dump]["site"], {})
            paragraphs = []
            for text, spans in article["paragraphs"]:
                resolved = [(start, end, known.get(target, -1)) for start, end, target in spans]
                mentions.update("in_vocab" if index > 0 else "out_of_vocab" for _, _, index in resolved)
                paragraphs.append((text, resolved))
            resolved_batch.append(paragraphs)
        # One tokenizer call for the batch's paragraphs: the per-call cost was most of the stage's.
        encoded = iter(encode_texts(tokenizer, [text for paragraphs in resolved_batch for text, _ in paragraphs]))
        for (dump, article), paragraphs in zip(batch, resolved_batch):
            site, lang, title = summaries[dump]["site"], summaries[dump]["lang"], article["title"]
            split = "val" if stable_fraction(f"{site}:{title}") < config.val_fraction else "train"
            documents[split] += 1
            key = doc_hash(site, title)
            document_encoded = [next(encoded) for _ in paragraphs]
            for number, sequence in enumerate(pack_document(paragraphs, tokenizer, config.max_seq_length, document_encoded)):
                held = pending[split]
                if held and held[0]["lang"] == lang and len(held[1].input_ids) + len(sequence.input_ids) - 1 <= config.max_seq_length:
                    pending[split] = (held[0], join_sequences(held[1], sequence))
                    continue
                if held:
                    emit(split)
                pending[split] = ({"key": f"{key}-{number:04d}", "lang": lang, "title": title}, sequence)
    for split in sinks:
        if pending[split]:
            emit(split)
    shards = {split: sink.close() for split, sink in sinks.items()}
    return {"shards": shards, "documents": documents, "mentions": dict(mentions)}


def write_fact_shards(out: Path, vocab: EntityVocab, kb: KnowledgeBase, tokenizer, languages: list[str],
                      heldout_subjects: set[str], journal: ShardJournal, config: PrepareConfig) -> dict:
    """Object Entailment samples: facts whose subject and object are both in the vocabulary, one per
    language that labels subject, relation and object (at most ``fact_languages`` of them, picked by
    hash), with the descriptions that language has."""
    sinks = {split: ShardSink(out, f"facts-{split}", journal, config.shard_max_samples, config.shard_max_bytes)
             for split in ("train", "val", "heldout")}
    counts = Counter()
    # Why facts are not written, for the warning when none is.
    unlabelled: Counter = Counter()
    in_vocabulary = 0
    for subject_index in tqdm(range(3, len(vocab)), desc="facts", unit="entity", disable=None):
        subject = vocab.entities[subject_index]
        for relation, obj in kb.facts.get(subject, []):
            object_index = vocab.index(obj)
            if object_index <= 2:
                continue
            in_vocabulary += 1
            if subject in heldout_subjects:
                split = "heldout"
            else:
                split = "val" if stable_fraction(f"{subject}|{relation}|{obj}") < config.val_fraction else "train"
            labelled = [lang for lang in languages if all(lang in kb.labels.get(e, {}) for e in (subject, relation, obj))]
            if not labelled:
                unlabelled.update(role for role, e in (("subject", subject), ("relation", relation), ("object", obj))
                                  if not set(languages) & set(kb.labels.get(e, {})))
            if config.fact_languages is not None:
                chosen = set(sorted(labelled, key=lambda lang: stable_fraction(f"{subject}|{relation}|{obj}|{lang}"))[: config.fact_languages])
                labelled = [lang for lang in labelled if lang in chosen]
            for lang in labelled:
                labels = [kb.labels[e][lang] for e in (subject, relation, obj)]
                query_ids = tokenizer(labels[0], labels[1])["input_ids"]
                meta = {"query_ids": query_ids, "lang": lang, "subject": subject_index, "relation": relation, "object": object_index,
                        "subject_label": labels[0], "relation_label": labels[1], "object_label": labels[2]}
                for role, entity in (("subject", subject), ("relation", relation), ("object", obj)):
                    if description := kb.descriptions.get(entity, {}).get(lang):
                        meta[f"{role}_description"] = description
                sinks[split].write({"__key__": f"{subject_index}-{relation}-{object_index}-{lang}", "json": meta})
                counts[split] += 1
    if not counts:
        _warn_no_facts(kb, languages, in_vocabulary, unlabelled)
    return {"shards": {f"facts-{split}": sink.close() for split, sink in sinks.items()}, "samples": dict(counts)}


def _warn_no_facts(kb: KnowledgeBase, languages: list[str], in_vocabulary: int, unlabelled: Counter) -> None:
    """Say why no fact was written: there were none, their entities are not in the vocabulary, or no
    language of ``languages`` labels all three of subject, relation and object."""
    facts = sum(len(claims) for claims in kb.facts.values())  # the vocabulary's: the merge keeps no others
    if not facts:
        why = ("no entity of the vocabulary has an item-to-item claim in the Wikidata input" if kb.labels
               else "there is no Wikidata input (--wikidata)")
    elif not in_vocabulary:
        why = f"none of the {facts} claims of vocabulary entities has its object in the entity vocabulary (see min_entity_count)"
    else:
        missing = ", ".join(f"no {role} label in any of them for {count}" for role, count in unlabelled.most_common())
        why = (f"none of the {in_vocabulary} claims between vocabulary entities has labels for subject, relation and object in one of "
               f"languages {languages} ({missing or 'the three labels are in different languages'})")
    log.warning("no fact written: %s; the oe objective has nothing to train on", why)
