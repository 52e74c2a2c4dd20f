"""Links into other namespaces, read with each wiki's own namespace names from its dump's <siteinfo>.

The namespace names below are the real ones of each Wikipedia:
- Bulgarian: the <siteinfo> of the bgwiki excerpt in the gensim wheel (bgwiki-latest-pages-articles-shortened.xml.bz2);
- English: the <siteinfo> of the gensim enwiki excerpt;
- Greek, Hindi, Thai: MediaWiki's languages/messages/MessagesEl.php, MessagesHi.php and MessagesTh.php
  ($namespaceNames; the project namespace is the wiki's $wgMetaNamespace, Βικιπαίδεια, विकिपीडिया, วิกิพีเดีย).
"""

import gzip
import json

import pytest

from lightning_kg.dataset.entity_vocab import EntityVocab
from lightning_kg.prepare.mediawiki import read_site
from lightning_kg.prepare.namespaces import Namespaces
from lightning_kg.prepare.pipeline import prepare
from lightning_kg.prepare.wikitext import parse_wikitext
from lightning_kg.recipes.dump_files import mediawiki_xml, write_dump
from tests.factories import config, page

NAMESPACES = {
    "bg": {-2: "Медия", -1: "Специални", 1: "Беседа", 2: "Потребител", 3: "Потребител беседа", 4: "Уикипедия",
           5: "Уикипедия беседа", 6: "Файл", 7: "Файл беседа", 8: "МедияУики", 9: "МедияУики беседа", 10: "Шаблон",
           11: "Шаблон беседа", 12: "Помощ", 13: "Помощ беседа", 14: "Категория", 15: "Категория беседа", 100: "Портал",
           101: "Портал беседа", 828: "Модул", 829: "Модул беседа"},
    "el": {-2: "Μέσο", -1: "Ειδικό", 1: "Συζήτηση", 2: "Χρήστης", 3: "Συζήτηση χρήστη", 4: "Βικιπαίδεια",
           5: "Βικιπαίδεια συζήτηση", 6: "Αρχείο", 7: "Συζήτηση αρχείου", 8: "MediaWiki", 9: "Συζήτηση MediaWiki",
           10: "Πρότυπο", 11: "Συζήτηση προτύπου", 12: "Βοήθεια", 13: "Συζήτηση βοήθειας", 14: "Κατηγορία",
           15: "Συζήτηση κατηγορίας"},
    "hi": {-2: "मीडिया", -1: "विशेष", 1: "वार्ता", 2: "सदस्य", 3: "सदस्य वार्ता", 4: "विकिपीडिया", 5: "विकिपीडिया वार्ता",
           6: "चित्र", 7: "चित्र वार्ता", 8: "मीडियाविकि", 9: "मीडियाविकि वार्ता", 10: "साँचा", 11: "साँचा वार्ता",
           12: "सहायता", 13: "सहायता वार्ता", 14: "श्रेणी", 15: "श्रेणी वार्ता"},
    "th": {-2: "สื่อ", -1: "พิเศษ", 1: "พูดคุย", 2: "ผู้ใช้", 3: "คุยกับผู้ใช้", 4: "วิกิพีเดีย", 5: "คุยเรื่องวิกิพีเดีย",
           6: "ไฟล์", 7: "คุยเรื่องไฟล์", 8: "มีเดียวิกิ", 9: "คุยเรื่องมีเดียวิกิ", 10: "แม่แบบ", 11: "คุยเรื่องแม่แบบ",
           12: "วิธีใช้", 13: "คุยเรื่องวิธีใช้", 14: "หมวดหมู่", 15: "คุยเรื่องหมวดหมู่"},
    "en": {-2: "Media", -1: "Special", 1: "Talk", 2: "User", 3: "User talk", 4: "Wikipedia", 5: "Wikipedia talk", 6: "File",
           7: "File talk", 8: "MediaWiki", 9: "MediaWiki talk", 10: "Template", 11: "Template talk", 12: "Help", 13: "Help talk",
           14: "Category", 15: "Category talk", 100: "Portal", 101: "Portal talk", 118: "Draft", 119: "Draft talk", 828: "Module",
           829: "Module talk"},
}

# Per wiki: an article whose only article links are the ones named in ARTICLES, among links into
# every other kind of page, each followed by what the paragraph must read.
PAGES = {
    "bg": ("[[Файл:Sofia.jpg|мини|Изглед от [[Витоша]]]]'''София''' е столица на [[България]]. Виж [[Потребител беседа:Иван|беседата]], "
           "[[Беседа:София]], [[Специални:Търсене|търсене]], [[Уикипедия беседа:Правила]], [[Модул:Карта]], [[МедияУики:Common.css]] "
           "и [[:Категория:Столици|столиците]].\n[[Категория:Столици в Европа]]\n[[en:Sofia]]",
           "София е столица на България. Виж беседата, Беседа:София, търсене, Уикипедия беседа:Правила, Модул:Карта, "
           "МедияУики:Common.css и столиците."),
    "el": ("[[Αρχείο:Acropolis.jpg|μικρογραφία|Η [[Ακρόπολη]]]]Η '''Αθήνα''' είναι η πρωτεύουσα της [[Ελλάδα|Ελλάδας]]. "
           "[[Εικόνα:Old.png|μικρογραφία|παλιά]][[Πρότυπο:Πόλεις]] και [[Βικιπαίδεια:Πολιτική]].\n[[Κατηγορία:Πρωτεύουσες]]",
           "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας. Πρότυπο:Πόλεις και Βικιπαίδεια:Πολιτική."),
    "hi": ("[[चित्र:Delhi.jpg|अंगूठाकार|[[लाल किला]]]]'''दिल्ली''' [[भारत]] की राजधानी है। [[सदस्य:राम|राम]] ने [[साँचा:ज्ञानसन्दूक]] लिखा।\n"
           "[[श्रेणी:भारत के नगर]]",
           "दिल्ली भारत की राजधानी है। राम ने साँचा:ज्ञानसन्दूक लिखा।"),
    "th": ("[[ไฟล์:Bangkok.jpg|thumb|[[วัดอรุณ]]]][[ภาพ:Old.jpg|thumb|เก่า]]'''กรุงเทพมหานคร''' เป็นเมืองหลวงของ[[ประเทศไทย]] "
           "ดู [[วิธีใช้:การแก้ไข]] [[คุยกับผู้ใช้:สมชาย|สมชาย]]\n[[หมวดหมู่:เมืองหลวง]]",
           "กรุงเทพมหานคร เป็นเมืองหลวงของประเทศไทย ดู วิธีใช้:การแก้ไข สมชาย"),
    "en": ("[[File:Taliban insurgency.svg|thumb|Current military situation.\n{{legend|#ebc0b3|Under control of the [[Politics of "
           "Afghanistan|Afghan Government]]}}\n\n{{legend|#b3b2ae|Under control of the [[Taliban]]}}]]\n'''Kabul''' is in "
           "[[Afghanistan]]. See [[Wikipedia talk:Manual of Style]], [[Template talk:Infobox]], [[Category talk:Cities]], "
           "[[File talk:Map.png]], [[WT:MOS|the talk]], [[WP:NPOV]], [[H:DIFF]] and [[MOS:BOLD]]; [[Star Wars: Episode I]] "
           "is a film.\n[[Category:Capitals in Asia]]\n[[pl:Kabul]]\n[[mos:Kabul]]",
           "Kabul is in Afghanistan. See Wikipedia talk:Manual of Style, Template talk:Infobox, Category talk:Cities, "
           "File talk:Map.png, the talk, WP:NPOV, H:DIFF and MOS:BOLD; Star Wars: Episode I is a film."),
}
ARTICLES = {"bg": ["България"], "el": ["Ελλάδα"], "hi": ["भारत"], "th": ["ประเทศไทย"], "en": ["Afghanistan", "Star Wars: Episode I"]}
TITLES = {"bg": "София", "el": "Αθήνα", "hi": "दिल्ली", "th": "กรุงเทพมหานคร", "en": "Kabul"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    directory = tmp_path_factory.mktemp("namespaces")
    source = directory / "dumps"
    source.mkdir()
    for lang, (text, _) in PAGES.items():
        pages = [page(TITLES[lang], text), page("MOS:BOLD", "", redirect="Wikipedia:Manual of Style")] if lang == "en" else \
            [page(TITLES[lang], text)]
        write_dump(source / f"{lang}wiki-pages-articles.xml.bz2", mediawiki_xml(lang, pages, namespaces=NAMESPACES[lang]))
    out = directory / "out"
    prepare(config(source, out, wikidata=[], languages=None, min_entity_count=1))
    return source, out


@pytest.mark.parametrize("lang", sorted(PAGES))
def test_the_dump_names_its_namespaces(prepared, lang):
    source, _ = prepared
    site = read_site(source / f"{lang}wiki-pages-articles.xml.bz2")
    assert (site.site, site.language) == (f"{lang}wiki", lang)
    assert site.namespaces.namespace(NAMESPACES[lang][14]) == 14 and site.namespaces.namespace(NAMESPACES[lang][6].upper()) == 6
    assert site.namespaces.namespace("Category") == 14 and site.namespaces.namespace("image") == 6  # canonical, alias


def test_links_into_other_namespaces_are_never_entities(prepared):
    _, out = prepared
    vocab = EntityVocab.load(out / "entity_vocab.jsonl")
    expected = sorted(f"{lang}:{title}" for lang, titles in ARTICLES.items() for title in titles)
    assert sorted(vocab.entities[3:]) == expected


@pytest.mark.parametrize("lang", sorted(PAGES))
def test_the_text_reads_as_mediawiki_renders_it(prepared, lang):
    """Captions and categories are no text, other namespaces show their link text, ``[[:Category:X|y]]`` shows y."""
    _, out = prepared
    number = sorted(PAGES).index(lang)
    with gzip.open(out / ".work" / f"docs-{number:04d}.jsonl.gz", "rt", encoding="utf-8") as lines:
        (article,) = [json.loads(line) for line in lines]
    ((text, mentions),) = article["paragraphs"]
    assert text == PAGES[lang][1]
    assert sorted(title for _, _, title in mentions) == sorted(ARTICLES[lang])
    assert all(text[s:e] in ("България", "Ελλάδας", "भारत", "ประเทศไทย", "Afghanistan", "Star Wars: Episode I") for s, e, _ in mentions)


def test_a_redirect_out_of_the_main_namespace_is_no_article(prepared):
    """English Wikipedia's MOS:BOLD is a main-namespace page redirecting to the project namespace."""
    source, out = prepared
    summary = json.loads((out / ".work" / f"docs-{sorted(PAGES).index('en'):04d}.jsonl.gz.summary.json").read_text(encoding="utf-8"))
    assert summary["redirects"] == {"MOS:BOLD": ""} and summary["articles"] == 1


def test_shortcuts_in_capitals_and_interlanguage_prefixes():
    english = Namespaces.of_wiki("enwiki", "en", NAMESPACES["en"])
    assert english.classify("MOS:BOLD") == ("text", "")  # English Wikipedia's style-guide shortcut
    assert english.classify("mos:Kabul") == ("hidden", "")  # the Mossi Wikipedia
    assert Namespaces.of_wiki("dewiki", "de").classify("MOS:BOLD") == ("hidden", "")  # a shortcut of English Wikipedia only
    assert english.classify(":pl:Kabul") == ("text", "") and english.classify("pl:Kabul") == ("hidden", "")
    assert english.classify("TM:Infobox") == ("text", "")  # Wikimedia's alias of Template: on English Wikipedia
    assert english.classify("Ali: Fear Eats the Soul") == ("article", "Ali: Fear Eats the Soul")
    greek = Namespaces.of_wiki("elwiki", "el", NAMESPACES["el"])
    assert greek.classify("Εικόνα:Old.png") == ("hidden", "")  # MessagesEl.php's alias of the file namespace
    assert greek.classify("ΒΠ:Πολιτική") == ("text", "")  # Wikimedia's shortcut of the project namespace on elwiki
    assert [p.text for p in parse_wikitext("[[Αρχείο:Acropolis.jpg|μικρογραφία|Η Ακρόπολη]]Κείμενο.", greek)] == ["Κείμενο."]
