"""What a checkpoint's ``mep_vocab`` head reads to name a fact's object in the training text: the
subject's entity, or the other entities of the article.

In the demo's territory articles ("Sweden is a country in Northern Europe. It lies in Europe. Its
official language is Swedish. Its currency is the Swedish krona."), each object of a fact of the
article's subject is masked as training masks it (the entity ``[MASK]``, its words ``<mask>``) and
ranked among the objects of that relation, four ways: with every other entity of the row as
trained; with the subject's entity replaced by ``[UNK]``; with only the subject's entity kept (what
the probe's prompt gives the head: the subject and the masked object, no other entity); with none.
Beside them, always answering the relation's most frequent object among the same mentions.

The subject's entity is the mention that opens its document, so this needs a dataset prepared with
``title_mentions`` (``conf/prepare/demo-knowledge.yaml``); in the demo as shipped a document's first
words are never linked to its own page, and the script says so. Macro averages over the relations
the table lists.

    python -m lightning_kg prepare --config conf/prepare/demo.yaml --config conf/prepare/demo-knowledge.yaml
    python bench/mep_cues.py --ckpt_path runs/<run>/checkpoints/last.ckpt --data_dir shards/demo-knowledge
"""

from __future__ import annotations

import argparse
import io
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
from common import record

from lightning_kg.data.checks import read_shard
from lightning_kg.dataset.entity_vocab import MASK_ID, UNK_ID
from lightning_kg.dataset.tokenizer import load_tokenizer
from lightning_kg.probe.queries import read_facts
from lightning_kg.runs.checkpoints import load_checkpoint_model

RELATIONS = ("P30", "P361", "P37", "P38")  # the territory facts an article states
WAYS = ("as trained", "subject [UNK]", "subject only", "none")


def text_samples(data_dir: Path, limit: int) -> list[tuple[np.ndarray, list[list[int]]]]:
    """(input_ids, mentions) of the first ``limit`` training samples in key order: keys hash the
    document, so this mixes the dumps, where a shard's own order puts the Wikipedia excerpts first."""
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    samples = []
    for shard in manifest["shards"]["train"]:
        for raw in sorted(read_shard(str(data_dir / shard["name"])), key=lambda raw: raw["__key__"]):
            samples.append((np.load(io.BytesIO(raw["input_ids.npy"])), json.loads(raw["json"])["mentions"]))
            if len(samples) == limit:
                return samples
    return samples


def object_mentions(ids: np.ndarray, mentions: list[list[int]], separator: int, objects: dict) -> list[tuple[int, int, str]]:
    """(mention index, subject's mention index, relation) of each mention that names an object of a
    fact of its document's subject, the mention that opens the document."""
    starts = [0] + [i for i, token in enumerate(ids) if token == separator]
    opening = {start: index for index, (begin, _, _) in enumerate(mentions) for start in starts if begin == start + 1}
    found = []
    for index, (begin, _, entity) in enumerate(mentions):
        start = max(s for s in starts if s < begin)
        subject = opening.get(start)
        if subject is None or subject == index:
            continue
        for relation in RELATIONS:
            if objects.get((mentions[subject][2], relation)) == entity:
                found.append((index, subject, relation))
                break
    return found


@torch.no_grad()
def rank_first(model, ids: np.ndarray, mentions: list[list[int]], index: int, subject: int, way: str,
               mask_token: int, candidates: list[int]) -> int:
    """The candidate the head ranks first for mention ``index``, masked, its context as ``way`` says."""
    words = torch.as_tensor(ids, dtype=torch.long)[None].clone()
    begin, end, _ = mentions[index]
    words[0, begin:end] = mask_token
    entities = [entity for _, _, entity in mentions]
    if way in ("subject only", "none"):
        entities = [entity if j == subject else UNK_ID for j, entity in enumerate(entities)]
    if way in ("subject [UNK]", "none"):
        entities[subject] = UNK_ID
    entities[index] = MASK_ID
    width = max(e - b for b, e, _ in mentions)
    positions = torch.full((1, len(mentions), width), -1, dtype=torch.long)
    for j, (b, e, _) in enumerate(mentions):
        positions[0, j, : e - b] = torch.arange(b, e)
    out = model.encoder(words, torch.ones_like(words), torch.tensor([entities]), positions, torch.ones(1, len(mentions), dtype=torch.long))
    query = model.entity_head(out.entity_hidden[0, index])
    table, bias = model.encoder.entity_embeddings.table.weight, model.entity_head.bias
    return candidates[int((table[candidates] @ query + bias[candidates]).argmax())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--data_dir", required=True, help="the dataset the checkpoint trained on, its articles mentioning their subject")
    parser.add_argument("--samples", type=int, default=600, help="training samples read (default 600)")
    args = parser.parse_args()
    data_dir = Path(args.data_dir)
    model, _ = load_checkpoint_model(args.ckpt_path)
    if model.entity_head is None:
        parser.error(f"{args.ckpt_path} has no mep_vocab head")
    tokenizer = load_tokenizer(data_dir / "tokenizer")
    facts = read_facts(sorted(str(path) for path in data_dir.glob("facts-*.tar")))
    objects = {(fact.subject, fact.relation): fact.object for fact in facts}
    candidates = {relation: sorted({fact.object for fact in facts if fact.relation == relation}) for relation in RELATIONS}
    hits: dict[tuple[str, str], list[bool]] = defaultdict(list)
    answers: dict[str, Counter] = defaultdict(Counter)
    for ids, mentions in text_samples(data_dir, args.samples):
        for index, subject, relation in object_mentions(ids, mentions, tokenizer.sep_token_id, objects):
            answer = mentions[index][2]
            answers[relation][answer] += 1
            for way in WAYS:
                first = rank_first(model, ids, mentions, index, subject, way, tokenizer.mask_token_id, candidates[relation])
                hits[relation, way].append(first == answer)
    if not answers:
        raise SystemExit(f"no document of {data_dir} opens with a mention of its subject: prepare it with title_mentions (conf/prepare/demo-knowledge.yaml)")
    majority = {relation: counts.most_common(1)[0][1] / sum(counts.values()) for relation, counts in answers.items()}
    print(f"{args.ckpt_path}: the objects of their article's subject in {args.samples} training samples, masked, "
          "accuracy@1 among the relation's objects")
    print(f"  {'relation':>8s} {'mentions':>8s} " + " ".join(f"{way:>13s}" for way in WAYS) + f" {'major':>6s}")
    for relation in sorted(answers):
        print(f"  {relation:>8s} {sum(answers[relation].values()):8d} "
              + " ".join(f"{np.mean(hits[relation, way]):13.3f}" for way in WAYS) + f" {majority[relation]:6.3f}")
    means = {way: float(np.mean([np.mean(hits[relation, way]) for relation in answers])) for way in WAYS}
    major = float(np.mean(list(majority.values())))
    print(f"  {'mean':>8s} {'':8s} " + " ".join(f"{means[way]:13.3f}" for way in WAYS) + f" {major:6.3f}")
    for way in WAYS[1:]:
        record("cpu", f"mep_vocab accuracy@1 on the article's masked objects, {way} vs as trained", means[way],
               means["as trained"], means[way] / means["as trained"], 3, ("torch",))


if __name__ == "__main__":
    main()
