"""A copy of a prepared dataset with each document's own entity added as a mention on its title at
the document's start (Wikipedia's bold lead: "'''Sweden''' is a country ..."), to measure whether
the subject's entity token in its own article lets the knowledge demo learn the facts it states.

Packed samples hold several documents, each after a ``</s>``; the longest vocabulary title (as
written, or capitalised) in the sample's language that the document's first tokens spell is taken,
where no mention covers them already. The shards' sizes and hashes in ``manifest.json`` are
rewritten, so ``fit`` accepts the copy.

    python bench/self_mentions.py --out /tmp/shards-self
    python -m lightning_kg fit --config conf/demo/knowledge.yaml --data.data_dir /tmp/shards-self ...
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np

from lightning_kg.dataset.files import file_sha256
from lightning_kg.dataset.tokenizer import load_tokenizer

LONGEST_TITLE = 12  # tokens


def title_pieces(data_dir: Path, tokenizer) -> dict[str, dict[tuple[int, ...], int]]:
    """lang -> token ids of a title (with and without a word-starting space) -> its entity id."""
    pieces: dict[str, dict[tuple[int, ...], int]] = {}
    lines = (data_dir / "entity_vocab.jsonl").read_text(encoding="utf-8").splitlines()
    for entity in map(json.loads, lines):
        for lang, title in entity["titles"].items():
            for text in {title, title[:1].upper() + title[1:]}:
                for spelled in (text, " " + text):
                    if ids := tokenizer(spelled, add_special_tokens=False)["input_ids"]:
                        pieces.setdefault(lang, {}).setdefault(tuple(ids), entity["id"])
    return pieces


def add_self_mentions(ids: list[int], mentions: list[list[int]], titles: dict[tuple[int, ...], int], separator: int) -> int:
    """Add to ``mentions`` a mention of each document's title at its start; the count added."""
    added = 0
    starts = [1] + [i + 1 for i, token in enumerate(ids[:-1]) if token == separator]
    for start in starts:
        for length in range(min(LONGEST_TITLE, len(ids) - start), 0, -1):
            entity = titles.get(tuple(ids[start : start + length]))
            if entity is None:
                continue
            if not any(s < start + length and start < e for s, e, _ in mentions):
                mentions.append([start, start + length, entity])
                added += 1
            break
    mentions.sort()
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default="shards/demo")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    source, out = Path(args.data_dir), Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(source, out)
    tokenizer = load_tokenizer(source / "tokenizer")
    pieces, separator = title_pieces(source, tokenizer), tokenizer.sep_token_id
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    added = documents = 0
    for split in ("train", "val"):
        for shard in manifest["shards"][split]:
            path = out / shard["name"]
            with tarfile.open(path) as tar:
                members = [(info, tar.extractfile(info).read()) for info in tar.getmembers()]
            arrays = {info.name: data for info, data in members if info.name.endswith(".input_ids.npy")}
            rewritten = []
            for info, data in members:
                if info.name.endswith(".json"):
                    sample = json.loads(data)
                    ids = np.load(io.BytesIO(arrays[info.name[: -len(".json")] + ".input_ids.npy"])).tolist()
                    documents += 1 + sum(token == separator for token in ids[:-1])
                    added += add_self_mentions(ids, sample["mentions"], pieces.get(sample["lang"], {}), separator)
                    data = json.dumps(sample, ensure_ascii=False).encode("utf-8")
                    info.size = len(data)
                rewritten.append((info, data))
            with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
                for info, data in rewritten:
                    tar.addfile(info, io.BytesIO(data))
            shard["bytes"] = path.stat().st_size
            shard["sha256"] = file_sha256(path)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{added} own-title mentions added over about {documents} documents; dataset in {out}")


if __name__ == "__main__":
    main()
