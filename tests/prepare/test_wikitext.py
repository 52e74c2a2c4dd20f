import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_kg.prepare.wikitext import normalize_title, parse_wikitext

ARTICLE = """{{Infobox country|name=Japan|capital=[[Tokyo]]{{nested|[[Hidden]]}}}}
'''Japan''' is an [[island country|island]] in [[East_Asia]].<ref name="a">A [[ref link]]</ref><ref name=b/> It has many [[bus]]es.
[[File:Flag.svg|thumb|The [[flag]] of Japan]]See [http://example.org the site]. <!-- [[commented]] --><span>Tagged</span> text.

== History ==
* [[Jōmon period|Jōmon]] people lived here.
{| class="wikitable"
| [[In table]] || cell
|}
[[Category:Countries]] [[fr:Japon]] [[:Category:Shown]]
"""


def spans(paragraph):
    return [(paragraph.text[m.start:m.end], m.title) for m in paragraph.mentions]


def test_plain_text_keeps_links_as_mentions_and_drops_markup():
    first, second, third = parse_wikitext(ARTICLE)
    assert first.text == "Japan is an island in East Asia. It has many buses. See the site. Tagged text."
    assert spans(first) == [("island", "Island country"), ("East Asia", "East Asia"), ("buses", "Bus")]
    assert second.text == "Jōmon people lived here."
    assert spans(second) == [("Jōmon", "Jōmon period")]
    # "[[:Category:X]]" renders its title as a link to the category page: text, not a mention.
    assert (third.text, third.mentions) == ("Category:Shown", [])


@pytest.mark.parametrize("title, expected", [
    (" east_asia#History ", "East asia"), ("Star Wars: Episode I", "Star Wars: Episode I"), ("Category:X", ""),
    # Without the wiki's <siteinfo> only the names every wiki accepts are known (test_namespaces.py reads the local ones).
    ("Категория:Азия", "Категория:Азия"), ("Image:a.png", ""), ("pl:Agronomia", ""), ("fr:Japon", ""), (":fr:Japon", ""), ("wikt:bus", ""), ("File:a.png", ""),
    ("AT&amp;T", "AT&T"), ("tokyo", "Tokyo"), ("", ""),
])
def test_titles_are_normalised_as_mediawiki_does(title, expected):
    assert normalize_title(title) == expected


def test_no_link_trail_in_scripts_without_spaces():
    (paragraph,) = parse_wikitext("[[東京]]は日本の首都である。")
    assert spans(paragraph) == [("東京", "東京")] and paragraph.text == "東京は日本の首都である。"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("ab |[]{}'=<>/:#\n*!-&;") + ["[[", "]]", "{{", "}}", "<ref>", "</ref>", "{|", "|}", "\n\n"]),
                max_size=60).map("".join))
def test_any_input_parses_and_spans_match_anchors(text):
    for paragraph in parse_wikitext(text):
        assert paragraph.text == paragraph.text.strip()
        for mention in paragraph.mentions:
            assert 0 <= mention.start < mention.end <= len(paragraph.text)
            assert mention.title and normalize_title(mention.title) == mention.title


def test_a_caption_over_several_lines_with_templates_leaks_nothing():
    """The Afghanistan article of the gensim excerpt: templates on their own lines inside a file's
    caption left blank lines there, which once cut the link in two paragraphs of markup."""
    text = ("[[File:Taliban insurgency in Afghanistan (2015–present).svg|thumb|Current military situation, as of 27 February 2016.\n"
            "{{legend|#ebc0b3|Under control of the [[Politics of Afghanistan|Afghan Government]], [[Resolute Support Mission|NATO]]}}\n"
            "{{legend|#b3b2ae|Under control of the [[Taliban]], [[Al-Qaeda]], and [[Islamic Jihad Union|Allies]]}}]]\n"
            "Afghanistan is an [[Islamic republic]].")
    (paragraph,) = parse_wikitext(text)
    assert paragraph.text == "Afghanistan is an Islamic republic." and spans(paragraph) == [("Islamic republic", "Islamic republic")]
    (kept,) = parse_wikitext("[[Tokyo|{{nihongo|Tokyo|東京}}]] is big. [[Kyoto|The {{lang|ja|old}} capital]] too.")
    # An anchor that was only a template shows the page's name (as the pipe trick would): its output is unknown here.
    assert kept.text == "Tokyo is big. The capital too." and spans(kept) == [("Tokyo", "Tokyo"), ("The capital", "Kyoto")]


@pytest.mark.parametrize("wikitext, text", [
    ("'''Anarchism''' (from the Greek {{lang|grc|ἀναρχία}}, i.e. without rulers) is", "Anarchism (from the Greek, i.e. without rulers) is"),
    ("'''Aristotle''' ({{IPA-en|ˈærɪstɒtəl}}; {{lang-el|Ἀριστοτέλης}}) was a philosopher.", "Aristotle was a philosopher."),
    ("'''Alain Connes''' ({{IPA-fr|alɛ̃ kɔn}}; born 1 April 1947) is", "Alain Connes (born 1 April 1947) is"),
    ("in 1996 (reissued {{year|1998}}) and {{cite|x}}.", "in 1996 (reissued) and."),
    ("Plain (text, with brackets) stays; so does ( this ).", "Plain (text, with brackets) stays; so does ( this )."),
])
def test_dropped_templates_leave_no_empty_brackets_or_stray_spaces(wikitext, text):
    (paragraph,) = parse_wikitext(wikitext)
    assert paragraph.text == text


def test_own_title_links_the_leads_first_bold_text_to_the_page():
    first, second, _ = parse_wikitext(ARTICLE.replace("Jōmon period|Jōmon]]", "Jōmon period|Jōmon]] and '''Japan'''"), own_title="Japan")
    assert spans(first)[0] == ("Japan", "Japan") and first.text.startswith("Japan is an island")
    assert spans(second) == [("Jōmon", "Jōmon period")]  # bold after the first heading stays text
    assert spans(parse_wikitext(ARTICLE)[0])[0] == ("island", "Island country")  # off unless asked
    # Bold italics count; bold that holds a link, or sits in one, is left as it is.
    assert spans(parse_wikitext("'''''Nippon''''' is [[Asia|big]].", own_title="Japan")[0]) == [("Nippon", "Japan"), ("big", "Asia")]
    assert spans(parse_wikitext("'''[[Tokyo]]''' is big.", own_title="Japan")[0]) == [("Tokyo", "Tokyo")]
    assert spans(parse_wikitext("[[Tokyo|'''capital''']] of '''Japan'''.", own_title="Japan")[0]) == [("capital", "Tokyo")]
