"""Each supplied format read from a small file written here; each bad input refused with its file and line."""

import warnings

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lightning_kg.dataset.task_examples import NO_RELATION, PairExample, RelationExample, SpanExample, TypingExample
from lightning_kg.dataset.task_files import TagSchemeWarning, TaskDataError, read_examples, read_task_dir, write_examples


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_conll_2003_with_docstart_and_iob1_tags(tmp_path):
    path = write(tmp_path / "en.train.conll", "-DOCSTART- -X- -X- O\n\n"
                 "EU NNP B-NP I-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP I-MISC\ncall NN I-NP O\n\n"
                 "Peter NNP B-NP I-PER\nBlackburn NNP I-NP I-PER\nHans NNP I-NP B-PER\n\n"
                 "-DOCSTART- -X- -X- O\n\nBRUSSELS NNP B-NP I-LOC\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean IOB1 file: no scheme warning
        examples = read_examples(path, "ner")
    assert examples == [SpanExample(("EU", "rejects", "German", "call"), ((0, 1, "ORG"), (2, 3, "MISC")), "en"),
                        SpanExample(("Peter", "Blackburn", "Hans"), ((0, 2, "PER"), (2, 3, "PER")), "en"),
                        SpanExample(("BRUSSELS",), ((0, 1, "LOC"),), "en")]
    assert [e.source for e in examples] == [f"{path}:3", f"{path}:8", f"{path}:14"]


def test_wikiann_tab_columns_and_xtreme_language_prefixes(tmp_path):
    wikiann = write(tmp_path / "de.test.conll", "Angela\tB-PER\nMerkel\tI-PER\nin\tO\nBerlin\tB-LOC\n\r\n")
    assert read_examples(wikiann, "ner") == [SpanExample(("Angela", "Merkel", "in", "Berlin"), ((0, 2, "PER"), (3, 4, "LOC")), "de")]
    xtreme = write(tmp_path / "panx.conll", "en:New\tB-LOC\nen:York\tI-LOC\n\nfr:Paris\tB-LOC\nfr:est\tO\n")
    assert read_examples(xtreme, "ner") == [SpanExample(("New", "York"), ((0, 2, "LOC"),), "en"),
                                            SpanExample(("Paris", "est"), ((0, 1, "LOC"),), "fr")]
    misnamed = write(tmp_path / "de.dev.conll", "en:New\tB-LOC\n")
    with pytest.raises(TaskDataError, match=rf"^{misnamed}:1: language 'en' where the file name says 'de'; expected one language"):
        read_examples(misnamed, "ner")
    with pytest.raises(TaskDataError, match=r"panx.conll:1: language 'en' where language= says 'de'"):
        read_examples(xtreme, "ner", language="de")


def test_tags_that_break_iob2_are_repaired_counted_and_reported_once(tmp_path):
    path = write(tmp_path / "en.dev.conll", "Paris\tB-LOC\nHilton\tI-PER\n\nin\tO\nRome\tB-LOC\n\nthe\tO\nPope\tI-PER\n\n"
                 "EU\tB-ORG\n")
    with pytest.warns(TagSchemeWarning) as caught:
        examples = read_examples(path, "ner")
    assert [str(w.message) for w in caught] == [
        f"{path}: 2 tag(s) break the IOB2 scheme the file follows, the first at {path}:2 ('I-PER' after 'B-LOC'); "
        "read as seqeval reads them: an I- tag that continues no entity of its type starts one"]
    assert [e.spans for e in examples] == [((0, 1, "LOC"), (1, 2, "PER")), ((1, 2, "LOC"),), ((1, 2, "PER"),), ((0, 1, "ORG"),)]


def test_iobes_files_read_and_their_open_entities_are_reported(tmp_path):
    path = write(tmp_path / "nl.test.conll", "Den\tB-LOC\nHaag\tE-LOC\nen\tO\nKok\tS-PER\n\nDe\tB-ORG\nBank\tO\n")
    with pytest.warns(TagSchemeWarning, match=rf"^{path}: 1 tag\(s\) break the IOBES scheme the file follows, the first at {path}:7 "
                      r"\('O' after 'B-ORG'\); read as seqeval reads them: .* an entity left open ends at its last tag$"):
        examples = read_examples(path, "ner")
    assert [e.spans for e in examples] == [((0, 2, "LOC"), (3, 4, "PER")), ((0, 1, "ORG"),)]


def test_kbp37_and_semeval_blocks_read_as_relations(tmp_path):
    path = write(tmp_path / "en.train.relx",
                 '0\t" <e1> Thom Yorke </e1> of <e2> Radiohead </e2> has included the + . "\nper:employee_of(e1,e2)\n\n'
                 '1\t"The <e1>configuration</e1> of antenna <e2>elements</e2>."\nOther\nComment: not a collection.\n\n'
                 '2\t<e2> Paris </e2> is where <e1> Hugo </e1> lived\nno_relation\n')
    examples = read_examples(path, "relation")
    assert examples == [
        RelationExample(("Thom", "Yorke", "of", "Radiohead", "has", "included", "the", "+", "."), (0, 2), (3, 4),
                        "per:employee_of(e1,e2)", "en"),
        RelationExample(("The", "configuration", "of", "antenna", "elements", "."), (1, 2), (4, 5), NO_RELATION, "en"),
        RelationExample(("Paris", "is", "where", "Hugo", "lived"), (3, 4), (0, 1), NO_RELATION, "en")]
    assert [e.source for e in examples] == [f"{path}:1", f"{path}:4", f"{path}:8"]


def test_relx_blocks_with_one_span_read_as_typing(tmp_path):
    path = write(tmp_path / "fr.test.relx", "7\t<e1> Lyon </e1> est une ville\nLOC\n\n8\tle <e1> franc </e1>\ncurrency\n")
    assert read_examples(path, "typing") == [TypingExample(("Lyon", "est", "une", "ville"), (0, 1), "LOC", "fr"),
                                             TypingExample(("le", "franc"), (1, 2), "currency", "fr")]
    with pytest.raises(TaskDataError, match=rf"^{path}:1: a sentence marking <e1>; expected <e1>..</e1> and <e2>..</e2> for a relation"):
        read_examples(path, "relation")


def test_xnli_tsv_with_either_header(tmp_path):
    ours = write(tmp_path / "de.dev.tsv", "premise\thypothesis\tlabel\nEr schläft.\tEr ist wach.\tcontradiction\n")
    assert read_examples(ours, "pair") == [PairExample("Er schläft.", "Er ist wach.", "contradiction", "de")]
    xnli = write(tmp_path / "xnli.test.tsv", "language\tgold_label\tsentence1_binary_parse\tsentence1\tsentence2\tpairID\n"
                 "en\tneutral\t( x )\tA man sleeps.\tA man dreams.\t1\nfr\tentailment\t( y )\tIl dort.\tIl se repose.\t2\n")
    assert read_examples(xnli, "pair") == [PairExample("A man sleeps.", "A man dreams.", "neutral", "en"),
                                           PairExample("Il dort.", "Il se repose.", "entailment", "fr")]
    with pytest.raises(TaskDataError, match=r"xnli.test.tsv:3: language 'fr' where language= says 'en'"):
        read_examples(xnli, "pair", language="en")
    short = write(tmp_path / "en.test.tsv", "premise\thypothesis\tlabel\na\tb\n")
    with pytest.raises(TaskDataError, match=r"en.test.tsv:2: 2 tab-separated columns; expected 3, as the header names$"):
        read_examples(short, "pair")
    headless = write(tmp_path / "en.train.tsv", "a\tb\tneutral\n")
    with pytest.raises(TaskDataError, match=r"en.train.tsv:1: the header 'a\\tb\\tneutral'; expected a first line naming "
                       r"the columns premise, hypothesis, label \(or XNLI's gold_label, sentence1, sentence2\)"):
        read_examples(headless, "pair")


def test_what_is_written_reads_back_the_same(tmp_path):
    spans = [SpanExample(("New", "York", "and", "Paris", "Texas"), ((0, 2, "LOC"), (3, 4, "LOC"), (4, 5, "LOC")), "en"),
             SpanExample(('"', "quoted", '"'), (), "en")]
    xtreme_looking = [SpanExample(("de:Berlin", "fr:Paris"), ((0, 1, "LOC"),), "en")]  # written as en:de:Berlin
    relations = [RelationExample(('"', "Hugo", "lived", "in", "Paris", '"'), (4, 5), (1, 2), "per:place(e2,e1)", "en"),
                 RelationExample(("a", "b"), (0, 1), (1, 2), NO_RELATION, "en")]
    typing = [TypingExample(("le", "franc"), (1, 2), "currency", "en")]
    pairs = [PairExample('He said "no".', "He refused.", "entailment", "en")]
    for name, examples, task in (("en.train.conll", spans, "ner"), ("en.dev.conll", xtreme_looking, "ner"),
                                 ("en.dev.relx", relations, "relation"),
                                 ("en.test.relx", typing, "typing"), ("en.test.tsv", pairs, "pair")):
        write_examples(tmp_path / name, examples)
        assert read_examples(tmp_path / name, task) == examples, name
    assert (tmp_path / "en.dev.relx").read_text() == ('1\t"" <e2> Hugo </e2> lived in <e1> Paris </e1> ""\nper:place(e2,e1)\n\n'
                                                      '2\t"<e1> a </e1> <e2> b </e2>"\nno_relation\n')


def test_writing_refuses_what_would_not_read_back(tmp_path):
    example = SpanExample(("a", "b"), ((0, 1, "LOC"),), "en")
    with pytest.raises(ValueError, match=r"de.train.conll: examples in en; expected a name <language>.<split>.conll giving"):
        write_examples(tmp_path / "de.train.conll", [example])
    with pytest.raises(ValueError, match=r"en.train.relx: SpanExamples written to a .relx file; expected .conll"):
        write_examples(tmp_path / "en.train.relx", [example])
    with pytest.raises(ValueError, match=r"en.train.conll: no examples to write"):
        write_examples(tmp_path / "en.train.conll", [])
    with pytest.raises(ValueError, match=r"the word 'New York' cannot be written"):
        write_examples(tmp_path / "en.train.conll", [SpanExample(("New York",), (), "en")])
    with pytest.raises(ValueError, match=r"a word ending in -DOCSTART- would read as a document break"):
        write_examples(tmp_path / "en.train.conll", [SpanExample(("-DOCSTART-",), (), "en")])
    with pytest.raises(ValueError, match=r"overlaps the one before it"):
        write_examples(tmp_path / "en.train.conll", [SpanExample(("a", "b"), ((0, 2, "LOC"), (1, 2, "PER")), "en")])


@pytest.mark.parametrize(("name", "text", "task", "message"), [
    ("en.train.txt", "x O\n", "ner", r"en.train.txt: unknown extension '.txt'; expected one of .conll \(ner\), "
     r".relx \(relation, typing\), .tsv \(pair\)$"),
    ("en.train.conll", "x O\n", "relation", r"en.train.conll: a .conll file for the task relation; expected .relx for relation$"),
    ("en.train.conll", "Paris B-LOC\nis\nnice O\n", "ner", r"en.train.conll:2: 'is' has no tag column; expected `token TAG`"),
    ("en.train.conll", "Paris LOC\n", "ner", r"en.train.conll:1: the tag 'LOC'; expected O, B-X, I-X, E-X or S-X$"),
    ("en.train.conll", "", "ner", r"en.train.conll:1: an empty file; expected ner examples$"),
    ("en.train.conll", "-DOCSTART- O\n\n", "ner", r"en.train.conll:1: no examples \(only -DOCSTART-, comments or a header\)"),
    ("en.train.relx", "1\t<e1> Hugo lived in <e2> Paris </e2>\nper:x\n", "relation",
     r"en.train.relx:1: <e1> without </e1>; expected <e1>..</e1> around a span$"),
    ("en.train.relx", "1\t<e1> Hugo </e1> in <e2> Paris </e2>\n\n2\t<e1> a </e1> <e2> b </e2>\nx\n", "relation",
     r"en.train.relx:1: no label line after the sentence; expected the label on the line after the sentence"),
    ("en.train.relx", "1\t<e1> Hugo </e1> in <e2> Paris </e2>\n", "relation", r"en.train.relx:1: no label line after the sentence"),
    ("en.train.relx", "1\t<e1> Hugo <e2> Paris </e2> </e1>\nx\n", "relation", r"en.train.relx:1: <e1> and <e2> overlap"),
    ("en.train.relx", "Hugo lived\nx\n", "typing", r"en.train.relx:1: 'Hugo lived' is not a sentence line; expected `id<TAB>sentence`"),
    ("train.relx", "1\t<e1> Hugo </e1>\nPER\n", "typing", r"train.relx:1: no language; expected a file name <language>.<split>.<ext>"),
])
def test_bad_input_is_refused_with_file_line_and_what_was_expected(tmp_path, name, text, task, message):
    with pytest.raises(TaskDataError, match=message):
        read_examples(write(tmp_path / name, text), task)


def test_a_file_that_is_not_utf8_says_where(tmp_path):
    path = tmp_path / "de.train.conll"
    path.write_bytes("Köln B-LOC\n".encode() + "Düsseldorf B-LOC\n".encode("latin-1"))
    with pytest.raises(TaskDataError, match=r"de.train.conll:2: byte 0xfc is not UTF-8; expected UTF-8 text"):
        read_examples(path, "ner")


def test_a_task_dir_reads_every_language_and_split(tmp_path):
    for name in ("en.train.conll", "en.dev.conll", "de.test.conll", "nl.test.conll", "fr.dev.conll"):
        write(tmp_path / name, "Paris\tB-LOC\n")
    write(tmp_path / "README.md", "not a task file\n")
    with pytest.warns(UserWarning, match=rf"^{tmp_path}: fr has no <language>.test.conll: not evaluated$"):
        found = read_task_dir(tmp_path, "ner")
    assert {language: sorted(splits) for language, splits in found.items()} == {
        "de": ["test"], "en": ["dev", "train"], "fr": ["dev"], "nl": ["test"]}
    assert found["nl"]["test"] == [SpanExample(("Paris",), ((0, 1, "LOC"),), "nl")]


def test_a_task_dir_without_the_train_languages_splits_says_what_is_missing(tmp_path):
    for name in ("en.train.conll", "de.test.conll"):
        write(tmp_path / name, "Paris\tB-LOC\n")
    with pytest.raises(TaskDataError, match=rf"^{tmp_path}: no en.dev.conll for the train language en \(found: de.test.conll, "
                       r"en.train.conll\); expected en.train.conll and en.dev.conll$"):
        read_task_dir(tmp_path, "ner")
    with pytest.raises(TaskDataError, match=r"no fr.train.conll or fr.dev.conll for the train language fr"):
        read_task_dir(tmp_path, "ner", train_language="fr")
    with pytest.raises(TaskDataError, match=r"no .relx file \(found: de.test.conll, en.train.conll\); expected <language>.<split>.relx"):
        read_task_dir(tmp_path, "typing")
    write(tmp_path / "wikiann.conll", "Paris\tB-LOC\n")
    with pytest.raises(TaskDataError, match=r"wikiann.conll: a name that gives no language and split; expected <language>.<split>.conll"):
        read_task_dir(tmp_path, "ner")


WORDS = st.text(st.characters(blacklist_categories=("Z", "C")), min_size=1, max_size=6).filter(
    lambda word: "<e" not in word and "</e" not in word and not word.endswith("-DOCSTART-"))


@st.composite
def span_examples(draw) -> SpanExample:
    words = draw(st.lists(WORDS | st.sampled_from(["en:x", "zh-yue:y"]), min_size=1, max_size=8))
    cuts = sorted(draw(st.sets(st.integers(0, len(words)), max_size=6)))
    spans = [(start, end, draw(st.sampled_from(["PER", "LOC", "B-X"]))) for start, end in zip(cuts[::2], cuts[1::2])]
    return SpanExample(tuple(words), tuple(spans), "en")


@st.composite
def relation_examples(draw) -> RelationExample:
    words = draw(st.lists(WORDS, min_size=2, max_size=8))
    first, second, third, fourth = sorted(draw(st.lists(st.integers(0, len(words)), min_size=4, max_size=4)))
    assume(first < second and third < fourth and second <= third)
    head, tail = ((first, second), (third, fourth)) if draw(st.booleans()) else ((third, fourth), (first, second))
    return RelationExample(tuple(words), head, tail, draw(st.sampled_from([NO_RELATION, "P17", "per:x(e2,e1)"])), "en")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spans=st.lists(span_examples(), min_size=1, max_size=4), relations=st.lists(relation_examples(), min_size=1, max_size=4))
def test_any_writable_examples_read_back_the_same(tmp_path, spans, relations):
    write_examples(tmp_path / "en.train.conll", spans)
    write_examples(tmp_path / "en.train.relx", relations)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # IOB2 as written breaks nothing
        assert read_examples(tmp_path / "en.train.conll", "ner") == spans
    assert read_examples(tmp_path / "en.train.relx", "relation") == relations
