"""prepare's fast paths write the bytes the plain ones wrote: token spans by binary search equal
the search over every token, and a run on synthetic dumps writes every file the code before them
wrote (their sha256, pinned here; the demo's check is the shipped shards/demo)."""

import hashlib
import random

import pytest

from lightning_kg.prepare.config import PrepareConfig
from lightning_kg.prepare.pipeline import prepare
from lightning_kg.prepare.samples import _covering_tokens, char_spans_to_token_spans
from lightning_kg.recipes.synthetic_dumps import write_synthetic_dumps

# sha256 of each file prepare wrote from write_synthetic_dumps(entities=400, pages=60) with the
# settings below, before the fast paths (commit d651b39); manifest.json since its config records
# title_mentions (b30a922) and the transfer task settings (off here), the rest unchanged by them.
BEFORE = {
    "entity_vocab.jsonl": "13fccdcef7ad4675fb23b7c40a99c881aa9dd6d9feedbd5356c47bc1c766510c",
    "facts-heldout-000000.tar": "51d36f7a3e80d454926f851499df339bb6a2cc4aa32ff8ff1c540c74ce1fee5e",
    "facts-train-000000.tar": "c6fe038cabb83c19661684413e75ec38f27a619b031da8b7c7fbdfcc366d7a05",
    "facts-train-000001.tar": "d2a1609ffb39f5689796632b9498a5d8462d3aa0d74429d5c086e311187ad07c",
    "facts-val-000000.tar": "1a0349a066df5c79ff3a356235ca36e72edaefd6d1888fe6cb031ea2adde4a44",
    "knowledge/composed.npy": "ea07beced906f1b01fbf84be37bc8f291fff893cbf3cd54664d6fb6009212b09",
    "knowledge/entity_rows.npy": "67c45c24eaad2b46a2df5093a75d9e0738ec66c6942a10599eb5134ac5518c79",
    "knowledge/index.npy": "b7e659bf6443e2bd0e74e24e2b7f4572d0d19896e954cedb7fb8179611c78c94",
    "knowledge/langs.json": "96fea07a297280ecf7231d4d0d51654d3c68a9976788835a4b2caa06ea2f8008",
    "knowledge/tokens.npy": "44885f8c8d1aa9d1f7671e4ec2f8608cf9c1a3527719aec7407a7ae9b8fd7aa5",
    "manifest.json": "5bbf2df1386147bd10d0890e1b1c697ca66cf984d5777644e194ed848e9615b9",
    "tokenizer/tokenizer.json": "1dcb3cca1e2411530b9f34564e2b36c349c2e3d02ec0ac0de969dd8b1d475e17",
    "tokenizer/tokenizer_config.json": "7edc06795fb579fad4606e2be6d1cd9c022430c369f3068d0695d697930f02f9",
    "train-000000.tar": "dc94696479009b80d3d69ea4509af5d9de3de2434c08fa8a0d2a8084a9a5aa23",
    "val-000000.tar": "ab98f5bf6b17c76f7040cabd0410bb3a52652787f65872b4cb07e7061ca9a9de",
}


def random_offsets(rng: random.Random, ascending: bool) -> list[tuple[int, int]]:
    offsets, char = [], 0
    for _ in range(rng.randint(0, 40)):
        width = rng.choice([0, 1, 2, 3, 5])  # 0: an empty token, as a special token's
        offsets.append((char, char + width))
        char += width + rng.choice([0, 1])
    if not ascending:
        rng.shuffle(offsets)
    return offsets


@pytest.mark.parametrize("ascending", [True, False])
def test_token_spans_equal_the_search_over_every_token(ascending):
    rng = random.Random(0)
    for _ in range(500):
        offsets = random_offsets(rng, ascending)
        spans = [tuple(sorted((rng.randint(0, 120), rng.randint(0, 120)))) for _ in range(rng.randint(0, 6))]
        assert char_spans_to_token_spans(offsets, spans) == [_covering_tokens(offsets, s, e) for s, e in spans]


# With 2 workers the Wikidata chunks are decoded in worker processes that test the link targets by
# their hashes (chunk_pool.KeyFilter), and the wikis are parsed a file each.
@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_synthetic_dumps_give_the_files_written_before(tmp_path, workers):
    wiki_paths, data_path = write_synthetic_dumps(tmp_path / "dumps", entities=400, pages=60)
    prepare(PrepareConfig(wikipedia=[str(p) for p in wiki_paths], wikidata=[str(data_path)], out=str(tmp_path / "out"),
                          tokenizer_vocab_size=600, max_seq_length=48, shard_max_samples=2000, min_entity_count=2,
                          workers=workers))
    out = tmp_path / "out"
    written = {str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
               for path in sorted(out.rglob("*")) if path.is_file() and ".work" not in path.parts}
    assert written == BEFORE
