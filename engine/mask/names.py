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

The vocabulary and patterns are engine/mask/name_words.py; reading the cues is
engine/mask/name_cues.py (``Scanner``); the filters above (``_Judge``), ``identifying_names`` and
the counts in the checked set are here.

Cost: one regex pass over each text finds the runs; the cues before a run are read by walking back
over at most 90 characters, the cues after it by anchored matches, so the time is linear in the
input (bench/mask_bench.py --leaks-mb prints the ratio).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.dataset import Record
from engine.mask.name_cues import (
    KIND_PERSON,
    KIND_PRODUCT,
    KIND_TICKER,
    Capture,
    Learned,
    Scanner,
    snippet,
)
from engine.mask.name_words import (
    BODY_WORDS,
    DOCUMENT_WORDS,
    FUNCTION_WORDS,
    GENERIC_WORDS,
    LOWER_WORD_RE,
    ORGANISATION_WORDS,
    PLURAL_ACRONYM_RE,
    SUFFIX_WORDS,
    name_runs,
    trailing_noise,
)
from engine.mask.plan import as_records, field_name, string_fields
from engine.mask.rules import (
    ALIAS_PREFIX,
    LEAK_PREFIX,
    NOT_WORD_AFTER,
    NOT_WORD_BEFORE,
    RULE_DOMAIN,
    RULE_TICKER,
    MaskRule,
    literal_pattern,
    name_rule,
    split_legal_suffix,
)


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


class _Judge:
    """Turns raw captures into names with the filters of the module docstring."""

    def __init__(self, learned: Learned, skip: set[str]):
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
        return token in self.learned.plural_acronyms or PLURAL_ACRONYM_RE.fullmatch(token) is not None

    def name(self, raw: str, at_start: bool) -> str:
        """The name a capture stands for: no leading function word (nor, at a sentence start, a
        leading ordinary word: "Hopper includes" keeps Hopper, "During Fiscal" drops During) and no
        trailing plural acronym or legal suffix ("RTX GPUs" -> RTX)."""
        tokens = raw.split(" ") if raw else []
        while tokens and tokens[0].lower() in FUNCTION_WORDS:
            tokens, at_start = tokens[1:], False
        if at_start and tokens and self.ordinary(tokens[0]):
            tokens = tokens[1:]
        while tokens and (trailing_noise(tokens[-1]) or self.plural_acronym(tokens[-1])):
            tokens = tokens[:-1]
        return " ".join(tokens)

    def refuse(self, name: str, captures: list[Capture]) -> bool:
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
    scanner = Scanner(terms)
    skip = {t.casefold() for t in (*terms, *tickers, *ignore) if t.strip()} | {
        s.casefold() for s in SUFFIX_WORDS
    }
    corpus = _row_texts(source_rows) + ([] if source_rows is rows else _row_texts(rows))
    runs = [[name_runs(text) for text in texts] for texts in corpus]
    learned = Learned()
    for texts, text_runs in zip(corpus, runs, strict=True):
        for text in texts:
            # Words never span whitespace: read each distinct token once, not a long field's every repeat.
            distinct = " ".join(set(text.split()))
            learned.lowercase_words.update(LOWER_WORD_RE.findall(distinct))
            learned.plural_acronyms.update(PLURAL_ACRONYM_RE.findall(distinct))
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
        linked = Learned()
        for texts, text_runs in zip(corpus, runs, strict=True):
            scanner.scan_links(texts, text_runs, linked, anchors)
        for name, captures in _judge_all(linked, judge).items():
            found.setdefault(name, captures)
    # A person is also named by the surname alone ("Mr. Teter"): counted where it stands alone.
    for name, captures in list(found.items()):
        tokens = name.split(" ")
        person = next((c for c in captures if c.kind == KIND_PERSON), None)
        if person and len(tokens) > 1 and tokens[-1] not in found and not judge.refuse(tokens[-1], [person]):
            found[tokens[-1]] = [Capture(KIND_PERSON, f"surname of {name}", person.evidence, False)]
    return _count(rows, found)


def _row_texts(records: Sequence[Record]) -> list[list[str]]:
    return [[text for _path, text in string_fields(record.data)] for record in records]


def _judge_all(learned: Learned, judge: _Judge) -> dict[str, list[Capture]]:
    names: dict[str, list[Capture]] = {}
    for raw, entries in learned.captures.items():
        for at_start, capture in entries:
            if capture.other_org and not judge.ordinary(capture.other_org):
                continue  # an officer of another organisation ("President of Acme")
            name = judge.name(raw, at_start)
            if name:
                names.setdefault(name, []).append(capture)
    return {name: captures for name, captures in names.items() if not judge.refuse(name, captures)}


def _count(rows: Sequence[Record], found: dict[str, list[Capture]]) -> list[IdentifyingName]:
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
                    examples[name] = (number, record.line, field_name(path), snippet(text, *match.span()))
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
