"""Names that identify the entity besides its own name: its products, brands, people and tickers.

A masked set that still says "the Hopper architecture" or "Jensen Huang, our CEO" names the company
as surely as the name itself. ``identifying_names`` learns such names from the sources and reports
the ones the checked set still holds, with row counts and an example (``engine.mask.invent`` masks
them). No word list names a company, product or person: the rules below are about how a sentence
relates a name to the entity, and docs/MASKING.md states the same rules for users.

A name is a run of capitalised or product-like words ("Ada Lovelace", "GeForce", "H100", "Timothy
S. Teter", "40 Series"). The entity is its name, an alias, the replacement name, "the Company", "we"
and "our", and "its" in a row that mentions the entity. A name is tied to the entity by

* possession: "our third generation RTX technology", "NVIDIA's A100 and H100", "its GeForce
  platform" (up to five lowercase words between, none a preposition or conjunction);
* a brand prefix: the entity's name right before it ("NVIDIA DLSS", "EGNIVIA Omniverse");
* making: "we introduced the Hopper architecture", "the Hopper architecture introduced by NVIDIA"
  (introduce, launch, announce, unveil, release, ship, sell, offer, market, develop, design, make,
  build, manufacture, produce, create, debut);
* belonging: "The Stridebot is ZYTRELL's robot", "FleetMind, our fleet software,";
* an officer title: "Mara Lindqvist has served as Chief Executive Officer", "Jensen Huang, our
  CEO", "CEO Jensen Huang" (not "former", nor a title of another organisation: "President of Acme");
* a ticker cue: "under the symbol ZYTL", "(NASDAQ: NVDA)", in a row that mentions the entity;
* a surname: the last word of a person found, where it stands alone ("Mr. Teter");
* a list or a link: names listed with a tied one ("GeForce and NVIDIA RTX GPUs", "CUDA and our
  other tools") or tied to a product by "based on / built on / powered by / features / includes"
  ("the 40 Series based on the Ada Lovelace architecture").

A name is never reported when it is

* the entity's name, an alias, a replacement name or a ticker already masked;
* ordinary: every word also occurs in lowercase in the set ("Proxy Statement"), or is a number, a
  month, a title, a common acronym (GPU, SEC) or an acronym the set also writes in the plural
  ("GPUs"); or it starts or ends with a document word ("Form 10-K", "Consolidated Financial
  Statements") or ends with a body of any organisation ("Audit Committee");
* a third party: it holds an organisation word (Bank, Trust, Company, University, LLP, ...) unless
  the entity owns it directly ("our Deep Learning Institute"), or the set names it in a role
  ("customers such as X", "X, our transfer agent", "X, as trustee", "between the Company and X",
  "competes with X");
* a place: the set writes it after in / at / from / to / near / across / ... at the end of a phrase
  ("headquartered in Tacoma, Washington", "in Mexico and Taiwan"), or right before a place or market
  word ("its Tacoma campus", "the Professional Visualization market"); the entity making it or
  prefixing it with its name outweighs this.

Cost: one regex pass over each text finds the runs; the cues before a run are read by walking back
over at most 90 characters, the cues after it by anchored matches, so the time is linear in the
input (bench/mask_bench.py --leaks-mb prints the ratio).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.dataset import Record
from engine.mask.plan import as_records, field_name, string_fields
from engine.mask.rules import (
    ALIAS_PREFIX,
    LEAK_PREFIX,
    LEGAL_SUFFIXES,
    NOT_WORD_AFTER,
    NOT_WORD_BEFORE,
    RULE_DOMAIN,
    RULE_TICKER,
    MaskRule,
    literal_pattern,
    name_rule,
    split_legal_suffix,
)

KIND_PRODUCT = "product"
KIND_PERSON = "person"
KIND_TICKER = "ticker"


@dataclass(frozen=True)
class IdentifyingName:
    """A name tied to the entity in the sources and still present in the checked set."""

    name: str
    kind: str  # product (products, brands, programmes) | person | ticker
    cue: str  # the relation that tied it to the entity
    evidence: str  # the sources' words that tie it to the entity
    rows: int  # rows of the checked set that hold it
    occurrences: int
    row_numbers: tuple[int, ...] = field(repr=False, compare=False)
    example_row: int
    example_line: int
    example_field: str
    example: str  # a snippet of the first such row


# ---------------------------------------------------------------- vocabulary (generic words only)

# Capitalised words that identify nothing: calendar words, titles, words of filings, common acronyms.
GENERIC_WORDS = frozenset(
    """
    January February March April May June July August September October November December
    Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday Q1 Q2 Q3 Q4 H1 H2 FY
    AI GPU CPU DPU PC IP API SDK SEC US USA EU UK CEO CFO COO CTO CIO IT HR ESG GAAP IPO LLC LLP
    FAQ OEM ML IoT COVID COVID-19 R&D IPR&D LLM NLP OS AR VR XR IC ASIC SoC DRAM 3D 5G
    HQ IR PR QA KPI ROI EPS EBITDA USD EUR GBP JPY CNY
    Mr Mrs Ms Dr Jr Sr
    President Vice Chairman Chairwoman Chair Chief Officer Officers Director Directors Secretary
    Counsel General Senior Executive Treasurer Controller Founder Board Committee Series
    Form Item Items Note Notes Part Rule Rules Regulation Regulations Section Sections Exhibit
    Exhibits Schedule Article Appendix Chapter Table Figure Page Act Annual Report Statement
    Statements Proxy Fiscal Year Quarter Company Corporation Group
    """.split()
)
# Bodies inside any organisation and documents of any filer: a name that ends in one ("Audit
# Committee", "Consolidated Financial Statements", "2007 Equity Incentive Plan") identifies no one.
BODY_WORDS = frozenset(
    "Committee Committees Board Boards Council Department Division Office Team Panel".split()
)
DOCUMENT_WORDS = frozenset(
    """
    Statement Statements Report Reports Act Acts Plan Plans Agreement Agreements Indenture Form Forms
    Rule Rules Regulation Regulations Note Notes Policy Policies Code Charter Bylaws Certificate
    Exhibit Exhibits Schedule Item Items Section Sections Part Article Amendment
    """.split()
)
SUFFIX_WORDS = frozenset(s.rstrip(".") for s in LEGAL_SUFFIXES)
# A capitalised word that makes a run an organisation (a third party unless the entity owns it).
ORGANISATION_WORDS = (
    frozenset(
        """
        Bank Bancorp Trust Association Company Companies Exchange Commission University College School
        Institute Foundation Agency Authority Court Department Ministry Government Fund Partners
        Organization Organisation Council Bureau Reserve Technologies Capital Securities Associates
        Holdings Market Markets
        """.split()
    )
    | SUFFIX_WORDS
)
# Determiners, pronouns and prepositions a run may start with at a sentence start or in a heading.
FUNCTION_WORDS = frozenset(
    """
    the a an its our their his her my your this that these those we it they he she in on at for as
    of and or but if when while with by to from after before during since each every all any some
    what which who how why where
    """.split()
)
# Words that end a relation: nothing across them ties a name to the entity.
BREAK_WORDS = frozenset(
    """
    in on at to from with by for of as into onto over under through via across per than about against
    between among within without including like such and or but nor because while if that which who
    whom whose where when whether although though since until unless after before during except
    versus vs not
    """.split()
)
MAKE_VERBS = frozenset(
    """
    introduce introduces introduced introducing launch launches launched launching announce announces
    announced unveil unveils unveiled release releases released ship ships shipped shipping sell sells
    sold selling offer offers offered offering market markets marketed develop develops developed
    design designs designed make makes made build builds built manufacture manufactures manufactured
    produce produces produced create creates created debut debuts debuted
    """.split()
)
_ADVERBS = frozenset(
    "also recently first then has have had will now currently began begun started starts again".split()
)
# Roles of other parties: a name in one of these roles is a third party.
ROLE_WORDS = frozenset(
    """
    customer customers client clients supplier suppliers vendor vendors partner partners competitor
    competitors rival rivals distributor distributors reseller resellers retailer retailers foundry
    foundries manufacturer manufacturers subcontractor subcontractors contractor contractors licensor
    licensors licensee licensees lender lenders bank banks banker bankers auditor auditors accountant
    accountants agent agents registrar registrars trustee trustees successor successors underwriter
    underwriters landlord landlords lessor lessors investor investors shareholder shareholders
    stockholder stockholders regulator regulators government governments agency agencies exchange
    exchanges counterparty counterparties provider providers carrier carriers insurer insurers advisor
    advisors adviser advisers consultant consultants buyer buyers acquirer acquirers seller sellers firm
    firms
    """.split()
)
_ROLE_LINKERS = frozenset("like including include includes included namely is are was were".split())
_TITLE_WORDS = frozenset(
    "officer ceo cfo coo cto cio president chairman chairwoman chair chairperson founder co-founder "
    "counsel secretary treasurer controller director".split()
)
# Not "to" / "into": "exports to China" but also "report to RideGrid", "upgrade to Windows".
_PLACE_PREPOSITIONS = frozenset("in at from near throughout across outside within".split())
_PLACE_NOUN = (
    r"markets?|segments?|regions?|campus(?:es)?|headquarters|offices?|facilit(?:y|ies)|sites?|plants?|"
    r"factor(?:y|ies)|cit(?:y|ies)|states?|countr(?:y|ies)|areas?|industry|industries|sectors?"
)
_ROLE = "|".join(sorted(ROLE_WORDS))
_TITLE = r"(?:chief\s+[a-z]+(?:\s+[a-z]+)?\s+officer|ceo|cfo|coo|cto|cio|president|chair(?:man|woman|person)?|(?:co-)?founder|general\s+counsel|secretary|treasurer|controller|director)"
_BREAK = "|".join(sorted(BREAK_WORDS))
# A lowercase word that may stand between the entity and its name ("our third generation RTX").
_MOD = rf"(?!(?:{_BREAK})\b)[a-z][a-z0-9\-]*"
_MOD_RE = re.compile(r"[a-z][a-z0-9\-]*")

# A word of a name: capitalised ("GeForce", "H100", "COVID-19", "AT&T") or camel-case ("iPhone").
_WORD = r"(?:[A-Z][A-Za-z0-9]*|[a-z]+[A-Z][A-Za-z0-9]*)(?:-[A-Z0-9][A-Za-z0-9]*)*(?:&[A-Z][A-Za-z0-9]*)*"
# A name: words joined by single spaces, "&", a middle initial ("Timothy S. Teter") or a model number
# ("NVIDIA 40 Series"); a short number may lead ("40 Series").
_RUN_RE = re.compile(
    rf"(?<![\w.\-&])(?:\d{{1,3}} (?=[A-Z]))?{_WORD}(?:(?: & | (?:[A-Z]\. )?(?:\d{{1,3}} (?=[A-Z]))?){_WORD})*"
)
_PERSON_RE = re.compile(
    r"[A-Z][a-z]+(?:[A-Z][a-z]+)?(?:-[A-Z][a-z]+)?(?: (?:[A-Z]\. )?[A-Z][a-z]+(?:-[A-Z][a-z]+)?){1,2}"
)
# Words before a run: words (with a possessive 's) and single punctuation marks.
_TOKEN_RE = re.compile(r"\w[\w\-'\u2019&]*|[^\w\s]")
_LOOK_BACK = 90
_LOWER_WORD_RE = re.compile(r"[a-z](?<!\w.)[a-z\-]*\b")
_PLURAL_ACRONYM_RE = re.compile(r"\b([A-Z]{2,})s\b")
_SENTENCE_STARTERS = frozenset(".?!:;\"'(\u201c\u2018[")

_COORD_RE = re.compile(
    rf"(?:\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+)(?:{_MOD}\s+){{0,3}}?(?=[A-Z0-9]|[a-z]+[A-Z])"
)
_LIST_RE = re.compile(r"(?:\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+)(?:the\s+)?(?=[A-Z])")
_PHRASE_END_RE = re.compile(r"\s*(?:[,.;:()]|$)|\s+(?:and|or)\b")
_PLACE_AFTER_RE = re.compile(rf"\s+(?:{_PLACE_NOUN})\b")
_PLACE_WORD_RE = re.compile(rf"(?:{_PLACE_NOUN})\b")
_ROLE_WORD_RE = re.compile(rf"\b(?i:{_ROLE})\b")
_TITLE_RE = re.compile(rf"(?i:\b{_TITLE})\b")
_ROLE_AFTER_RE = re.compile(
    r"(?:,\s*(?:(?:as|is|was|are|were|acts\s+as|serves\s+as|served\s+as)\s+)?|"
    r"\s+(?:as|is|was|are|were|acts\s+as|serves\s+as|served\s+as)\s+)"
    rf"(?:(?:our|its|the|a|an|one\s+of\s+(?:our|its|the))\s+)?(?:{_MOD}\s+){{0,2}}?(?i:{_ROLE})\b"
)
_PERSON_AFTER_RE = re.compile(
    rf"(?P<window>(?:,?\s+[^\s.;!?]+){{0,8}}?),?\s+(?:as\s+)?(?:(?:our|its|the|a|an|\S+['\u2019]s)\s+)?"
    rf"(?i:{_TITLE})\b(?:\s+(?:of|at)\s+(?:the\s+)?(?P<org>[A-Z][\w\-]*))?"
)
_FORMER_RE = re.compile(r"\b(?:former|formerly|previously|retired)\b", re.IGNORECASE)
_TICKER_WORD_RE = re.compile(
    r"\b(?:[Ss]ymbols?|[Tt]icker)(?:\s+symbol)?\s*[:\-]?\s*[\"\u201c'\u2018]?(?P<t>[A-Z]{1,5}(?:\.[A-Z])?)(?!\w|\.[A-Z])"
)
_TICKER_PAREN_RE = re.compile(
    r"\((?:[A-Z][A-Za-z]*(?: [A-Z][A-Za-z]*)?)\s*:\s*(?P<t>[A-Z]{1,5}(?:\.[A-Z])?)\)"
)
_NEXT_WORD_RE = re.compile(r"\s*(,)?\s*([\w\-]*)")
_COPULAS = frozenset("is was remains became has".split())
_ROLE_VERBS = frozenset("as is was are were acts serves served".split())
_LINK_RE = re.compile(
    r"(?:\s+[A-Za-z][\w\-]*){0,2}?\s+(?:based\s+on|built\s+on|powered\s+by|featuring|features|feature|"
    rf"includes|include|including)\s+(?:(?:the|a|an|our|its)\s+)?(?:{_MOD}\s+){{0,2}}?(?=[A-Z0-9])"
)


@dataclass
class _Capture:
    kind: str
    cue: str
    evidence: str
    strong: bool  # a brand prefix or "the entity makes it": outweighs a place reading
    other_org: str | None = None  # "President of <this>": not the entity's officer if it is a name


@dataclass
class _Learned:
    """What the sources say before filtering: raw captures, third parties, places, vocabulary."""

    captures: dict[str, list[tuple[bool, _Capture]]] = field(default_factory=dict)  # raw -> (at start?, c)
    third_party: set[str] = field(default_factory=set)
    places: Counter[str] = field(default_factory=Counter)  # name -> times read as a place
    organisation_tokens: set[str] = field(default_factory=set)
    owned_directly: set[str] = field(default_factory=set)
    lowercase_words: set[str] = field(default_factory=set)
    plural_acronyms: set[str] = field(default_factory=set)

    def add(self, raw: str, at_start: bool, capture: _Capture) -> None:
        self.captures.setdefault(raw, []).append((at_start, capture))


def _snippet(text: str, start: int, end: int, width: int = 30) -> str:
    left = max(0, start - width)
    right = min(len(text), end + width)
    middle = text[left:right].replace("\n", " ")
    return ("\u2026" if left else "") + middle + ("\u2026" if right < len(text) else "")


def _at_sentence_start(text: str, start: int) -> bool:
    before = start - 1
    while before >= 0 and text[before].isspace():
        before -= 1
    return before < 0 or text[before] in _SENTENCE_STARTERS


def _is_mod(word: str) -> bool:
    return word not in BREAK_WORDS and _MOD_RE.fullmatch(word) is not None


class _Scanner:
    """The entity's names compiled once; ``scan`` reads one row's texts into a ``_Learned``."""

    def __init__(self, entity_terms: Sequence[str]):
        terms = sorted({t.strip() for t in entity_terms if t.strip()}, key=len, reverse=True)
        self.names = [tuple(t.casefold().split()) for t in terms]
        self.first_words = {name[0] for name in self.names if name}
        ent = "|".join(literal_pattern(t) for t in terms) or r"(?!x)x"
        named = rf"{NOT_WORD_BEFORE}(?i:{ent}){NOT_WORD_AFTER}"
        possessor = rf"(?:{NOT_WORD_BEFORE}(?i:{ent})|\b[Tt]he [Cc]ompany)['\u2019][sS]"
        self.mention_re = re.compile(rf"{named}|\b[Tt]he [Cc]ompany\b|\b(?:[Ww]e|[Oo]ur|[Uu]s)\b")
        self.made_by_re = re.compile(
            rf"(?:\s+{_MOD}){{0,3}}?\s+(?:(?:was|were|is|are|being|been|first)\s+){{0,2}}"
            rf"(?:{'|'.join(sorted(w for w in MAKE_VERBS if w.endswith(('ed', 'made', 'built', 'sold'))))})"
            rf"\s+by\s+(?:{named}|us\b|the\s+[Cc]ompany\b)"
        )
        what = r"(?P<what>[^\s.,;:!?()]+(?:\s+[^\s.,;:!?()]+){0,3})"
        # "X is the entity's ...", and an apposition closed by punctuation: "X, our CEO, said".
        self.copula_re = re.compile(
            r"\s+(?:is|was|remains|became|has\s+been)\s+(?:(?:the|a|an|one\s+of)\s+)?"
            rf"(?:{possessor}|our)\s+{what}"
        )
        self.apposition_re = re.compile(rf"\s*,\s*(?:{possessor}|our)\s+{what}(?=\s*(?:[,.;:!?)]|$))")
        self.other_re = re.compile(rf"\s*,?\s+(?:and|or)\s+(?:{possessor}|our|its)\s+other\b")

    # -- the entity inside a run or a list of words
    def entity_split(self, tokens: list[str]) -> list[str]:
        """The tokens after the entity's name inside a run ("NVIDIA RTX GPUs" -> RTX GPUs); the
        tokens before it when it ends the run; the run itself when it does not hold the name."""
        joined = " ".join(tokens).casefold()
        if not any(first in joined for first in self.first_words):  # the common case, in C
            return tokens
        folded = [t.casefold() for t in tokens]
        cut, before = -1, len(tokens)
        for name in self.names:
            size = len(name)
            for index in range(len(tokens) - size + 1):
                if tuple(folded[index : index + size]) == name:
                    cut, before = max(cut, index + size), min(before, index)
        if cut < 0:
            return tokens
        return tokens[cut:] or tokens[:before]

    def has_entity(self, run: str) -> bool:
        tokens = run.split(" ")
        return not run or self.entity_split(tokens) != tokens

    def entity_before(self, words: list[str], index: int, *, possessive: bool) -> int | None:
        """Where an entity mention ending at ``words[index]`` starts ("the Company's", "NVIDIA"), or None."""
        if index < 0:
            return None
        last = words[index]
        if possessive:
            if len(last) < 3 or last[-2] not in "'\u2019" or last[-1] not in "sS":
                return None
            last = last[:-2]
        folded_last = last.casefold()
        if folded_last == "company" and index >= 1 and words[index - 1].casefold() == "the":
            return index - 1
        if folded_last in ("we", "us") and not possessive:
            return index
        if possessive and last in SUFFIX_WORDS:  # "NVIDIA Corporation's"
            return self.entity_before(words, index - 1 - (words[index - 1] == ","), possessive=False)
        for name in self.names:
            size = len(name)
            start = index - size + 1
            if (
                start >= 0
                and name[-1] == folded_last
                and tuple(w.casefold() for w in words[start:index]) == name[:-1]
            ):
                return start
        return None

    # -- one row
    def scan(self, texts: Sequence[str], runs: Sequence[dict[int, int]], learned: _Learned) -> None:
        """Read one row; a ticker cue counts only in a row that mentions the entity."""
        mentioned = any(self.mention_re.search(text) for text in texts)
        for text, text_runs in zip(texts, runs, strict=True):
            starts = list(text_runs)
            for start, end in text_runs.items():
                self._before_run(text, start, text_runs, starts, learned)
                self._after_run(text, start, end, text_runs, learned)
            if mentioned:
                self._tickers(text, learned)

    def scan_links(
        self, texts: Sequence[str], runs: Sequence[dict[int, int]], learned: _Learned, anchors: set[str]
    ) -> None:
        """Second pass: names tied to products already found ("the 40 Series based on the X")."""
        anchor_words = {name.split(" ")[0] for name in anchors}
        for text, text_runs in zip(texts, runs, strict=True):
            for start, end in text_runs.items():
                run = text[start:end]
                if anchor_words.isdisjoint(run.split(" ")):
                    continue
                if self.plain(run) in anchors:
                    link = _LINK_RE.match(text, end)
                    if link and link.end() in text_runs:
                        self._capture(
                            text, link.end(), text_runs, learned, KIND_PRODUCT, "tied to a product", start
                        )

    def _before_run(
        self, text: str, start: int, runs: dict[int, int], starts: list[int], learned: _Learned
    ) -> None:
        """Cues in the words before a run: possession, making, a title, a role, a place."""
        if _at_sentence_start(text, start):  # no cue crosses a sentence end; most runs stop here
            return
        left = max(0, start - _LOOK_BACK)
        words = _TOKEN_RE.findall(text, left, start)
        if left and words:
            words = words[1:]  # may be cut in the middle
        if not words:
            return
        last = len(words) - 1
        # Possession and making: walk back over lowercase words to the possessor / the verb.
        index, mods = last, 0
        while index >= 0:
            word = words[index]
            if (
                word in ("our", "Our", "its", "Its")
                or self.entity_before(words, index, possessive=True) is not None
            ):
                if word.lower() != "its" or self._its_means_entity(text, start, runs, starts):
                    self._possessed(text, start, runs, learned, words[index + 1 :])
                break
            if word in MAKE_VERBS and self._maker_subject(words, index - 1):
                self._capture(
                    text, start, runs, learned, KIND_PRODUCT, "made by the entity", start, strong=True
                )
                break
            if not _is_mod(word) or mods == 5:
                break
            index, mods = index - 1, mods + 1
        after_the = last - (words[last] == "the")
        word = words[after_the] if after_the >= 0 else ""
        if word in _PLACE_PREPOSITIONS and _PHRASE_END_RE.match(text, runs[start]):
            self._list(text, start, runs, learned.places)
        if self._role_before(words, after_the) or self._counterparty(words, after_the):
            self._list(text, start, runs, learned.third_party)
        title = last - (words[last] == ",")
        if (
            title >= 0
            and words[title].casefold() in _TITLE_WORDS
            and _PERSON_RE.fullmatch(text[start : runs[start]])
        ):
            self._capture(text, start, runs, learned, KIND_PERSON, "officer", start)

    def _possessed(
        self,
        text: str,
        start: int,
        runs: dict[int, int],
        learned: _Learned,
        mods: list[str],
    ) -> None:
        if ROLE_WORDS.intersection(mods):  # "our transfer agent X": a third party
            learned.third_party.add(self.plain(text[start : runs[start]]))
            return
        if not mods:
            learned.owned_directly.add(self.plain(text[start : runs[start]]))
        self._capture(text, start, runs, learned, KIND_PRODUCT, "possessive", start)

    def _its_means_entity(self, text: str, start: int, runs: dict[int, int], starts: list[int]) -> bool:
        """Does the "its" before ``start`` refer to the entity? Yes when the nearest name before it
        is the entity's, or "the Company" / "we" stand after that name: "ZYTRELL aims to power its
        Tacoma campus", not "Microsoft announced its Azure platform"."""
        its_at = max(text.rfind("its", 0, start), text.rfind("Its", 0, start))
        left = max(0, its_at - 2 * _LOOK_BACK)
        index = bisect_left(starts, its_at) - 1
        name_end = left
        while index >= 0 and starts[index] >= left:
            run = text[starts[index] : runs[starts[index]]]
            if self.has_entity(run):
                return True
            if not all(t in GENERIC_WORDS or _PLURAL_ACRONYM_RE.fullmatch(t) for t in run.split(" ")):
                name_end = runs[starts[index]]
                break
            index -= 1
        return self.mention_re.search(text, name_end, its_at) is not None

    def _maker_subject(self, words: list[str], index: int) -> bool:
        """Is "we" / the entity (after at most three adverbs) the subject of the verb at ``index + 1``?"""
        for _ in range(4):
            if index < 0:
                return False
            if self.entity_before(words, index, possessive=False) is not None:
                return True
            if words[index] not in _ADVERBS:
                return False
            index -= 1
        return False

    @staticmethod
    def _role_before(words: list[str], index: int) -> bool:
        """ "customers such as X", "transfer agent X", "competitors include X", "compete with X"."""
        if index >= 0 and words[index] in (",", ":"):
            index -= 1
        if (
            index >= 0
            and words[index] in ("with", "against")
            and index >= 1
            and words[index - 1].startswith("compet")
        ):
            return True
        if index >= 0 and words[index] in _ROLE_LINKERS:
            index -= 1
        elif index >= 1 and words[index] == "as" and words[index - 1] == "such":
            index -= 2
        return index >= 0 and words[index].casefold() in ROLE_WORDS

    def _counterparty(self, words: list[str], index: int) -> bool:
        """ "between the Company and X"."""
        if index < 2 or words[index] != "and":
            return False
        start = self.entity_before(words, index - 1, possessive=False)
        return start is not None and start >= 1 and words[start - 1] == "between"

    def _after_run(self, text: str, start: int, end: int, runs: dict[int, int], learned: _Learned) -> None:
        """Cues after a run, and the entity's name inside it (a brand prefix)."""
        run = text[start:end]
        tokens = run.split(" ")
        rest = self.entity_split(tokens)
        if rest and len(rest) < len(tokens) and tokens[len(tokens) - len(rest) :] == rest:
            learned.add(
                " ".join(rest),
                False,
                _Capture(KIND_PRODUCT, "brand prefix", _snippet(text, start, end, 12), True),
            )
            self._coordinate(text, end, runs, learned, "brand prefix", start)
        if ORGANISATION_WORDS.intersection(tokens) and len(rest) == len(tokens):
            learned.organisation_tokens.update(tokens)
        if end >= len(text) or text[end] not in " ,\t\n":
            return
        # The next word decides which patterns can match at all: most runs try none of them.
        after = _NEXT_WORD_RE.match(text, end)
        comma, word = bool(after.group(1)), after.group(2)
        if " by " in text[end : end + 60]:
            made = self.made_by_re.match(text, end)
            if made:
                cue = "made by the entity"
                self._capture(
                    text, start, runs, learned, KIND_PRODUCT, cue, start, strong=True, until=made.end()
                )
        if comma or word in _COPULAS:
            for pattern in (self.copula_re, self.apposition_re):
                owned = pattern.match(text, end)
                if owned:
                    self._belongs(text, start, runs, learned, owned)
        if word in ("and", "or") and self.other_re.match(text, end):
            self._capture(text, start, runs, learned, KIND_PRODUCT, "listed with the entity's", start)
        if _PERSON_RE.fullmatch(run):
            person = _PERSON_AFTER_RE.match(text, end)
            if person and not _FORMER_RE.search(person.group("window")):
                org = person.group("org")
                other = None if not org or self.has_entity(org) else org
                cue, until = "officer", person.end()
                self._capture(
                    text, start, runs, learned, KIND_PERSON, cue, start, until=until, other_org=other
                )
        if (comma or word in _ROLE_VERBS) and _ROLE_AFTER_RE.match(text, end):
            learned.third_party.add(self.plain(run))

    def _belongs(
        self, text: str, start: int, runs: dict[int, int], learned: _Learned, owned: re.Match[str]
    ) -> None:
        """ "X is the entity's <what>" / "X, our <what>,": a product, an officer or a third party."""
        what = owned.group("what")
        run = text[start : runs[start]]
        if _ROLE_WORD_RE.search(what):
            learned.third_party.add(self.plain(run))
        elif _TITLE_RE.search(what):
            if _PERSON_RE.fullmatch(run):
                self._capture(text, start, runs, learned, KIND_PERSON, "officer", start, until=owned.end())
        elif not _PLACE_WORD_RE.match(what):
            self._capture(text, start, runs, learned, KIND_PRODUCT, "the entity's", start, until=owned.end())

    def _tickers(self, text: str, learned: _Learned) -> None:
        patterns = [_TICKER_PAREN_RE] if "(" in text else []
        if "ymbol" in text or "icker" in text:
            patterns.append(_TICKER_WORD_RE)
        for pattern in patterns:
            for match in pattern.finditer(text):
                evidence = _snippet(text, match.start(), match.end("t"), 12)
                learned.add(match.group("t"), False, _Capture(KIND_TICKER, "ticker", evidence, True))

    def _capture(
        self,
        text: str,
        start: int,
        runs: dict[int, int],
        learned: _Learned,
        kind: str,
        cue: str,
        cue_start: int,
        *,
        strong: bool = False,
        until: int | None = None,
        other_org: str | None = None,
    ) -> None:
        end = runs[start]
        run = text[start:end]
        if kind == KIND_PRODUCT and not strong and _PLACE_AFTER_RE.match(text, end):
            learned.places[self.plain(run)] += 1  # "its Tacoma campus", "the Gaming market"
            return
        evidence = _snippet(text, min(cue_start, start), max(end, until or end), width=24)
        learned.add(
            " ".join(self.entity_split(run.split(" "))),
            _at_sentence_start(text, start),
            _Capture(kind, cue, evidence, strong, other_org),
        )
        if kind == KIND_PRODUCT:
            self._coordinate(text, end, runs, learned, cue, cue_start)

    def _coordinate(
        self, text: str, end: int, runs: dict[int, int], learned: _Learned, cue: str, cue_start: int
    ) -> None:
        """Names listed right after a tied one share its tie ("GeForce and NVIDIA RTX GPUs")."""
        for _ in range(50):  # a longer list is not a list of products
            more = _COORD_RE.match(text, end)
            if not more or more.end() not in runs:
                return
            start = more.end()
            end = runs[start]
            evidence = _snippet(text, cue_start, end, width=24)
            raw = " ".join(self.entity_split(text[start:end].split(" ")))
            learned.add(raw, False, _Capture(KIND_PRODUCT, cue, evidence, False))

    def _list(self, text: str, start: int, runs: dict[int, int], into: set[str] | Counter[str]) -> None:
        """A run and the runs listed after it ("in Mexico and Taiwan", "customers such as A, B and C")."""
        for _ in range(50):
            end = runs[start]
            if not self.has_entity(text[start:end]):
                name = self.plain(text[start:end])
                if isinstance(into, Counter):
                    into[name] += 1
                else:
                    into.add(name)
            more = _LIST_RE.match(text, end)
            if not more or more.end() not in runs:
                return
            start = more.end()

    def plain(self, run: str) -> str:
        """A run without the entity's name, leading function words and a trailing plural acronym or
        legal suffix ("NVIDIA RTX GPUs" -> RTX): the key names are compared by."""
        tokens = self.entity_split(run.split(" "))
        while tokens and tokens[0].lower() in FUNCTION_WORDS:
            tokens = tokens[1:]
        while tokens and _trailing_noise(tokens[-1]):
            tokens = tokens[:-1]
        return " ".join(tokens)


def _trailing_noise(token: str) -> bool:
    return (
        token == "&" or token.rstrip(".") in SUFFIX_WORDS or _PLURAL_ACRONYM_RE.fullmatch(token) is not None
    )


class _Judge:
    """Turns raw captures into names with the filters of the module docstring."""

    def __init__(self, learned: _Learned, skip: set[str]):
        self.learned = learned
        self.skip = skip

    def ordinary(self, token: str) -> bool:
        return (
            token in GENERIC_WORDS
            or token.lower() in self.learned.lowercase_words
            or token.rstrip(".").isdigit()
            or re.fullmatch(r"[A-Z]\.?", token) is not None
            or self.plural_acronym(token)
            or token == "&"
        )

    def plural_acronym(self, token: str) -> bool:
        return token in self.learned.plural_acronyms or _PLURAL_ACRONYM_RE.fullmatch(token) is not None

    def name(self, raw: str, at_start: bool) -> str:
        """The name a capture stands for: no leading function word (nor, at a sentence start, a
        leading ordinary word: "Hopper includes" keeps Hopper, "During Fiscal" drops During) and no
        trailing plural acronym or legal suffix ("RTX GPUs" -> RTX)."""
        tokens = raw.split(" ") if raw else []
        while tokens and tokens[0].lower() in FUNCTION_WORDS:
            tokens, at_start = tokens[1:], False
        if at_start and tokens and self.ordinary(tokens[0]):
            tokens = tokens[1:]
        while tokens and (_trailing_noise(tokens[-1]) or self.plural_acronym(tokens[-1])):
            tokens = tokens[:-1]
        return " ".join(tokens)

    def refuse(self, name: str, captures: list[_Capture]) -> bool:
        learned = self.learned
        tokens = name.split(" ")
        if len(name) < 2 or all(self.ordinary(t) for t in tokens):
            return True
        if tokens[-1] in BODY_WORDS or tokens[-1] in DOCUMENT_WORDS or tokens[0] in DOCUMENT_WORDS:
            return True
        if name.casefold() in self.skip or any(t.casefold() in self.skip for t in tokens):
            return True
        if name in learned.third_party:
            return True
        owned = name in learned.owned_directly
        if not owned and (
            ORGANISATION_WORDS.intersection(tokens)
            or (len(tokens) == 1 and name in learned.organisation_tokens)
        ):
            return True
        if any(c.kind == KIND_TICKER for c in captures):
            return False
        # A place more often than a name of the entity's, and never made or prefixed by it.
        return learned.places[name] >= len(captures) and not any(c.strong for c in captures)


@dataclass(frozen=True)
class EntityTerms:
    """How a rule set names the entity, for ``identifying_names``."""

    entity: str
    aliases: list[str]
    new_names: list[str]  # replacements of the name, aliases and ticker: the entity too
    tickers: list[str]
    invented: list[str]  # replacements of identifying names: never reported
    kept: list[str]  # identifying names whose rule is rejected: left on purpose


def entity_terms(rules: Sequence[MaskRule], rejected: Iterable[str] = ()) -> EntityTerms:
    """The entity's names in a rule set; ``rejected`` are the ids of rules the user turned off."""
    main = name_rule(rules)
    off = set(rejected)
    leak = [r for r in rules if r.id.startswith(LEAK_PREFIX)]
    return EntityTerms(
        entity=main.target if main else "",
        aliases=[r.target for r in rules if r.id.startswith(ALIAS_PREFIX)],
        new_names=[r.replacement for r in rules if not r.id.startswith(LEAK_PREFIX) and r.id != RULE_DOMAIN],
        tickers=[r.target for r in rules if r.id == RULE_TICKER],
        invented=[r.replacement for r in leak],
        kept=[r.target for r in leak if r.id in off],
    )


def identifying_names(
    records: Sequence[Record | dict[str, Any]],
    entity: str,
    *,
    aliases: Sequence[str] = (),
    new_names: Sequence[str] = (),
    tickers: Sequence[str] = (),
    ignore: Sequence[str] = (),
    sources: Sequence[Record | dict[str, Any]] | None = None,
) -> list[IdentifyingName]:
    """Names tied to the entity in ``sources`` (default: ``records``) that ``records`` still holds.

    ``aliases`` may be "OLD=NEW"; ``new_names`` are replacement names (the entity too, never
    reported); ``tickers`` are symbols already masked and ``ignore`` other names never to report
    (invented replacements). Sorted by rows, most first.
    """
    rows = as_records(records)
    source_rows = rows if sources is None or sources is records else as_records(sources)
    core = split_legal_suffix(entity)
    alias_old = [a.partition("=")[0].strip() for a in aliases]
    alias_new = [a.partition("=")[2].strip() for a in aliases]
    terms = [t for t in (core, *alias_old, *alias_new, *new_names) if t]
    scanner = _Scanner(terms)
    skip = {t.casefold() for t in (*terms, *tickers, *ignore) if t.strip()} | {
        s.casefold() for s in SUFFIX_WORDS
    }
    corpus = _row_texts(source_rows) + ([] if source_rows is rows else _row_texts(rows))
    runs = [[_runs(text) for text in texts] for texts in corpus]
    learned = _Learned()
    for texts, text_runs in zip(corpus, runs, strict=True):
        for text in texts:
            # Words never span whitespace: read each distinct token once, not a long field's every repeat.
            distinct = " ".join(set(text.split()))
            learned.lowercase_words.update(_LOWER_WORD_RE.findall(distinct))
            learned.plural_acronyms.update(_PLURAL_ACRONYM_RE.findall(distinct))
        scanner.scan(texts, text_runs, learned)
    judge = _Judge(learned, skip)
    found = _judge_all(learned, judge)
    # Second pass: names tied to the products found ("the 40 Series based on the Ada Lovelace ...").
    anchors = {
        judge.name(raw, False)
        for raw, entries in learned.captures.items()
        if any(c.kind == KIND_PRODUCT for _start, c in entries)
    }
    anchors = {a for a in anchors if a and not all(t in GENERIC_WORDS for t in a.split(" "))}
    if anchors:
        linked = _Learned()
        for texts, text_runs in zip(corpus, runs, strict=True):
            scanner.scan_links(texts, text_runs, linked, anchors)
        for name, captures in _judge_all(linked, judge).items():
            found.setdefault(name, captures)
    # A person is also named by the surname alone ("Mr. Teter"): counted where it stands alone.
    for name, captures in list(found.items()):
        tokens = name.split(" ")
        person = next((c for c in captures if c.kind == KIND_PERSON), None)
        if person and len(tokens) > 1 and tokens[-1] not in found and not judge.refuse(tokens[-1], [person]):
            found[tokens[-1]] = [_Capture(KIND_PERSON, f"surname of {name}", person.evidence, False)]
    return _count(rows, found)


def _runs(text: str) -> dict[int, int]:
    """Start -> end of every run; a leading "Our" / "The" / "In" is left out, so "Our RideGrid"
    is read as the possessive "our" before the run "RideGrid"."""
    runs = {}
    for match in _RUN_RE.finditer(text):
        start, end = match.span()
        while True:
            space = text.find(" ", start, end)
            if space < 0 or text[start:space].lower() not in FUNCTION_WORDS or text[space + 1] == "&":
                break
            start = space + 1
        runs[start] = end
    return runs


def _row_texts(records: Sequence[Record]) -> list[list[str]]:
    return [[text for _path, text in string_fields(record.data)] for record in records]


def _judge_all(learned: _Learned, judge: _Judge) -> dict[str, list[_Capture]]:
    names: dict[str, list[_Capture]] = {}
    for raw, entries in learned.captures.items():
        for at_start, capture in entries:
            if capture.other_org and not judge.ordinary(capture.other_org):
                continue  # an officer of another organisation ("President of Acme")
            name = judge.name(raw, at_start)
            if name:
                names.setdefault(name, []).append(capture)
    return {name: captures for name, captures in names.items() if not judge.refuse(name, captures)}


def _count(rows: Sequence[Record], found: dict[str, list[_Capture]]) -> list[IdentifyingName]:
    """Where the checked set holds each name: rows, occurrences and the first example."""
    if not found:
        return []
    ordered = sorted(found, key=len, reverse=True)
    by_folded = {" ".join(name.casefold().split()): name for name in ordered}
    # Short all-capital names (tickers, acronyms) only as written: "RTX" must not match "rtx" in a URL.
    parts = [
        f"(?-i:{literal_pattern(n)})" if len(n) <= 4 and n.isupper() else literal_pattern(n) for n in ordered
    ]
    finder = re.compile(NOT_WORD_BEFORE + "(?:" + "|".join(parts) + ")" + NOT_WORD_AFTER, re.IGNORECASE)
    row_numbers: dict[str, list[int]] = {}
    occurrences: Counter[str] = Counter()
    examples: dict[str, tuple[int, int, str, str]] = {}
    for number, record in enumerate(rows):
        in_row: set[str] = set()
        for path, text in string_fields(record.data):
            for match in finder.finditer(text):
                name = by_folded.get(" ".join(match.group(0).casefold().split()))
                if name is None:
                    continue
                occurrences[name] += 1
                in_row.add(name)
                if name not in examples:
                    examples[name] = (number, record.line, field_name(path), _snippet(text, *match.span()))
        for name in in_row:
            row_numbers.setdefault(name, []).append(number)
    result = []
    for name, captures in found.items():
        if name not in row_numbers:
            continue
        kinds = {c.kind for c in captures}
        kind = KIND_TICKER if KIND_TICKER in kinds else KIND_PERSON if KIND_PERSON in kinds else KIND_PRODUCT
        best = next(c for c in captures if c.kind == kind)
        row, line, where, example = examples[name]
        result.append(
            IdentifyingName(
                name=name,
                kind=kind,
                cue=best.cue,
                evidence=best.evidence,
                rows=len(row_numbers[name]),
                occurrences=occurrences[name],
                row_numbers=tuple(row_numbers[name]),
                example_row=row,
                example_line=line,
                example_field=where,
                example=example,
            )
        )
    result.sort(key=lambda n: (-n.rows, n.name))
    return result
