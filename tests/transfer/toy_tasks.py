"""Toy tasks any encoder can learn from a few dozen examples: filler words with one place and one
person, in any language code."""

import random

from lightning_kg.dataset.task_examples import RelationExample, SpanExample, TypingExample

PLACES, PEOPLE = ["Tokyo", "Paris", "Berlin", "Rome"], ["Alice", "Bob", "Carol", "Dave"]
FILLER = ["the", "a", "is", "was", "in", "of", "and", "big"]


def sentence(rng, language):
    """Filler words with one place and one person at random positions; gold spans for NER."""
    words = [rng.choice(FILLER) for _ in range(5)]
    place, person = rng.sample(range(6), 2)
    words.insert(min(place, person), "?")
    words.insert(max(place, person), "?")
    words[place], words[person] = rng.choice(PLACES), rng.choice(PEOPLE)
    return SpanExample(tuple(words), tuple(sorted([(place, place + 1, "LOC"), (person, person + 1, "PER")])), language)


def ner_examples(count, language, seed):
    rng = random.Random(seed)
    return [sentence(rng, language) for _ in range(count)]


def typing_examples(count, language, seed):
    rng = random.Random(seed)
    out = []
    for example in ner_examples(count, language, seed):
        start, end, label = rng.choice(example.spans)
        out.append(TypingExample(example.words, (start, end), label, language))
    return out


def relation_examples(count, language, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        person, place = rng.choice(PEOPLE), rng.choice(PLACES)
        label = rng.choice(["born_in", "lives_in"])
        words = (person, "was", "born" if label == "born_in" else "living", "in", place)
        out.append(RelationExample(words, (0, 1), (4, 5), label, language))
    return out
