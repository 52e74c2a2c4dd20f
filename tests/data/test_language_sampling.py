"""Language sampling (data/language_sampling.py) on the shipped demo and on a dataset whose manifest
has no per-language counts."""

import json
import math
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.data.language_sampling import sampling_probabilities
from lightning_kg.recipes.synthetic_shards import make_dataset
from tests.data.batch_compare import assert_same, batches

DEMO = Path(__file__).resolve().parents[2] / "shards" / "demo"
# The demo's train text samples per language, as shards/demo/manifest.json counts them.
# The demo's train rows per language, as its manifest counts them (en 816 of 2,064).
DEMO_COUNTS = dict(sum((Counter(shard["languages"]) for shard in json.loads((DEMO / "manifest.json").read_text())["shards"]["train"]), Counter()))


def languages_of(samples, count: int) -> Counter:
    return Counter(json.loads(next(samples)["json"])["lang"] for _ in range(count))


def test_probabilities_are_n_to_the_alpha_normalised():
    p = sampling_probabilities({"en": 1000, "sw": 10, "none": 0}, 0.5)
    assert p.keys() == {"en", "sw"}
    assert p["en"] == pytest.approx(math.sqrt(1000) / (math.sqrt(1000) + math.sqrt(10)))
    assert sampling_probabilities({"en": 1000, "sw": 10}, 1.0)["sw"] == pytest.approx(10 / 1010)
    assert sampling_probabilities({"en": 1000, "sw": 10}, 0.0)["sw"] == pytest.approx(0.5)


@pytest.mark.slow  # draws 5 s of batches, over 3 s
def test_language_frequencies_over_many_draws_follow_the_formula():
    dm = KnowledgeDataModule(str(DEMO), num_workers=0, shuffle_buffer=50, language_sampling_alpha=0.3, objectives=["mlm"])
    stream = dm.train_dataloader().dataset
    draws = 6000
    seen = languages_of(stream.text_samples(0), draws)
    expected = sampling_probabilities(DEMO_COUNTS, 0.3)
    assert seen.keys() == expected.keys()
    # The picks are independent draws, so each count is binomial(draws, p_l): within 4.5 standard
    # deviations for every one of the 14 languages fails by chance with probability below 1e-4.
    for lang, p in expected.items():
        assert abs(seen[lang] / draws - p) <= 4.5 * math.sqrt(p * (1 - p) / draws), (lang, seen[lang], p)
    # And the mix really moved: English is 40% of the data but about 14% of the draws.
    assert seen["en"] / draws < 0.17 and DEMO_COUNTS["en"] / sum(DEMO_COUNTS.values()) > 0.39


def test_the_table_is_printed_and_written_to_the_run_directory(tmp_path, capsys):
    dm = KnowledgeDataModule(str(DEMO), num_workers=0, batch_size=8, language_sampling_alpha=0.3, objectives=["mlm"])
    dm.trainer = SimpleNamespace(default_root_dir=str(tmp_path / "run"), global_rank=0, world_size=1, loggers=["csv"])
    dm.train_dataloader()
    table = (tmp_path / "run" / "language_sampling.md").read_text(encoding="utf-8")
    assert table in capsys.readouterr().out
    p_en = sampling_probabilities(DEMO_COUNTS, 0.3)["en"]
    share = DEMO_COUNTS["en"] / sum(DEMO_COUNTS.values())
    assert f"| en | {DEMO_COUNTS['en']} | {share:.4f} | {p_en:.4f} | {p_en * 8000:.0f} |" in table  # 8 rows a step, 1,000 steps
    assert len([line for line in table.splitlines() if line.startswith("| ") and line[4:7] == " | "]) == 14  # a row per language


def test_an_older_manifest_without_counts_reads_the_shards_and_resumes_exactly(tmp_path):
    dataset = make_dataset(tmp_path / "dataset")  # its manifest lists no languages per shard
    options = dict(num_workers=0, batch_size=3, fact_batch_size=2, shuffle_buffer=20, language_sampling_alpha=0.0)
    dm = KnowledgeDataModule(str(dataset), **options)
    languages = dm._text_languages(dm._urls(None, "train"), 0, 1)
    assert {lang: round(p, 6) for lang, (_, p) in languages.items()} == {lang: round(1 / len(languages), 6) for lang in languages}
    straight = batches(KnowledgeDataModule(str(dataset), **options), 6)
    resumed = KnowledgeDataModule(str(dataset), **options)
    resumed.load_state_dict({"consumed_batches": 3, "lanes": 1, "seed": 0, "dataset_hashes": {}, "language_sampling_alpha": 0.0})
    assert_same(straight[3:], batches(resumed, 3))
    with pytest.raises(ValueError, match="--data.language_sampling_alpha 0.3 to continue it exactly"):
        resumed.load_state_dict({"consumed_batches": 3, "lanes": 1, "seed": 0, "language_sampling_alpha": 0.3})
    with pytest.raises(ValueError, match="data.language_sampling_alpha is 1.5, expected a value in"):
        KnowledgeDataModule(str(dataset), language_sampling_alpha=1.5)
