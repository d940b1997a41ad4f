"""The vocabulary identifying names are read with: generic words, the cue patterns, name runs.

Only generic English and the words of any filing: calendar words, titles, organisation, body and
document words, the verbs of making, the roles of other parties, and the regular expressions of a
name's words, titles, tickers, lists and links (engine/mask/names.py says how they are used), with
the small tests over them and ``name_runs`` (where a text's names are). No word names a company,
product or person.
"""

from __future__ import annotations

import re

from engine.mask.rules import LEGAL_SUFFIXES

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
ADVERBS = frozenset(
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
ROLE_LINKERS = frozenset("like including include includes included namely is are was were".split())
TITLE_WORDS = frozenset(
    "officer ceo cfo coo cto cio president chairman chairwoman chair chairperson founder co-founder "
    "counsel secretary treasurer controller director".split()
)
# Not "to" / "into": "exports to China" but also "report to RideGrid", "upgrade to Windows".
PLACE_PREPOSITIONS = frozenset("in at from near throughout across outside within".split())
_PLACE_NOUN = (
    r"markets?|segments?|regions?|campus(?:es)?|headquarters|offices?|facilit(?:y|ies)|sites?|plants?|"
    r"factor(?:y|ies)|cit(?:y|ies)|states?|countr(?:y|ies)|areas?|industry|industries|sectors?"
)
_ROLE = "|".join(sorted(ROLE_WORDS))
_TITLE = r"(?:chief\s+[a-z]+(?:\s+[a-z]+)?\s+officer|ceo|cfo|coo|cto|cio|president|chair(?:man|woman|person)?|(?:co-)?founder|general\s+counsel|secretary|treasurer|controller|director)"
_BREAK = "|".join(sorted(BREAK_WORDS))
# A lowercase word that may stand between the entity and its name ("our third generation RTX").
MOD = rf"(?!(?:{_BREAK})\b)[a-z][a-z0-9\-]*"
MOD_RE = re.compile(r"[a-z][a-z0-9\-]*")

# A word of a name: capitalised ("GeForce", "H100", "COVID-19", "AT&T") or camel-case ("iPhone").
_WORD = r"(?:[A-Z][A-Za-z0-9]*|[a-z]+[A-Z][A-Za-z0-9]*)(?:-[A-Z0-9][A-Za-z0-9]*)*(?:&[A-Z][A-Za-z0-9]*)*"
# A name: words joined by single spaces, "&", a middle initial ("Timothy S. Teter") or a model number
# ("NVIDIA 40 Series"); a short number may lead ("40 Series").
RUN_RE = re.compile(
    rf"(?<![\w.\-&])(?:\d{{1,3}} (?=[A-Z]))?{_WORD}(?:(?: & | (?:[A-Z]\. )?(?:\d{{1,3}} (?=[A-Z]))?){_WORD})*"
)
PERSON_RE = re.compile(
    r"[A-Z][a-z]+(?:[A-Z][a-z]+)?(?:-[A-Z][a-z]+)?(?: (?:[A-Z]\. )?[A-Z][a-z]+(?:-[A-Z][a-z]+)?){1,2}"
)
# Words before a run: words (with a possessive 's) and single punctuation marks.
TOKEN_RE = re.compile(r"\w[\w\-'\u2019&]*|[^\w\s]")
LOOK_BACK = 90
LOWER_WORD_RE = re.compile(r"[a-z](?<!\w.)[a-z\-]*\b")
PLURAL_ACRONYM_RE = re.compile(r"\b([A-Z]{2,})s\b")
SENTENCE_STARTERS = frozenset(".?!:;\"'(\u201c\u2018[")

COORD_RE = re.compile(
    rf"(?:\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+)(?:{MOD}\s+){{0,3}}?(?=[A-Z0-9]|[a-z]+[A-Z])"
)
LIST_RE = re.compile(r"(?:\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+)(?:the\s+)?(?=[A-Z])")
PHRASE_END_RE = re.compile(r"\s*(?:[,.;:()]|$)|\s+(?:and|or)\b")
PLACE_AFTER_RE = re.compile(rf"\s+(?:{_PLACE_NOUN})\b")
PLACE_WORD_RE = re.compile(rf"(?:{_PLACE_NOUN})\b")
ROLE_WORD_RE = re.compile(rf"\b(?i:{_ROLE})\b")
TITLE_RE = re.compile(rf"(?i:\b{_TITLE})\b")
ROLE_AFTER_RE = re.compile(
    r"(?:,\s*(?:(?:as|is|was|are|were|acts\s+as|serves\s+as|served\s+as)\s+)?|"
    r"\s+(?:as|is|was|are|were|acts\s+as|serves\s+as|served\s+as)\s+)"
    rf"(?:(?:our|its|the|a|an|one\s+of\s+(?:our|its|the))\s+)?(?:{MOD}\s+){{0,2}}?(?i:{_ROLE})\b"
)
PERSON_AFTER_RE = re.compile(
    rf"(?P<window>(?:,?\s+[^\s.;!?]+){{0,8}}?),?\s+(?:as\s+)?(?:(?:our|its|the|a|an|\S+['\u2019]s)\s+)?"
    rf"(?i:{_TITLE})\b(?:\s+(?:of|at)\s+(?:the\s+)?(?P<org>[A-Z][\w\-]*))?"
)
FORMER_RE = re.compile(r"\b(?:former|formerly|previously|retired)\b", re.IGNORECASE)
TICKER_WORD_RE = re.compile(
    r"\b(?:[Ss]ymbols?|[Tt]icker)(?:\s+symbol)?\s*[:\-]?\s*[\"\u201c'\u2018]?(?P<t>[A-Z]{1,5}(?:\.[A-Z])?)(?!\w|\.[A-Z])"
)
TICKER_PAREN_RE = re.compile(
    r"\((?:[A-Z][A-Za-z]*(?: [A-Z][A-Za-z]*)?)\s*:\s*(?P<t>[A-Z]{1,5}(?:\.[A-Z])?)\)"
)
NEXT_WORD_RE = re.compile(r"\s*(,)?\s*([\w\-]*)")
COPULAS = frozenset("is was remains became has".split())
ROLE_VERBS = frozenset("as is was are were acts serves served".split())
LINK_RE = re.compile(
    r"(?:\s+[A-Za-z][\w\-]*){0,2}?\s+(?:based\s+on|built\s+on|powered\s+by|featuring|features|feature|"
    rf"includes|include|including)\s+(?:(?:the|a|an|our|its)\s+)?(?:{MOD}\s+){{0,2}}?(?=[A-Z0-9])"
)


def trailing_noise(token: str) -> bool:
    """A token a name is compared without: "&", a legal suffix or a plural acronym ("RTX GPUs")."""
    return token == "&" or token.rstrip(".") in SUFFIX_WORDS or PLURAL_ACRONYM_RE.fullmatch(token) is not None


def at_sentence_start(text: str, start: int) -> bool:
    """Only whitespace stands between ``start`` and the text's start or a sentence-ending mark."""
    before = start - 1
    while before >= 0 and text[before].isspace():
        before -= 1
    return before < 0 or text[before] in SENTENCE_STARTERS


def is_mod(word: str) -> bool:
    """A lowercase word that may stand between the entity and its name (no break word)."""
    return word not in BREAK_WORDS and MOD_RE.fullmatch(word) is not None


def name_runs(text: str) -> dict[int, int]:
    """Start -> end of every run; a leading "Our" / "The" / "In" is left out, so "Our RideGrid"
    is read as the possessive "our" before the run "RideGrid"."""
    runs = {}
    for match in RUN_RE.finditer(text):
        start, end = match.span()
        while True:
            space = text.find(" ", start, end)
            if space < 0 or text[start:space].lower() not in FUNCTION_WORDS or text[space + 1] == "&":
                break
            start = space + 1
        runs[start] = end
    return runs
