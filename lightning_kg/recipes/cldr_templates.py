"""The demo's fixed per-language wording, written for this project (not taken from CLDR): property
labels, article templates, region-entry labels and short descriptions. ``cldr_demo`` fills them
with CLDR's localised names. Every table is in ``cldr_demo.TEXT_LANGUAGES`` order or keyed by it."""

# Wikidata property -> its label in each of TEXT_LANGUAGES, in that order ("_" stands for a space).
PROPERTIES = {
    "P17": "държава Staat country país pays paese 国 land państwo país страна land ülke 国家",
    "P30": "континент Kontinent continent continente continent continente 大陸 continent kontynent continente континент kontinent kıta 大洲",
    "P37": "официален_език Amtssprache official_language idioma_oficial langue_officielle lingua_ufficiale 公用語 officiële_taal "
           "język_urzędowy língua_oficial официальный_язык officiellt_språk resmî_dil 官方语言",
    "P38": "валута Währung currency moneda monnaie valuta 通貨 munteenheid waluta moeda валюта valuta para_birimi 货币",
    "P282": "писменост Schrift writing_system sistema_de_escritura système_d'écriture sistema_di_scrittura 文字体系 schrift pismo "
            "sistema_de_escrita письменность skriftsystem yazı_sistemi 书写系统",
    "P361": "част_от Teil_von part_of parte_de partie_de parte_di 一部分 onderdeel_van część parte_de часть_от del_av parçası 属于",
}

# Templated article text per language. noun: (UN member, other territory); first/continent/languages
# (one, several)/currency/cities take [[links]]; short labelled forms where a sentence needs inflection.
TEXT = {
    "bg": dict(noun=("държава", "територия"), first="{name} е {noun} в региона {region}.", continent="Континент: {x}.",
               languages=("Официален език: {x}.", "Официални езици: {x}."), currency="Валута: {x}.", cities="Градове: {x}.",
               category="Категория", template="Шаблон"),
    "de": dict(noun=("Staat", "Gebiet"), first="{name} ist ein {noun} in der Region {region}.", continent="Kontinent: {x}.",
               languages=("Amtssprache ist {x}.", "Amtssprachen sind {x}."), currency="Währung: {x}.", cities="Städte: {x}.",
               category="Kategorie", template="Vorlage"),
    "en": dict(noun=("country", "territory"), first="{name} is a {noun} in {region}.", continent="It lies in {x}.",
               languages=("Its official language is {x}.", "Its official languages are {x}."), currency="Its currency is the {x}.",
               cities="Its cities include {x}.", category="Category", template="Template"),
    "es": dict(noun=("país", "territorio"), first="{name} es un {noun} de la región {region}.", continent="Continente: {x}.",
               languages=("Idioma oficial: {x}.", "Idiomas oficiales: {x}."), currency="Moneda: {x}.", cities="Ciudades: {x}.",
               category="Categoría", template="Plantilla"),
    "fr": dict(noun=("pays", "territoire"), first="{name} est un {noun} de la région {region}.", continent="Continent : {x}.",
               languages=("Langue officielle : {x}.", "Langues officielles : {x}."), currency="Monnaie : {x}.", cities="Villes : {x}.",
               category="Catégorie", template="Modèle"),
    "it": dict(noun=("paese", "territorio"), first="{name} è un {noun} della regione {region}.", continent="Continente: {x}.",
               languages=("Lingua ufficiale: {x}.", "Lingue ufficiali: {x}."), currency="Valuta: {x}.", cities="Città: {x}.",
               category="Categoria", template="Template"),
    "ja": dict(noun=("国", "地域"), first="{name}は{region}の{noun}である。", continent="{x}に位置する。",
               languages=("公用語は{x}である。", "公用語は{x}である。"), currency="通貨は{x}である。", cities="{x}などの都市がある。",
               category="Category", template="Template"),
    "nl": dict(noun=("land", "gebied"), first="{name} is een {noun} in de regio {region}.", continent="Continent: {x}.",
               languages=("Officiële taal: {x}.", "Officiële talen: {x}."), currency="Munteenheid: {x}.", cities="Steden: {x}.",
               category="Categorie", template="Sjabloon"),
    "pl": dict(noun=("państwo", "terytorium"), first="{name} to {noun} w regionie {region}.", continent="Kontynent: {x}.",
               languages=("Język urzędowy: {x}.", "Języki urzędowe: {x}."), currency="Waluta: {x}.", cities="Miasta: {x}.",
               category="Kategoria", template="Szablon"),
    "pt": dict(noun=("país", "território"), first="{name} é um {noun} da região {region}.", continent="Continente: {x}.",
               languages=("Língua oficial: {x}.", "Línguas oficiais: {x}."), currency="Moeda: {x}.", cities="Cidades: {x}.",
               category="Categoria", template="Predefinição"),
    "ru": dict(noun=("страна", "территория"), first="{name} — {noun} в регионе {region}.", continent="Континент: {x}.",
               languages=("Официальный язык: {x}.", "Официальные языки: {x}."), currency="Валюта: {x}.", cities="Города: {x}.",
               category="Категория", template="Шаблон"),
    "sv": dict(noun=("land", "territorium"), first="{name} är ett {noun} i regionen {region}.", continent="Kontinent: {x}.",
               languages=("Officiellt språk: {x}.", "Officiella språk: {x}."), currency="Valuta: {x}.", cities="Städer: {x}.",
               category="Kategori", template="Mall"),
    "tr": dict(noun=("ülkedir", "bölgedir"), first="{name}, {region} bölgesinde bir {noun}.", continent="Kıta: {x}.",
               languages=("Resmî dil: {x}.", "Resmî diller: {x}."), currency="Para birimi: {x}.", cities="Şehirler: {x}.",
               category="Kategori", template="Şablon"),
    "zh": dict(noun=("国家", "地区"), first="{name}是位于{region}的{noun}。", continent="它位于{x}。",
               languages=("官方语言为{x}。", "官方语言为{x}。"), currency="货币为{x}。", cities="城市有{x}等。",
               category="Category", template="Template"),
}
# The label of a region entry's list of parts; entries also use PROPERTIES' P361 and P282 labels.
MEMBERS_LABEL = {"bg": "Включва", "de": "Umfasst", "en": "Comprises", "es": "Comprende", "fr": "Comprend", "it": "Comprende",
                 "ja": "構成", "nl": "Omvat", "pl": "Obejmuje", "pt": "Compreende", "ru": "Включает", "sv": "Omfattar",
                 "tr": "Kapsar", "zh": "包括"}
ENGLISH_THE = {"019", "029", "057"}  # "in the Caribbean", "in the Americas", "in the Micronesian Region"
# Short descriptions of UN members in five languages only: most entities have none and get one
# composed from facts by the pipeline.
DESCRIPTIONS = {  # continent order: Africa, Oceania, Americas, Asia, Europe
    "bg": "държава в Африка|държава в Океания|държава в Америка|държава в Азия|държава в Европа",
    "de": "Staat in Afrika|Staat in Ozeanien|Staat in Amerika|Staat in Asien|Staat in Europa",
    "en": "country in Africa|country in Oceania|country in the Americas|country in Asia|country in Europe",
    "es": "país de África|país de Oceanía|país de América|país de Asia|país de Europa",
    "fr": "pays d'Afrique|pays d'Océanie|pays d'Amérique|pays d'Asie|pays d'Europe",
}
