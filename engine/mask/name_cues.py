"""Reading the sources for identifying names: the cues that tie a name to the entity.

``Scanner`` compiles the entity's names once and reads each row's texts: the cues before a run
(possession, making, a title, a role, a place), after it (made by, belonging, an officer title, a
role), the entity's name inside it (a brand prefix), tickers, lists and links to products found.
What it reads goes into a ``Learned``: raw ``Capture``s, third parties, places and vocabulary, which
engine/mask/names.py filters into the names it reports (its docstring states the rules).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.mask.name_words import (
    ADVERBS,
    COORD_RE,
    COPULAS,
    FORMER_RE,
    FUNCTION_WORDS,
    GENERIC_WORDS,
    LINK_RE,
    LIST_RE,
    LOOK_BACK,
    MAKE_VERBS,
    MOD,
    NEXT_WORD_RE,
    ORGANISATION_WORDS,
    PERSON_AFTER_RE,
    PERSON_RE,
    PHRASE_END_RE,
    PLACE_AFTER_RE,
    PLACE_PREPOSITIONS,
    PLACE_WORD_RE,
    PLURAL_ACRONYM_RE,
    ROLE_AFTER_RE,
    ROLE_LINKERS,
    ROLE_VERBS,
    ROLE_WORD_RE,
    ROLE_WORDS,
    SUFFIX_WORDS,
    TICKER_PAREN_RE,
    TICKER_WORD_RE,
    TITLE_RE,
    TITLE_WORDS,
    TOKEN_RE,
    at_sentence_start,
    is_mod,
    trailing_noise,
)
from engine.mask.rules import NOT_WORD_AFTER, NOT_WORD_BEFORE, literal_pattern

KIND_PRODUCT = "product"
KIND_PERSON = "person"
KIND_TICKER = "ticker"


@dataclass
class Capture:
    kind: str
    cue: str
    evidence: str
    strong: bool  # a brand prefix or "the entity makes it": outweighs a place reading
    other_org: str | None = None  # "President of <this>": not the entity's officer if it is a name


@dataclass
class Learned:
    """What the sources say before filtering: raw captures, third parties, places, vocabulary."""

    captures: dict[str, list[tuple[bool, Capture]]] = field(default_factory=dict)  # raw -> (at start?, c)
    third_party: set[str] = field(default_factory=set)
    places: Counter[str] = field(default_factory=Counter)  # name -> times read as a place
    organisation_tokens: set[str] = field(default_factory=set)
    owned_directly: set[str] = field(default_factory=set)
    lowercase_words: set[str] = field(default_factory=set)
    plural_acronyms: set[str] = field(default_factory=set)

    def add(self, raw: str, at_start: bool, capture: Capture) -> None:
        self.captures.setdefault(raw, []).append((at_start, capture))


def snippet(text: str, start: int, end: int, width: int = 30) -> str:
    left = max(0, start - width)
    right = min(len(text), end + width)
    middle = text[left:right].replace("\n", " ")
    return ("\u2026" if left else "") + middle + ("\u2026" if right < len(text) else "")


class Scanner:
    """The entity's names compiled once; ``scan`` reads one row's texts into a ``Learned``."""

    def __init__(self, entity_terms: Sequence[str]):
        terms = sorted({t.strip() for t in entity_terms if t.strip()}, key=len, reverse=True)
        self.names = [tuple(t.casefold().split()) for t in terms]
        self.first_words = {name[0] for name in self.names if name}
        ent = "|".join(literal_pattern(t) for t in terms) or r"(?!x)x"
        named = rf"{NOT_WORD_BEFORE}(?i:{ent}){NOT_WORD_AFTER}"
        possessor = rf"(?:{NOT_WORD_BEFORE}(?i:{ent})|\b[Tt]he [Cc]ompany)['\u2019][sS]"
        self.mention_re = re.compile(rf"{named}|\b[Tt]he [Cc]ompany\b|\b(?:[Ww]e|[Oo]ur|[Uu]s)\b")
        self.made_by_re = re.compile(
            rf"(?:\s+{MOD}){{0,3}}?\s+(?:(?:was|were|is|are|being|been|first)\s+){{0,2}}"
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
    def scan(self, texts: Sequence[str], runs: Sequence[dict[int, int]], learned: Learned) -> None:
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
        self, texts: Sequence[str], runs: Sequence[dict[int, int]], learned: Learned, anchors: set[str]
    ) -> None:
        """Second pass: names tied to products already found ("the 40 Series based on the X")."""
        anchor_words = {name.split(" ")[0] for name in anchors}
        for text, text_runs in zip(texts, runs, strict=True):
            for start, end in text_runs.items():
                run = text[start:end]
                if anchor_words.isdisjoint(run.split(" ")):
                    continue
                if self.plain(run) in anchors:
                    link = LINK_RE.match(text, end)
                    if link and link.end() in text_runs:
                        self._capture(
                            text, link.end(), text_runs, learned, KIND_PRODUCT, "tied to a product", start
                        )

    def _before_run(
        self, text: str, start: int, runs: dict[int, int], starts: list[int], learned: Learned
    ) -> None:
        """Cues in the words before a run: possession, making, a title, a role, a place."""
        if at_sentence_start(text, start):  # no cue crosses a sentence end; most runs stop here
            return
        left = max(0, start - LOOK_BACK)
        words = TOKEN_RE.findall(text, left, start)
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
            if not is_mod(word) or mods == 5:
                break
            index, mods = index - 1, mods + 1
        after_the = last - (words[last] == "the")
        word = words[after_the] if after_the >= 0 else ""
        if word in PLACE_PREPOSITIONS and PHRASE_END_RE.match(text, runs[start]):
            self._list(text, start, runs, learned.places)
        if self._role_before(words, after_the) or self._counterparty(words, after_the):
            self._list(text, start, runs, learned.third_party)
        title = last - (words[last] == ",")
        if (
            title >= 0
            and words[title].casefold() in TITLE_WORDS
            and PERSON_RE.fullmatch(text[start : runs[start]])
        ):
            self._capture(text, start, runs, learned, KIND_PERSON, "officer", start)

    def _possessed(
        self,
        text: str,
        start: int,
        runs: dict[int, int],
        learned: Learned,
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
        left = max(0, its_at - 2 * LOOK_BACK)
        index = bisect_left(starts, its_at) - 1
        name_end = left
        while index >= 0 and starts[index] >= left:
            run = text[starts[index] : runs[starts[index]]]
            if self.has_entity(run):
                return True
            if not all(t in GENERIC_WORDS or PLURAL_ACRONYM_RE.fullmatch(t) for t in run.split(" ")):
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
            if words[index] not in ADVERBS:
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
        if index >= 0 and words[index] in ROLE_LINKERS:
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

    def _after_run(self, text: str, start: int, end: int, runs: dict[int, int], learned: Learned) -> None:
        """Cues after a run, and the entity's name inside it (a brand prefix)."""
        run = text[start:end]
        tokens = run.split(" ")
        rest = self.entity_split(tokens)
        if rest and len(rest) < len(tokens) and tokens[len(tokens) - len(rest) :] == rest:
            learned.add(
                " ".join(rest),
                False,
                Capture(KIND_PRODUCT, "brand prefix", snippet(text, start, end, 12), True),
            )
            self._coordinate(text, end, runs, learned, "brand prefix", start)
        if ORGANISATION_WORDS.intersection(tokens) and len(rest) == len(tokens):
            learned.organisation_tokens.update(tokens)
        if end >= len(text) or text[end] not in " ,\t\n":
            return
        # The next word decides which patterns can match at all: most runs try none of them.
        after = NEXT_WORD_RE.match(text, end)
        comma, word = bool(after.group(1)), after.group(2)
        if " by " in text[end : end + 60]:
            made = self.made_by_re.match(text, end)
            if made:
                cue = "made by the entity"
                self._capture(
                    text, start, runs, learned, KIND_PRODUCT, cue, start, strong=True, until=made.end()
                )
        if comma or word in COPULAS:
            for pattern in (self.copula_re, self.apposition_re):
                owned = pattern.match(text, end)
                if owned:
                    self._belongs(text, start, runs, learned, owned)
        if word in ("and", "or") and self.other_re.match(text, end):
            self._capture(text, start, runs, learned, KIND_PRODUCT, "listed with the entity's", start)
        if PERSON_RE.fullmatch(run):
            person = PERSON_AFTER_RE.match(text, end)
            if person and not FORMER_RE.search(person.group("window")):
                org = person.group("org")
                other = None if not org or self.has_entity(org) else org
                cue, until = "officer", person.end()
                self._capture(
                    text, start, runs, learned, KIND_PERSON, cue, start, until=until, other_org=other
                )
        if (comma or word in ROLE_VERBS) and ROLE_AFTER_RE.match(text, end):
            learned.third_party.add(self.plain(run))

    def _belongs(
        self, text: str, start: int, runs: dict[int, int], learned: Learned, owned: re.Match[str]
    ) -> None:
        """ "X is the entity's <what>" / "X, our <what>,": a product, an officer or a third party."""
        what = owned.group("what")
        run = text[start : runs[start]]
        if ROLE_WORD_RE.search(what):
            learned.third_party.add(self.plain(run))
        elif TITLE_RE.search(what):
            if PERSON_RE.fullmatch(run):
                self._capture(text, start, runs, learned, KIND_PERSON, "officer", start, until=owned.end())
        elif not PLACE_WORD_RE.match(what):
            self._capture(text, start, runs, learned, KIND_PRODUCT, "the entity's", start, until=owned.end())

    def _tickers(self, text: str, learned: Learned) -> None:
        patterns = [TICKER_PAREN_RE] if "(" in text else []
        if "ymbol" in text or "icker" in text:
            patterns.append(TICKER_WORD_RE)
        for pattern in patterns:
            for match in pattern.finditer(text):
                evidence = snippet(text, match.start(), match.end("t"), 12)
                learned.add(match.group("t"), False, Capture(KIND_TICKER, "ticker", evidence, True))

    def _capture(
        self,
        text: str,
        start: int,
        runs: dict[int, int],
        learned: Learned,
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
        if kind == KIND_PRODUCT and not strong and PLACE_AFTER_RE.match(text, end):
            learned.places[self.plain(run)] += 1  # "its Tacoma campus", "the Gaming market"
            return
        evidence = snippet(text, min(cue_start, start), max(end, until or end), width=24)
        learned.add(
            " ".join(self.entity_split(run.split(" "))),
            at_sentence_start(text, start),
            Capture(kind, cue, evidence, strong, other_org),
        )
        if kind == KIND_PRODUCT:
            self._coordinate(text, end, runs, learned, cue, cue_start)

    def _coordinate(
        self, text: str, end: int, runs: dict[int, int], learned: Learned, cue: str, cue_start: int
    ) -> None:
        """Names listed right after a tied one share its tie ("GeForce and NVIDIA RTX GPUs")."""
        for _ in range(50):  # a longer list is not a list of products
            more = COORD_RE.match(text, end)
            if not more or more.end() not in runs:
                return
            start = more.end()
            end = runs[start]
            evidence = snippet(text, cue_start, end, width=24)
            raw = " ".join(self.entity_split(text[start:end].split(" ")))
            learned.add(raw, False, Capture(KIND_PRODUCT, cue, evidence, False))

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
            more = LIST_RE.match(text, end)
            if not more or more.end() not in runs:
                return
            start = more.end()

    def plain(self, run: str) -> str:
        """A run without the entity's name, leading function words and a trailing plural acronym or
        legal suffix ("NVIDIA RTX GPUs" -> RTX): the key names are compared by."""
        tokens = self.entity_split(run.split(" "))
        while tokens and tokens[0].lower() in FUNCTION_WORDS:
            tokens = tokens[1:]
        while tokens and trailing_noise(tokens[-1]):
            tokens = tokens[:-1]
        return " ".join(tokens)
