"""Transfer task files on disk, read into examples and written back from them.

A task directory holds ``<language>.<split>.<ext>`` files, split one of train, dev, test; the
extension picks the format:

- ``.conll`` (ner): CoNLL-2003 / WikiANN columns, ``token TAG`` or ``token<TAB>TAG``, the tag in the
  last column, a blank line between sentences, ``-DOCSTART-`` lines skipped; XTREME's
  ``lang:token<TAB>TAG`` too, its prefix giving the language. IOB1, IOB2 or IOBES, read as seqeval
  reads them (``dataset.tags``); tags that break the file's scheme are counted and reported once.
- ``.relx`` (relation, typing): KBP37 / RELX / SemEval blocks, ``id<TAB>sentence`` with
  ``<e1>..</e1>`` (and for a relation ``<e2>..</e2>``) around the spans, the label on the next line,
  an optional ``Comment`` line, a blank line. ``Other`` (SemEval) reads as ``no_relation``.
- ``.tsv`` (pair): XNLI, columns named by the header, ``premise hypothesis label`` or XNLI's own
  ``language gold_label sentence1 sentence2`` (and the rest, ignored).

Every problem in a file is a :class:`TaskDataError` naming the file and line, never a skipped line.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from lightning_kg.dataset.files import write_text
from lightning_kg.dataset.tags import REPAIRS, guess_scheme, scheme_breaks, spans_from_tags, split_tag, tags_from_spans
from lightning_kg.dataset.task_examples import NO_RELATION, Example, PairExample, RelationExample, SpanExample, TypingExample

TASK_EXTENSIONS = {"ner": ".conll", "relation": ".relx", "typing": ".relx", "pair": ".tsv"}
SPLITS = ("train", "dev", "test")
EXAMPLE_EXTENSIONS = {SpanExample: ".conll", RelationExample: ".relx", TypingExample: ".relx", PairExample: ".tsv"}
LANGUAGE = r"[a-z]{2,3}(?:[-_][A-Za-z0-9]+)*"  # a language code: "en", "ckb", "zh-yue", "sr_Latn"; not "xnli"
XTREME_TOKEN = re.compile(rf"^({LANGUAGE}):(.+)$")  # "en:Paris"
MARKER = re.compile(r"(</?e[12]>)")
OTHER_LABELS = {"Other": NO_RELATION}  # SemEval-2010's name for no relation
PAIR_COLUMNS = ({"premise": "premise", "hypothesis": "hypothesis", "label": "label"},
                {"premise": "sentence1", "hypothesis": "sentence2", "label": "gold_label"})  # ours, XNLI's


class TaskDataError(ValueError):
    """A task file or directory that cannot be read as asked: ``"<file>:<line>: <what>; expected <what>"``."""


class TagSchemeWarning(UserWarning):
    """NER tags that break the file's scheme: read as seqeval reads them, counted, reported once a file."""


def _error(path: Path, line: int | None, what: str, expected: str) -> TaskDataError:
    return TaskDataError(f"{path}{'' if line is None else f':{line}'}: {what}; expected {expected}")


def known_extensions() -> str:
    tasks: dict[str, list[str]] = {}
    for task, extension in TASK_EXTENSIONS.items():
        tasks.setdefault(extension, []).append(task)
    return ", ".join(f"{extension} ({', '.join(names)})" for extension, names in tasks.items())


def name_language_split(path: Path) -> tuple[str, str] | None:
    """``(language, split)`` of a file named ``<language>.<split>.<ext>``, else None (XNLI's own
    ``xnli.test.tsv`` names no language: its column does)."""
    parts = path.name.split(".")
    if len(parts) == 3 and re.fullmatch(LANGUAGE, parts[0]) and parts[1] in SPLITS:
        return parts[0], parts[1]
    return None


def _lines(path: Path) -> list[str]:
    """The file's lines, without line ends; a file that is not UTF-8 says where."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise _error(path, None, f"cannot be read ({error.strerror})", "a task file") from error
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise _error(path, line, f"byte 0x{data[error.start]:02x} is not UTF-8",
                     "UTF-8 text (CoNLL-2003's German is Latin-1: iconv -f latin1 -t utf-8)") from error
    return [line.rstrip("\r") for line in text.split("\n")]


class _Language:
    """The language of a file's examples: the caller's, the file name's and the lines' own (XTREME
    prefixes, XNLI's column) must agree, so a mislabelled file is refused rather than mixed in."""

    def __init__(self, path: Path, given: str | None):
        self.path = path
        named = name_language_split(path)
        if given:
            self.fixed, self.origin = given, "language="
        elif named:
            self.fixed, self.origin = named[0], "the file name"
        else:
            self.fixed, self.origin = None, ""

    def of(self, line: int, own: str | None = None) -> str:
        if own and self.fixed and own != self.fixed:
            raise _error(self.path, line, f"language {own!r} where {self.origin} says {self.fixed!r}", "one language in a file")
        if own or self.fixed:
            return own or self.fixed
        raise _error(self.path, line, "no language", "a file name <language>.<split>.<ext>, XTREME's lang: prefixes, "
                     "XNLI's language column or a language given")


def _read_conll(path: Path, lines: list[str], language: _Language) -> list[SpanExample]:
    sentences: list[list[tuple[int, str, str]]] = [[]]  # (line, token, tag) per word
    for number, line in enumerate(lines, 1):
        columns = [column.strip() for column in line.split("\t")] if "\t" in line else line.split()
        if not columns or not any(columns) or columns[0].endswith("-DOCSTART-"):
            if sentences[-1]:
                sentences.append([])
            continue
        if len(columns) < 2 or not columns[0] or not columns[-1]:
            raise _error(path, number, f"{line.strip()!r} has no tag column",
                         "`token TAG` (the tag in the last column) or a blank line between sentences")
        try:
            split_tag(columns[-1])
        except ValueError as error:
            raise _error(path, number, f"the tag {columns[-1]!r}", "O, B-X, I-X, E-X or S-X") from error
        sentences[-1].append((number, columns[0], columns[-1]))
    sentences = [sentence for sentence in sentences if sentence]
    xtreme = bool(sentences) and all(XTREME_TOKEN.match(token) for sentence in sentences for _, token, _ in sentence)
    tag_lists = [[tag for _, _, tag in sentence] for sentence in sentences]
    _warn_breaks(path, sentences, tag_lists)
    examples = []
    for sentence, tags in zip(sentences, tag_lists):
        first = sentence[0][0]
        words = [token for _, token, _ in sentence]
        own = None
        if xtreme:
            prefixes = {XTREME_TOKEN.match(word).group(1) for word in words}
            if len(prefixes) > 1:
                raise _error(path, first, f"a sentence with the prefixes {', '.join(sorted(prefixes))}", "one language a sentence")
            own = prefixes.pop()
            words = [XTREME_TOKEN.match(word).group(2) for word in words]
        examples.append(SpanExample(tuple(words), tuple(spans_from_tags(tags)), language.of(first, own), f"{path}:{first}"))
    return examples


def _warn_breaks(path: Path, sentences: list[list[tuple[int, str, str]]], tag_lists: list[list[str]]) -> None:
    scheme = guess_scheme(tag_lists)
    breaks = [(sentence, position) for sentence, tags in zip(sentences, tag_lists) for position in scheme_breaks(tags, scheme)]
    if not breaks:
        return
    sentence, position = breaks[0]
    before = repr(sentence[position - 1][2]) if position else "the sentence's start"
    warnings.warn(f"{path}: {len(breaks)} tag(s) break the {scheme} scheme the file follows, the first at "
                  f"{path}:{sentence[position][0]} ({sentence[position][2]!r} after {before}); read as seqeval reads "
                  f"them: {REPAIRS[scheme]}", TagSchemeWarning, stacklevel=4)


def _marked_sentence(path: Path, number: int, text: str) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """Words and the ``e1``/``e2`` spans of a sentence with ``<e1>..</e1>`` markers (quotes around it dropped)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    words: list[str] = []
    opened: dict[str, int] = {}
    spans: dict[str, tuple[int, int]] = {}
    for piece in MARKER.split(text):
        name = piece.strip("</>")
        if not MARKER.fullmatch(piece):
            words.extend(piece.split())
        elif piece.startswith("</"):
            if name not in opened:
                raise _error(path, number, f"</{name}> without <{name}> before it", f"<{name}>..</{name}> around a span")
            if opened[name] == len(words):
                raise _error(path, number, f"<{name}></{name}> around no word", "a span of one word or more")
            spans[name] = (opened.pop(name), len(words))
        elif name in opened or name in spans:
            raise _error(path, number, f"a second <{name}>", f"one <{name}>..</{name}> a sentence")
        else:
            opened[name] = len(words)
    if opened:
        name = next(iter(opened))
        raise _error(path, number, f"<{name}> without </{name}>", f"<{name}>..</{name}> around a span")
    if len(spans) == 2 and spans["e1"][0] < spans["e2"][1] and spans["e2"][0] < spans["e1"][1]:
        raise _error(path, number, "<e1> and <e2> overlap", "two disjoint spans")
    return words, spans


def _read_relx(path: Path, lines: list[str], language: _Language, task: str) -> list[RelationExample | TypingExample]:
    markers = {"relation": ["e1", "e2"], "typing": ["e1"]}[task]
    label_expected = "the label on the line after the sentence, such as per:employee_of(e1,e2) or no_relation"
    examples = []
    sentence = None  # (line, words, spans) waiting for its label
    for number, line in enumerate([*lines, ""], 1):
        if sentence is not None:
            if not line.strip() or "\t" in line or MARKER.search(line) or line.startswith("Comment"):
                raise _error(path, sentence[0], "no label line after the sentence", label_expected)
            first, words, spans = sentence
            label = OTHER_LABELS.get(line.strip(), line.strip())
            if task == "relation":
                examples.append(RelationExample(words, spans["e1"], spans["e2"], label, language.of(first), f"{path}:{first}"))
            else:
                examples.append(TypingExample(words, spans["e1"], label, language.of(first), f"{path}:{first}"))
            sentence = None
        elif line.strip() and not line.startswith("Comment"):
            identifier, tab, text = line.partition("\t")
            if not tab or not identifier.strip():
                raise _error(path, number, f"{line.strip()[:60]!r} is not a sentence line", "`id<TAB>sentence` starting a block")
            words, spans = _marked_sentence(path, number, text)
            if sorted(spans) != markers:
                raise _error(path, number, f"a sentence marking {', '.join(f'<{n}>' for n in sorted(spans)) or 'no span'}",
                             f"{' and '.join(f'<{n}>..</{n}>' for n in markers)} for a {task} example")
            sentence = (number, tuple(words), spans)
    return examples


def _read_tsv(path: Path, lines: list[str], language: _Language) -> list[PairExample]:
    header = [name.strip() for name in lines[0].split("\t")]
    names = next((columns for columns in PAIR_COLUMNS if set(columns.values()) <= set(header)), None)
    if names is None:
        raise _error(path, 1, f"the header {lines[0][:80]!r}", "a first line naming the columns premise, hypothesis, label "
                     "(or XNLI's gold_label, sentence1, sentence2)")
    index = {key: header.index(column) for key, column in names.items()}
    language_column = header.index("language") if "language" in header else None
    examples = []
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(header):
            raise _error(path, number, f"{len(cells)} tab-separated columns", f"{len(header)}, as the header names")
        own = cells[language_column].strip() if language_column is not None else None
        examples.append(PairExample(cells[index["premise"]], cells[index["hypothesis"]], cells[index["label"]].strip(),
                                    language.of(number, own), f"{path}:{number}"))
    return examples


def read_examples(path: str | Path, task: str, language: str | None = None) -> list[Example]:
    """The examples of one task file, its format from the extension (``.conll``, ``.relx``, ``.tsv``);
    the language from ``language``, else XTREME prefixes or XNLI's column, else the file name."""
    path = Path(path)
    if task not in TASK_EXTENSIONS:
        raise ValueError(f"task {task!r}: expected one of {', '.join(TASK_EXTENSIONS)}")
    if path.suffix not in EXAMPLE_EXTENSIONS.values():
        raise _error(path, None, f"unknown extension {path.suffix!r}", f"one of {known_extensions()}")
    if path.suffix != TASK_EXTENSIONS[task]:
        raise _error(path, None, f"a {path.suffix} file for the task {task}", f"{TASK_EXTENSIONS[task]} for {task}")
    lines = _lines(path)
    if not any(line.strip() for line in lines):
        raise _error(path, 1, "an empty file", f"{task} examples")
    reading = _Language(path, language)
    if task == "ner":
        examples = _read_conll(path, lines, reading)
    elif task == "pair":
        examples = _read_tsv(path, lines, reading)
    else:
        examples = _read_relx(path, lines, reading, task)
    if not examples:
        raise _error(path, 1, "no examples (only -DOCSTART-, comments or a header)", f"{task} examples")
    return examples


def read_task_dir(task_dir: str | Path, task: str, train_language: str | None = None) -> dict[str, dict[str, list[Example]]]:
    """language -> split -> examples of every ``<language>.<split>.<ext>`` of ``task`` in ``task_dir``.
    The train language (``train_language``, else the one language with a train split) must have its
    train and dev splits, and some language a test split; another language without one is warned of."""
    task_dir = Path(task_dir)
    if task not in TASK_EXTENSIONS:
        raise ValueError(f"task {task!r}: expected one of {', '.join(TASK_EXTENSIONS)}")
    extension = TASK_EXTENSIONS[task]
    layout = f"<language>.<split>{extension} files (split one of {', '.join(SPLITS)}) for the task {task}"
    if not task_dir.is_dir():
        raise _error(task_dir, None, "not a directory", f"a task directory of {layout}")
    found: dict[str, dict[str, list[Example]]] = {}
    for path in sorted(task_dir.glob(f"*{extension}")):
        named = name_language_split(path)
        if named is None:
            raise _error(path, None, "a name that gives no language and split", f"{layout}")
        found.setdefault(named[0], {})[named[1]] = read_examples(path, task)
    present = ", ".join(sorted(path.name for path in task_dir.iterdir())[:12]) or "nothing"
    if not found:
        raise _error(task_dir, None, f"no {extension} file (found: {present})", layout)
    if train_language is None:
        with_train = sorted(language for language, splits in found.items() if "train" in splits)
        if len(with_train) != 1:
            raise _error(task_dir, None, f"{'no' if not with_train else len(with_train)} language(s) with a train split "
                         f"({', '.join(with_train) or present})", "one train language (or train_language given)")
        train_language = with_train[0]
    missing = [split for split in ("train", "dev") if split not in found.get(train_language, {})]
    if missing:
        raise _error(task_dir, None, f"no {' or '.join(f'{train_language}.{split}{extension}' for split in missing)} "
                     f"for the train language {train_language} (found: {present})", f"{train_language}.train{extension} "
                     f"and {train_language}.dev{extension}")
    if not any("test" in splits for splits in found.values()):
        raise _error(task_dir, None, f"no <language>.test{extension} (found: {present})", "a test split to evaluate on")
    untested = sorted(language for language, splits in found.items() if "test" not in splits and language != train_language)
    if untested:  # a user who supplied de.dev only would otherwise look for German in the table in vain
        warnings.warn(f"{task_dir}: {', '.join(untested)} {'has' if len(untested) == 1 else 'have'} no "
                      f"<language>.test{extension}: not evaluated", UserWarning, stacklevel=2)
    return found


def _check_words(example: Example, words: Sequence[str]) -> None:
    for word in words:
        if not word or word.split() != [word] or MARKER.search(word):
            raise ValueError(f"example {example.source or example}: the word {word!r} cannot be written; "
                             "expected words without whitespace or <e1>-like markers")


def _conll_text(examples: list[SpanExample]) -> str:
    # Words that all look like XTREME's "en:Paris" would lose their "en:" on reading: prefix them.
    words = [word for example in examples for word in example.words]
    prefix = f"{examples[0].language}:" if all(XTREME_TOKEN.match(word) for word in words) else ""
    blocks = []
    for example in examples:
        _check_words(example, example.words)
        if any(word.endswith("-DOCSTART-") for word in example.words):
            raise ValueError(f"example {example.source or example.words}: a word ending in -DOCSTART- would read as a "
                             "document break; expected none")
        try:
            tags = tags_from_spans(example.spans, len(example.words))
        except ValueError as error:
            raise ValueError(f"example {example.source or example.words}: {error}") from error
        blocks.append("".join(f"{prefix}{word}\t{tag}\n" for word, tag in zip(example.words, tags)))
    return "\n".join(blocks)


def _relx_text(examples: list[RelationExample | TypingExample]) -> str:
    blocks = []
    for number, example in enumerate(examples, 1):
        _check_words(example, example.words)
        marks = [("e1", example.head), ("e2", example.tail)] if isinstance(example, RelationExample) else [("e1", example.span)]
        words = list(example.words)
        for name, (start, end) in sorted(marks, key=lambda mark: mark[1], reverse=True):  # from the right: indices hold
            words[start:end] = [f"<{name}>", *words[start:end], f"</{name}>"]
        if not example.label or example.label.split() != [example.label]:
            raise ValueError(f"example {example.source or number}: label {example.label!r}; expected one word")
        blocks.append(f'{number}\t"{" ".join(words)}"\n{example.label}\n')
    return "\n".join(blocks)


def _tsv_text(examples: list[PairExample]) -> str:
    for example in examples:
        if any("\t" in text or "\n" in text for text in (example.premise, example.hypothesis, example.label)):
            raise ValueError(f"example {example.source or example}: a tab or line break in its text; expected none")
    return "premise\thypothesis\tlabel\n" + "".join(f"{e.premise}\t{e.hypothesis}\t{e.label}\n" for e in examples)


def write_examples(path: str | Path, examples: Sequence[Example]) -> None:
    """``examples`` (one type, one language) into ``path``, named ``<language>.<split>.<ext>`` with the
    extension of their type, so that :func:`read_examples` gives them back."""
    path = Path(path)
    kinds = {type(example) for example in examples}
    if len(kinds) != 1:
        raise ValueError(f"{path}: {'no examples' if not kinds else 'examples of several types'} to write; expected one type")
    kind = kinds.pop()
    if path.suffix != EXAMPLE_EXTENSIONS[kind]:
        raise ValueError(f"{path}: {kind.__name__}s written to a {path.suffix or 'nameless'} file; expected {EXAMPLE_EXTENSIONS[kind]}")
    named = name_language_split(path)
    languages = sorted({example.language for example in examples})
    if named is None or languages != [named[0]]:
        raise ValueError(f"{path}: examples in {', '.join(languages)}; expected a name <language>.<split>{path.suffix} "
                         "giving their one language")
    if kind is SpanExample:
        text = _conll_text(list(examples))
    elif kind is PairExample:
        text = _tsv_text(list(examples))
    else:
        text = _relx_text(list(examples))
    write_text(path, text)
