"""The merge stage of ``prepare``: the parsed wikis and Wikidata -> the entity vocabulary, the
tokenizer, the knowledge texts (per entity and language, its label and a description: Wikidata's,
or one composed from its facts), the fact shards (Object Entailment samples of the facts between
vocabulary entities, held out by subject) and the link table the write stage reads.

Links are resolved in their own wiki (redirects, then that wiki's sitelinks) and counted over all
languages, so one entity is one vocabulary entry whatever the language that links to it. Wikidata is
read in three passes, so memory follows the vocabulary (knowledge_base.py): the sitelinks of the
linked items (and the properties), then the vocabulary's items, then the labels of their facts'
objects. Each pass's result is kept in ``.work/`` (cached_steps.py), so a run killed in a later pass
starts again after the last one it finished: at full scale a pass is half an hour of a node.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from lightning_kg.dataset.entity_vocab import EntityVocab
from lightning_kg.dataset.files import write_json
from lightning_kg.dataset.knowledge import KnowledgeTable
from lightning_kg.dataset.tokenizer import load_tokenizer
from lightning_kg.prepare.cached_steps import cached_step, output_hash
from lightning_kg.prepare.chunk_pool import ChunkPool
from lightning_kg.prepare.config import PrepareConfig
from lightning_kg.prepare.dumps import BadRecords
from lightning_kg.prepare.knowledge_base import KnowledgeBase
from lightning_kg.prepare.parse import iter_documents
from lightning_kg.prepare.samples import knowledge_text
from lightning_kg.prepare.shards import ShardJournal, ShardSink, stable_fraction
from lightning_kg.prepare.tokenizer_training import train_tokenizer

log = logging.getLogger("lightning_kg.prepare")
REDIRECT_HOPS = 5
MERGE_OUTPUTS = ("entity_vocab.jsonl", "tokenizer", "knowledge", ".work/links.json")


def merge(out: Path, work_dir: Path, summaries: list[dict], data_paths: list[str], config: PrepareConfig, digest: str) -> bool:
    """Run the merge, or reuse the one an earlier run finished with these settings and inputs
    (then True). Its record, ``.work/merge.json``, also holds what the Wikidata passes took
    (``wikidata_passes``: CPU s of this process, wall s), for a bench to read."""
    _, reused = cached_step(work_dir / "merge.json", digest, "merge: finished by an earlier run with these settings and inputs, reused",
                            lambda: _merge(out, work_dir, summaries, data_paths, config, digest), out)
    return reused


def _merge(out: Path, work_dir: Path, summaries: list[dict], data_paths: list[str], config: PrepareConfig, digest: str) -> dict:
    languages = sorted(config.languages or {s["lang"] for s in summaries})
    bad = BadRecords(config.strict)
    started = time.process_time(), time.perf_counter()
    with ChunkPool(config.workers if data_paths else 1, work_dir) as pool:
        def first_pass() -> KnowledgeBase:
            with _pass_bar(data_paths, 1) as told, _journaled(pool, work_dir, "wikidata-first", digest):
                return KnowledgeBase.from_dumps(data_paths, set(languages), {s["site"]: s["lang"] for s in summaries}, on_error=bad,
                                                accept_bad=config.accept_bad_wikidata, linked=linked_targets(summaries), pool=pool,
                                                progress=told)

        # Two records, so that the first pass's JSON values need not stay in memory to be written again.
        (kb, bad.records), _ = cached_step(
            work_dir / "wikidata-first.json", digest, "wikidata: the first pass of an earlier run reused",
            lambda: (first_pass(), bad.records), save=lambda kept: {"knowledge_base": kept[0].to_json(), "bad_records": kept[1]},
            load=lambda record: (KnowledgeBase.from_json(record.pop("knowledge_base")), record["bad_records"]),
            journals=["wikidata-first"])
        if data_paths:
            log.info("wikidata: %d properties and %d sitelinks of linked items read", len(kb.decoded), len(kb.sitelinks))
        resolve = LinkResolver(summaries, kb)
        vocab = build_vocab(summaries, resolve, kb, config)
        if len(vocab) <= 3:
            raise ValueError(f"no entity mention found in {len(summaries)} dump(s) ({sum(s['articles'] for s in summaries)} "
                             "articles): nothing to train the entity objectives on; check the inputs")

        def last_passes() -> KnowledgeBase:
            if data_paths:
                with _pass_bar(data_paths, 2) as told, _journaled(pool, work_dir, "wikidata-items", digest):
                    kb.add_items(data_paths, set(vocab.entities[3:]), set(languages), pool, told)
            if missing := kb.keep_only(set(vocab.entities[3:])):
                with _pass_bar(data_paths, 3) as told, _journaled(pool, work_dir, "wikidata-labels", digest):
                    kb.add_labels(data_paths, missing, set(languages), pool, told)
                log.info("wikidata: labels of %d objects of the vocabulary's facts read in a third pass", len(missing))
            return kb

        kb, _ = cached_step(work_dir / "wikidata-last.json", digest, "wikidata: the second and third passes of an earlier run reused",
                            last_passes, save=lambda kept: {"knowledge_base": kept.to_json()},
                            load=lambda record: KnowledgeBase.from_json(record.pop("knowledge_base")),
                            journals=["wikidata-items", "wikidata-labels"])
    passes = {"cpu_s": time.process_time() - started[0], "wall_s": time.perf_counter() - started[1]}
    vocab.save(out / "entity_vocab.jsonl")
    heldout_subjects = {e for e in kb.facts if stable_fraction(f"heldout|{e}") < config.heldout_fact_fraction}
    knowledge_rows = knowledge_texts(vocab, kb, languages, heldout_subjects, config)
    if config.tokenizer:
        tokenizer = load_tokenizer(config.tokenizer)
    else:
        # What the model reads: the prepared articles, and the knowledge texts of the vocabulary's
        # entities with the labels of the relations their facts are stated in (keep_only left only
        # the vocabulary's facts; bounded by the vocabulary, not by
        # the Wikidata dump, whose every label once made the tokenizer follow the dump's size).
        relations = {p for claims in kb.facts.values() for p, _ in claims}
        texts = itertools.chain(
            (text for _, article in iter_documents(work_dir, list(range(len(summaries)))) for text, _ in article["paragraphs"]),
            (text for _, _, label, description, _ in knowledge_rows for text in (label, description) if text),
            (kb.labels[p][lang] for p in sorted(relations) for lang in languages if lang in kb.labels.get(p, {})),
        )
        tokenizer = train_tokenizer(texts, config.tokenizer_vocab_size)
    tokenizer.save_pretrained(str(out / "tokenizer"))
    knowledge = write_knowledge(out, vocab, kb, tokenizer, knowledge_rows, languages, config.knowledge_max_length)
    facts = write_fact_shards(out, vocab, kb, tokenizer, languages, heldout_subjects,
                              ShardJournal(work_dir / "shards-facts.jsonl", digest), config)
    write_json(work_dir / "links.json", link_table(summaries, resolve, vocab))
    return {"languages": languages, "entities": len(vocab), "knowledge_texts": knowledge["texts"],
            "composed_knowledge_texts": knowledge["composed"], "facts": facts["samples"], "bad_records": bad.records,
            "shards": {split: [asdict(info) for info in infos] for split, infos in facts["shards"].items()},
            "outputs": {name: output_hash(out, name) for name in MERGE_OUTPUTS}, "wikidata_passes": passes}


@contextlib.contextmanager
def _pass_bar(paths: list[str], number: int) -> Iterator[Callable[[int], None]]:
    """A bar of the Wikidata files' (compressed) bytes for pass ``number`` of 3, and what moves it."""
    with tqdm(total=sum(os.path.getsize(p) for p in paths), desc=f"wikidata pass {number}/3", unit="B", unit_scale=True,
              disable=None) as bar:
        yield lambda position: bar.update(position - bar.n)


@contextlib.contextmanager
def _journaled(pool: ChunkPool, work_dir: Path, name: str, digest: str) -> Iterator[None]:
    """Pass ``name`` with its chunks journaled, resumed where a killed run's journal ends."""
    before = pool.chunks["journal"]
    with pool.journaled(work_dir, name, digest):
        yield
    if replayed := pool.chunks["journal"] - before:
        log.info("wikidata: %s pass resumed: %d chunks from the journal of an earlier run", name.removeprefix("wikidata-"), replayed)


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


def entity_labels(vocab: EntityVocab, kb: KnowledgeBase, index: int) -> dict[str, str]:
    """Labels per language: Wikidata's, else the entity's Wikipedia titles."""
    entity = vocab.entities[index]
    return kb.labels.get(entity) or vocab.titles[index]


def tokenize_knowledge(tokenizer, texts: list[tuple[str, str]], max_length: int) -> list[list[int]]:
    """``<s> label </s></s> description </s>`` (or ``<s> label </s>``), truncating the description."""
    result: list[list[int] | None] = [None] * len(texts)
    for paired in (True, False):  # one call for the texts with a description, one for those without
        if indices := [i for i, (_, description) in enumerate(texts) if bool(description) == paired]:
            halves = [[texts[i][0] for i in indices]] + ([[texts[i][1] for i in indices]] if paired else [])
            for i, ids in zip(indices, tokenizer(*halves, truncation=True, max_length=max_length)["input_ids"]):
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
