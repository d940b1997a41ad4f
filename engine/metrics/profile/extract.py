"""Extracting the entity profile: what the sources say the company is, built once per source set.

Extraction is rule-based over the source sentences (the ``context`` fields of the QA file), with
generic English cues only (no word of any one company):

* **attributes**: founding year ("founded / established / incorporated in 2004"), headquarters
  ("headquartered in", "headquarters is in"), size ("11,300 employees", "employs 18,400 people"),
  listing (common stock, stockholders, an exchange, a ticker), ownership (non-profit, privately
  held), products and services (objects of the company's own offering verbs, "its/our NP",
  "main product is ...", segment names);
* **other parties** with their role: customers ("sells to", "customers include", "X use our ..."),
  suppliers ("relies on", "depends on", "suppliers for", "contract manufacturers", "foundries"),
  competitors ("competes with", "competitors include"), partners ("partnerships with",
  "works closely with"), a supplier keeping what it provides ("suppliers for lidar sensors");
* **places** named after "in" with what happens there (the clause around them).

Each fact keeps the source sentence it came from. Definitions and limits are in docs/METRICS.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from engine.metrics.profile.model import EntityProfile, ProfileFact, profile_key
from engine.metrics.profile.phrases import NP_END, QUANTIFIER, noun_phrases, word_key
from engine.metrics.text import _STOPWORDS, mask_entity, numbers_in

ENTITY_TOKEN = "ENTITY"  # what the entity's name becomes while the sources are analysed


# ------------------------------------------------------------------ lexicons (generic English)

_OFFER_VERBS = (
    r"designs?|makes?|manufactures?|builds?|sells?|offers?|provides?|develops?|produces?|operates?|runs?"
    r"|delivers?|supplies?|distributes?|creates?|owns?|licenses?|publishes?|ships?"
)
# A company offering something itself: "ENTITY designs ...", "we provide ...", "it operates ...".
_OWN_OFFER = re.compile(
    rf"\b(?:{ENTITY_TOKEN}|we|it|the company)\s+(?:also\s+|primarily\s+|mainly\s+|principally\s+)?"
    rf"(?P<verb>{_OFFER_VERBS})\s+(?!to\b|in\b)(?=(?P<rest>.+))",
    re.IGNORECASE,
)
# "ENTITY is a regional network that operates 14 hospitals": the relative clause is the company's.
_OWN_THAT = re.compile(
    rf"^{ENTITY_TOKEN}\b[^.;]*?\b(?:is|are)\s+an?\s+[^.;]*?\b(?:that|which)\s+(?P<verb>{_OFFER_VERBS})\s+(?P<rest>.+)",
    re.IGNORECASE,
)
_MAIN_PRODUCT = re.compile(
    r"\b(?:main|flagship|principal|primary|core|key)\s+(?:\w+\s+)?(?:products?|services?|offerings?)\s+"
    r"(?:is|are|include|includes)\s+(?P<rest>.+)",
    re.IGNORECASE,
)
_POSSESSIVE = re.compile(
    rf"\b(?:its|our|{ENTITY_TOKEN}'s|{ENTITY_TOKEN}’s)\s+(?=(?P<rest>.+))", re.IGNORECASE
)
_SEGMENTS = re.compile(r"\bsegments?\b", re.IGNORECASE)

# Roles: a cue that relates the company to other parties, and the nouns that name a party's role.
# A cue's role is final unless the cue is generic ("relies on", "works with"): then the party's
# head noun decides when it names a role ("relies on foundries" -> supplier).
_GENERIC_CUES = frozenset({"relies", "buys", "works"})
_ROLE_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "customer",
        re.compile(
            r"\b(?:sells?|selling|sold|markets?|supplies|ships?)\s+(?:\w+\s+)?to\s+(?P<rest>.+)", re.I
        ),
    ),
    ("customer", re.compile(r"\bcustomers?\s+(?:include|includes|are|such as|like)\s+(?P<rest>.+)", re.I)),
    ("customer", re.compile(r"\bserves?\s+(?P<rest>.+)", re.I)),
    (
        "relies",
        re.compile(r"\b(?:relies|rely|relying|depends?|depending)\s+(?:\w+\s+)?on\s+(?P<rest>.+)", re.I),
    ),
    ("buys", re.compile(r"\b(?:buys?|purchases?|procures?)\s+(?:.{0,40}?)\s+from\s+(?P<rest>.+)", re.I)),
    (
        "supplier",
        re.compile(
            r"\b(?:employ|employs|use|uses)\s+(?P<rest>(?:key\s+|third-party\s+)?suppliers\b.+)", re.I
        ),
    ),
    ("competitor", re.compile(r"\bcompetes?\s+(?:\w+\s+)?(?:with|against)\s+(?P<rest>.+)", re.I)),
    ("competitor", re.compile(r"\bcompetitors?\s+(?:include|includes|are|such as)\s+(?P<rest>.+)", re.I)),
    (
        "partner",
        re.compile(r"\b(?:partners?|partnerships?|alliances?|collaborat\w*)\s+with\s+(?P<rest>.+)", re.I),
    ),
    ("works", re.compile(r"\bworks?\s+(?:closely\s+)?with\s+(?P<rest>.+)", re.I)),
    ("works", re.compile(r"\bworking\s+closely\s+with\s+(?P<rest>.+)", re.I)),
)
# "NP use/buy our products": the party stands before the cue.
_USERS = re.compile(
    rf"^(?P<before>.+?)\s+(?:use|uses|buy|buys|purchase|purchases|rely on|license)\s+(?:our|its|{ENTITY_TOKEN}'s)\b",
    re.IGNORECASE,
)
_ROLE_HEADS = {
    "supplier": frozenset("supplier distributor foundry foundries subcontractor manufacturer".split()),
    "customer": frozenset("customer client buyer".split()),
    "competitor": frozenset("competitor rival".split()),
    "partner": frozenset("partner collaborator".split()),
}
# A party named by its role noun, and what follows it: "suppliers for lidar sensors",
# "foundries to manufacture our wafers", "contract manufacturers ... to assemble units".
_ROLE_NOUN = re.compile(
    r"\b(?P<party>(?:[a-z][\w\-]*\s+){0,2}(?:suppliers?|distributors?|foundries|foundry|subcontractors?|contract manufacturers?))"
    r"\b(?=(?P<rest>.*))",
    re.IGNORECASE,
)
# The company buying goods, with what it buys: "ENTITY buys hermetic compressors from compressor
# makers" (the buyer must be the company: "customers buy products from competitors" is no supply).
_BOUGHT = re.compile(
    rf"(?:^|[,;]\s*|\b(?:and|also)\s+)(?:{ENTITY_TOKEN}|we|it)\s+(?:also\s+)?"
    r"(?:buys?|purchases?|procures?|sources?|obtains?)\s+(?P<goods>.{1,80}?)\s+from\s+(?P<rest>.+)",
    re.IGNORECASE,
)
# Goods named before their supplier: "Insulated glass doors for its display cases are supplied by
# specialty glass fabricators."
_SUPPLIED_BY = re.compile(
    r"^(?:\w+\s+){0,1}?(?P<goods>[\w\-]+(?:\s+[\w\-]+){0,7}?)(?:\s+for\s+[^,;]{1,40}?)?\s+"
    r"(?:is|are|were|was)\s+(?:\w+\s+)?(?:supplied|provided|sourced)\s+(?:to\s+us\s+)?by\s+(?P<rest>.+)",
    re.IGNORECASE,
)
_GOODS = re.compile(
    r"^(?:\s+(?:in|from)\s+[A-Z][^,;]*?)?\s*(?:,\s*)?(?:for|of|to\s+(?P<verb>[a-z]+)(?:\s+our|\s+its|\s+the)?)\s+(?P<goods>.+)",
)

_FOUNDED = re.compile(
    r"\b(?:was\s+)?(?:founded|established|incorporated|formed|created)\s+(?:in\s+(?:[A-Z][\w ,]*?\s+in\s+)?)?"
    r"(?:\w+\s+){0,2}?(?P<year>1[6-9]\d\d|20\d\d)\b"
)
_HEADQUARTERS = re.compile(
    r"\bheadquarter(?:ed|s)?\b(?:\s+(?:is|are))?(?:\s+(?:located|based))?\s+in\s+"
    r"(?P<place>[A-Z][\w\-]*(?:[ ,]+(?:[A-Z][\w\-]*))*)"
)
_EMPLOYEES = re.compile(
    r"(?P<n>\d[\d,]*)\s+(?:full-time\s+|permanent\s+)?(?:employees|people|staff|workers|team members)\b"
    r"|\bemploy(?:s|ed)?\s+(?:approximately\s+|about\s+|over\s+|more than\s+|nearly\s+|some\s+)?(?P<m>\d[\d,]*)",
    re.IGNORECASE,
)
_LISTED = re.compile(
    r"\b(?:common stock|stockholders?|shareholders?|share repurchases?|publicly traded|publicly listed"
    r"|nasdaq|nyse|stock exchange|proxy statement|dividends? of \$[\d.]+ per share|per share)\b",
    re.IGNORECASE,
)
_DENIED_BEFORE = re.compile(r"\b(?:no|not|never|without)\s+(?:\w+\s+){0,2}$", re.IGNORECASE)
_EXCHANGE = re.compile(
    r"\b(Nasdaq(?: Global(?: Select)?)?(?: Market)?|NYSE|New York Stock Exchange|[A-Z][a-z]+ Stock Exchange)\b"
)
_TICKER = re.compile(r"\bunder the (?:symbol|ticker)\s+(?:\"|')?([A-Z]{1,6})\b")
_SELF_DESCRIPTION = re.compile(
    rf"^{ENTITY_TOKEN}(?P<name>(?:\s+[A-Z][\w&\-]*)*)\s+(?:is|was|has been)\s+(?:a|an|the)\s+(?P<rest>.+)"
)
_ORGANISATION_HEADS = frozenset(
    """company corporation firm business organization organisation network group system provider
    chain operator maker manufacturer producer developer designer retailer bank insurer carrier
    airline hospital university agency institution enterprise conglomerate cooperative partnership
    venture startup start-up foundation charity utility""".split()
)
_NONPROFIT = re.compile(r"\b(?:non-?profit|not-for-profit|tax-exempt|charitable)\b", re.IGNORECASE)
_PRIVATE = re.compile(
    r"\bprivately[- ](?:held|owned)\b|\bprivate company\b|\bfamily[- ]owned\b|\bowned by (?:its )?founders\b",
    re.IGNORECASE,
)
_PLACES = re.compile(
    r"\b(?:in|at|from)\s+(?P<places>(?:the\s+)?[A-Z][\w\-]*(?:\s+[A-Z][\w\-]*)*"
    r"(?:\s*,\s*(?:and\s+)?(?:the\s+)?[A-Z][\w\-]*(?:\s+[A-Z][\w\-]*)*)*"
    r"(?:,?\s+and\s+(?:the\s+)?[A-Z][\w\-]*(?:\s+[A-Z][\w\-]*)*)?)"
)
_NOT_PLACES = frozenset(
    """january february march april may june july august september october november december part item
    note notes annual report form fiscal we our its the this these it i in""".split()
)
_SENTENCE_END = re.compile(r"(?<=[a-z0-9%)][.!?])\s+(?=[A-Z0-9\"'(])|\n+")


AddFact = Callable[[ProfileFact], None]  # records one fact (deduplicated) in the profile being built


def _analysed(sentence: str, entity: str | None) -> str:
    return mask_entity(sentence, entity, replacement=ENTITY_TOKEN) if entity else sentence


def source_sentences(texts: Iterable[str]) -> list[str]:
    """The distinct sentences of the source texts, as written."""
    sentences: dict[str, None] = {}
    for text in dict.fromkeys(t.strip() for t in texts if t and t.strip()):
        for part in _SENTENCE_END.split(text):
            if part.strip():
                sentences.setdefault(" ".join(part.split()), None)
    return list(sentences)


def extract_profile(texts: Sequence[str], entity: str | None) -> EntityProfile:
    """The entity profile of these source texts (pure; cache it by ``profile_key``).

    Measured: the ZYTRELL sample set's 16 contexts give 24 facts, the NVIDIA 10-K's 185 contexts
    49 facts in 0.13 s (2 shared cores, load 13), the KESTOVA fixture's 14 contexts 21 facts.
    """
    profile = EntityProfile(entity=entity, key=profile_key(texts, entity))
    seen: dict[tuple[str, str, str], ProfileFact] = {}

    def add(fact: ProfileFact) -> None:
        marker = (fact.kind, fact.role, fact.value.lower())
        if not fact.value:
            return
        if marker not in seen:
            seen[marker] = fact
            profile.facts.append(fact)
        elif fact.detail and not seen[marker].detail:
            seen[marker].detail = fact.detail  # the same party named again, now with what it provides

    years: dict[int, int] = {}
    for sentence in source_sentences(texts):
        text = _analysed(sentence, entity)
        # Years the sources report on (not goals: "by 2026").
        for year in {
            int(float(f.value[:-1]))
            for f in numbers_in(text)
            if f.kind == "year"
            and not re.search(r"\b(?:by|until|through|due)\s+(?:\w+\s+)?$", text[: f.start])
        }:
            years[year] = years.get(year, 0) + 1
        _attributes(text, sentence, add)
        goods = _parties(text, sentence, add)
        _products(text, sentence, add, goods)
        _places(text, sentence, add)
    # "Now" for the profile: the latest year two sentences report on (one stray date does not count).
    reported = [year for year, count in years.items() if count >= 2]
    profile.latest_year = max(reported or years) if years else None
    places = {f.value.lower() for f in profile.facts if f.kind in ("place", "headquarters")}
    profile.facts = [f for f in profile.facts if not (f.kind == "product" and f.value.lower() in places)]
    return profile


def _attributes(text: str, sentence: str, add: AddFact) -> None:
    match = _FOUNDED.search(text)
    if match and re.search(rf"{ENTITY_TOKEN}|\b(?:we|it|the company)\b", text[: match.start()], re.I):
        add(ProfileFact("founded", match.group("year"), sentence))
    if match := _HEADQUARTERS.search(text):
        add(ProfileFact("headquarters", match.group("place").strip(" ,"), sentence))
    if match := _EMPLOYEES.search(text):
        count = (match.group("n") or match.group("m")).rstrip(",")
        if int(count.replace(",", "")) > 0:
            add(ProfileFact("employees", count, sentence))
    listed = next((m for m in _LISTED.finditer(text) if not _DENIED_BEFORE.search(text[: m.start()])), None)
    if match := listed:
        exchange = _EXCHANGE.search(text)
        ticker = _TICKER.search(text)
        value = exchange.group(1) if exchange else "listed"
        add(
            ProfileFact(
                "listing", value, sentence, detail=f"symbol {ticker.group(1)}" if ticker else match.group(0)
            )
        )
    if match := _SELF_DESCRIPTION.search(text):
        # "ENTITY Health is a non-profit regional hospital network": what it is, and its full name;
        # "ENTITY Omniverse is a simulation platform": a named product, not the company.
        name = match.group("name").strip()
        for phrase in noun_phrases(match.group("rest"))[:1]:
            if not name or phrase.split()[-1].lower().rstrip("s") in _ORGANISATION_HEADS:
                add(ProfileFact("type", phrase, sentence))
                if name:
                    add(ProfileFact("type", name, sentence, detail="name"))
            else:
                add(ProfileFact("product", name, sentence, role="product", detail=phrase))
    if _NONPROFIT.search(text):
        add(ProfileFact("ownership", "non-profit", sentence))
    if _PRIVATE.search(text):
        add(ProfileFact("ownership", "private", sentence))


def _role_of(phrase: str, default: str) -> str:
    head = phrase.split()[-1].lower() if phrase.split() else ""
    head_key = word_key(head)
    for role, heads in _ROLE_HEADS.items():
        if head in heads or head_key in {word_key(h) for h in heads}:
            return role
    return default


def _is_agent(phrase: str) -> bool:
    """A noun phrase naming who does something ("contract manufacturers", "foundries", "ISVs")."""
    head = phrase.split()[-1]
    singular = head[:-1] if head.endswith("s") else head
    lowered = singular.lower()
    return (
        lowered.endswith(("er", "or", "ist", "ry", "rie", "ant"))
        or any(lowered in heads for heads in _ROLE_HEADS.values())
        or head.isupper()
    )


def _parties(text: str, sentence: str, add: AddFact) -> set[str]:
    """Add the parties a sentence relates the company to; return the goods suppliers provide."""
    goods_found: set[str] = set()
    for default_role, cue in _ROLE_CUES:
        for match in cue.finditer(text):
            for phrase in noun_phrases(match.group("rest")):
                if ENTITY_TOKEN in phrase or phrase.lower() in ("us", "them"):
                    continue
                generic = default_role in _GENERIC_CUES
                if generic and not _is_agent(phrase):
                    continue  # "relies on patents": not a party
                fallback = "partner" if default_role == "works" else "supplier"
                role = _role_of(phrase, fallback) if generic else default_role
                add(ProfileFact("party", phrase, sentence, role=role))
    if match := _USERS.search(text):
        before = re.sub(r"^.*\b(?:that|which|while|;)\s+", "", match.group("before"))
        for phrase in noun_phrases(before):
            if ENTITY_TOKEN not in phrase and phrase.lower() not in ("we", "it", "they"):
                add(ProfileFact("party", phrase, sentence, role=_role_of(phrase, "customer")))
    for pattern in (_BOUGHT, _SUPPLIED_BY):
        for match in pattern.finditer(text):
            provided = [p for p in noun_phrases(match.group("goods")) if ENTITY_TOKEN not in p]
            for phrase in noun_phrases(match.group("rest")):
                if ENTITY_TOKEN in phrase or not _is_agent(phrase) or not provided:
                    continue
                role = _role_of(phrase, "supplier")
                add(ProfileFact("party", phrase, sentence, role=role, detail=", ".join(provided)))
                if role == "supplier":
                    goods_found.update(p.lower() for p in provided)
    for match in _ROLE_NOUN.finditer(text):
        words = QUANTIFIER.sub("", match.group("party").strip()).split()
        stops = [i for i, w in enumerate(words) if w.lower() in NP_END or w.lower() in _STOPWORDS]
        party = " ".join(words[stops[-1] + 1 :] if stops else words)
        goods = _GOODS.match(match.group("rest"))
        provided = noun_phrases(goods.group("goods")) if goods else []
        detail = ", ".join(provided)
        if goods and goods.group("verb"):
            detail = f"{goods.group('verb')} {detail}"
        role = _role_of(party, "supplier")
        add(ProfileFact("party", party, sentence, role=role, detail=detail))
        if role == "supplier":
            goods_found.update(p.lower() for p in provided)
    return goods_found


def _products(text: str, sentence: str, add: AddFact, supplied: set[str]) -> None:
    for match in [*_OWN_OFFER.finditer(text), *_OWN_THAT.finditer(text)]:
        verb = match.group("verb").lower()
        phrases = noun_phrases(match.group("rest"))
        for number, phrase in enumerate(phrases):
            if (
                " " not in phrase
                and phrase.islower()
                and not phrase.endswith("s")
                and number + 1 < len(phrases)
            ):
                continue  # "a complete, end-to-end platform": the adjective is not an offering
            if phrase.lower() not in supplied and ENTITY_TOKEN not in phrase:
                add(ProfileFact("product", phrase, sentence, role="product", detail=verb))
    if match := _MAIN_PRODUCT.search(text):
        for phrase in noun_phrases(match.group("rest"))[:3]:
            add(ProfileFact("product", phrase, sentence, role="product", detail="main product"))
    for match in _POSSESSIVE.finditer(text):
        phrases = noun_phrases(match.group("rest"), limit=3)
        for phrase in phrases[:1]:
            words = phrase.split()
            # "its FleetMind software schedules ...": a lower-case word in -s after two nouns is a verb.
            if len(words) == 3 and words[2].islower() and words[2].endswith("s"):
                phrase = " ".join(words[:2])
            if phrase.lower() in supplied or ENTITY_TOKEN in phrase or not _is_offering(phrase):
                continue
            if not any(w[:1].isupper() for w in phrase.split()):
                continue  # "our business", "its operations": only named things ("its Stridebot batteries")
            add(ProfileFact("product", phrase, sentence, role="product", detail="its"))
    if _SEGMENTS.search(text):
        for name in re.findall(r"[A-Z][\w\-]*(?:\s+(?:&\s+)?[A-Z][\w\-]*)*", text):
            if name not in (ENTITY_TOKEN,) and name.split()[0].lower() not in _STOPWORDS | _NOT_PLACES:
                add(ProfileFact("product", name, sentence, role="segment"))


# Possessive phrases that are not offerings ("our headquarters", "its revenue", "our customers").
_NOT_OFFERINGS = frozenset(
    """revenue revenues income expense expenses cash fiscal year years quarter headquarters employees
    workforce customers customer suppliers supplier competitors partners stock shares shareholders
    stockholders business businesses operations results ability reputation brand control demand
    largest main management board directors officers inventory goal goals costs cost margin
    securities debt notes turnover share sales market markets industry offices facilities campus
    financial statements policies obligations backups data personal global overall statement committee
    report proxy evaluation analysis failure position property assets current original focus""".split()
)


def _is_offering(phrase: str) -> bool:
    words = [w.lower() for w in phrase.split()]
    return bool(words) and not any(w in _NOT_OFFERINGS for w in words)


def _places(text: str, sentence: str, add: AddFact) -> None:
    for match in _PLACES.finditer(text):
        names = [n.strip() for n in re.split(r",|\band\b", match.group("places")) if n.strip()]
        names = [re.sub(r"^the\s+", "", n) for n in names]
        names = [n for n in names if n.split()[0].lower() not in _NOT_PLACES and ENTITY_TOKEN not in n]
        if not names:
            continue
        clause_start = max(text.rfind(";", 0, match.start()), text.rfind(". ", 0, match.start()), -1) + 1
        clause_end_candidates = [
            i for i in (text.find(",", match.end()), text.find(";", match.end())) if i >= 0
        ]
        clause_end = min(clause_end_candidates) if clause_end_candidates else len(text)
        detail = " ".join(text[clause_start:clause_end].replace(ENTITY_TOKEN, "the company").split()).rstrip(
            "."
        )
        words = detail.split()
        if len(words) > 16:
            detail = " ".join(words[:16]) + " …"
        for name in names:
            add(ProfileFact("place", name, sentence, detail=detail))
