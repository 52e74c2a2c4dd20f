import pickle

import numpy as np
import pytest

from lightning_kg.dataset.knowledge import KnowledgeTable

ROWS = [  # unsorted on purpose: by entity, then by the language's position in LANGS
    (5, "fr", [0, 50, 2], False),
    (3, "en", [0, 30, 2, 2, 31, 2], True),
    (5, "en", [0, 51, 2, 2, 52, 53, 2], False),
    (4, "fr", [0, 40, 2], True),
]
LANGS = ["en", "fr"]


@pytest.fixture
def table(tmp_path):
    KnowledgeTable.write(tmp_path, ROWS, num_entities=7, langs=LANGS)
    return KnowledgeTable.load(tmp_path)


def test_files_follow_the_format(table, tmp_path):
    base = tmp_path / "knowledge"
    index = np.load(base / "index.npy")
    assert index.dtype == np.int64 and index.tolist() == [[3, 0, 0, 6], [4, 1, 6, 3], [5, 0, 9, 7], [5, 1, 16, 3]]
    assert np.load(base / "entity_rows.npy").tolist() == [0, 0, 0, 0, 1, 2, 4, 4]
    tokens = np.load(base / "tokens.npy")
    assert tokens.dtype == np.int32 and len(tokens) == 19
    assert np.load(base / "composed.npy").tolist() == [True, True, False, False]
    assert (base / "langs.json").read_text() == '["en", "fr"]'
    assert not list(base.glob("*.tmp"))


def test_lookups(table):
    assert len(table) == 4
    assert table.languages(5) == ["en", "fr"] and table.languages(6) == [] and table.languages(99) == []
    assert table.has(4) and not table.has(0) and not table.has(6) and not table.has(-1)
    assert table.text(5, "en").tolist() == [0, 51, 2, 2, 52, 53, 2]
    assert table.text(4, "en") is None and table.text(4, "de") is None


def test_sample_prefers_the_language_and_else_draws_among_the_available_ones(table):
    rng = np.random.default_rng(0)
    assert table.sample(5, rng, "fr").tolist() == [0, 50, 2]
    assert table.sample(4, rng, "en").tolist() == [0, 40, 2]  # no English text: the French one
    assert table.sample(6, rng) is None
    drawn = {tuple(table.sample(5, rng)) for _ in range(50)}
    assert drawn == {(0, 51, 2, 2, 52, 53, 2), (0, 50, 2)}


def test_pickling_sends_the_path_not_the_arrays(table):
    table.text(3, "en")  # maps the files
    data = pickle.dumps(table)
    assert len(data) < 1000
    copy = pickle.loads(data)
    assert copy._arrays is None and copy.text(3, "en").tolist() == [0, 30, 2, 2, 31, 2]
    assert isinstance(copy.arrays["tokens"], np.memmap)


def test_equal_keys_keep_their_order_and_an_empty_table_loads(tmp_path):
    KnowledgeTable.write(tmp_path / "a", [(3, "en", [7], False), (3, "en", [8], True)], 4, ["en"])
    assert KnowledgeTable.load(tmp_path / "a").arrays["tokens"].tolist() == [7, 8]
    KnowledgeTable.write(tmp_path / "b", [], 4, ["en"])
    empty = KnowledgeTable.load(tmp_path / "b")
    assert len(empty) == 0 and not empty.has(3) and empty.arrays["index"].shape == (0, 4)


def test_bad_rows_and_missing_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="entity 3: language 'de' is not in langs"):
        KnowledgeTable.write(tmp_path, [(3, "de", [1], False)], 4, ["en"])
    with pytest.raises(ValueError, match="entity index 9 outside the vocabulary of 4"):
        KnowledgeTable.write(tmp_path, [(9, "en", [1], False)], 4, ["en"])
    with pytest.raises(FileNotFoundError, match="lacks tokens.npy"):
        KnowledgeTable.load(tmp_path / "nowhere")
