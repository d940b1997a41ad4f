"""Claim splitting: an answer into clauses, each clause into atomic claims, with their answer spans.

A clause is a sentence, or a coordinated clause of one ("...; ..." / "..., but ..."). Each clause is
split further into **atomic claims** (the FActScore idea, done with rules): coordinated objects and
predicates become separate claims sharing the rest of the clause ("designs A and B" -> "designs A",
"designs B"), and a copular clause's relative clause becomes its own claim ("is a start-up that
designs robots" -> "is a start-up", "designs robots"). Each atomic claim keeps the character
segments of the answer it is made of.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engine.metrics.text import _phrase, words

_CLAUSE_BREAK = re.compile(
    r";\s+"
    r"|,\s+(?:but|while|whereas|although|yet)\s+(?!not limited\b)"
    r"|\s+(?:but|whereas|although)\s+(?!not limited\b)"
    r"|,?\s+while\s+(?=still\b|also\b|it\b|they\b|the\b)"
    r"|,\s+and\s+(?=(?:it|they|we|he|she|this|its|their|the company)\b)",
    re.IGNORECASE,
)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")
_MIN_CLAIM_WORDS = 3


def split_claims(text: str) -> list[tuple[str, int, int]]:
    """(claim, start, end) spans: sentences, then coordinated clauses of 3+ words each."""
    spans: list[tuple[int, int]] = []
    position = 0
    for match in [*SENTENCE_END.finditer(text), None]:
        end = match.start() if match else len(text)
        spans.extend(_clauses(text, position, end))
        position = match.end() if match else len(text)
    claims = []
    for start, end in spans:
        piece = text[start:end]
        lead = len(piece) - len(piece.lstrip())
        piece = piece.strip()
        if piece and len(words(piece)) >= 1:
            claims.append((piece, start + lead, start + lead + len(piece)))
    return claims


def _clauses(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Split one sentence at clause breaks, keeping a part that would be under 3 words with its neighbour."""
    cuts = [start]
    for match in _CLAUSE_BREAK.finditer(text, start, end):
        left = text[cuts[-1] : match.start()]
        right = text[match.end() : end]
        if len(words(left)) >= _MIN_CLAIM_WORDS and len(words(right)) >= _MIN_CLAIM_WORDS:
            cuts.extend([match.start(), match.end()])
    cuts.append(end)
    return [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts), 2)]


# ------------------------------------------------------------------ atomic claims

# Tokens of a clause: figures, words (hyphens, apostrophes, inner dots), and the punctuation that
# separates list items.
_TOKEN_RE = re.compile(
    r"\$?\d[\d,]*(?:\.\d+)?%?|[A-Za-z0-9][A-Za-z0-9&'’\-\.]*[A-Za-z0-9%]|[A-Za-z0-9]|[,;:&()]"
)
_COORDINATORS = frozenset({"and", "or", "&", "and/or"})
# Words a conjunct never crosses: prepositions, relative pronouns, copulas and auxiliaries.
_CONJUNCT_END = frozenset(
    """for to in on at with by from through that which who whose whom including such across into via like
    while where when because as under over since during than of is are was were be been being has have
    had can could will would may might should must not also its their our his her a an the this these
    those whereby""".split()
)
_DETERMINER = frozenset("a an the this these those its their our his her".split())
_COPULAS = frozenset("is are was were".split())
_RELATIVES = frozenset("that which who".split())
_SUBJECT_WORDS = frozenset("it they he she we this the company corporation inc".split())
# Verbs companies are described with; a word in this list (or after "that") opens a predicate.
_PREDICATE_VERBS = frozenset(
    """design designs designing make makes making manufacture manufactures manufacturing build builds
    building sell sells selling offer offers offering provide provides providing develop develops
    developing produce produces producing operate operates operating run runs running deliver delivers
    delivering supply supplies supplying distribute distributes distributing create creates creating
    own owns owning serve serves serving focus focuses focusing specialize specializes specializing
    specialise specialises enable enables enabling help helps helping use uses using support supports
    supporting schedule schedules scheduling monitor monitors monitoring move moves moving invest
    invests investing program programs programming train trains training ship ships shipping market
    markets marketing sells engineer engineers engineering install installs installing maintain
    maintains maintaining assemble assembles assembling power powers powering trade trades trading""".split()
)
_MAX_CONJUNCT = 6  # words; longer "conjuncts" are clauses the rules do not split


@dataclass(frozen=True)
class _Tok:
    text: str
    start: int
    end: int
    index: int  # position in the clause's token list (shared tokens are the same object in atoms)


def _tokens(text: str, start: int, end: int) -> list[_Tok]:
    return [
        _Tok(m.group(0), m.start(), m.end(), i) for i, m in enumerate(_TOKEN_RE.finditer(text, start, end))
    ]


def _is_verb(tokens: Sequence[_Tok], i: int, predicate: int | None) -> bool:
    word = tokens[i].text.lower()
    if i == predicate or word in _PREDICATE_VERBS:
        return True
    return i > 0 and tokens[i - 1].text.lower() in _RELATIVES and word.endswith(("s", "ing", "ed"))


def _predicate_start(tokens: Sequence[_Tok], entity: str | None) -> int | None:
    """Index of the clause's first predicate word: after the entity (or a pronoun) that opens it."""
    i = 0
    entity_words = {w.lower() for w in words(entity or "")}
    while (
        i < len(tokens)
        and i < 4
        and (
            tokens[i].text.lower() in entity_words
            or tokens[i].text.lower() in _SUBJECT_WORDS
            or tokens[i].text.lower() in ("'s", ",")
            or tokens[i].text.rstrip(".").lower() in ("inc", "corp", "ltd", "llc", "corporation")
        )
    ):
        i += 1
    if 0 < i < len(tokens) and tokens[i].text[:1].islower():
        return i
    return None


def _split_relative(tokens: list[_Tok]) -> list[list[_Tok]]:
    """'X is a NP that VP' -> 'X is a NP', 'X VP' (only after a copula, where the NP is X)."""
    for c, token in enumerate(tokens[:6]):
        if token.text.lower() in _COPULAS:
            for r in range(c + 2, min(len(tokens), c + 2 + _MAX_CONJUNCT)):
                word = tokens[r].text.lower()
                if word in _RELATIVES and r + 1 < len(tokens):
                    return [tokens[:r], tokens[:c] + tokens[r + 1 :]]
                if word in _CONJUNCT_END - _DETERMINER or word in (",", ";"):
                    return [tokens]
            return [tokens]
    return [tokens]


def _conjunct_right(tokens: Sequence[_Tok], i: int) -> int:
    """End (exclusive) of the conjunct starting at i: up to a boundary, a comma or another coordinator."""
    j = i
    while j < len(tokens) and j - i < _MAX_CONJUNCT + 1:
        word = tokens[j].text.lower()
        if word in (",", ";", ":", "(", ")") or word in _COORDINATORS:
            break
        if word in _CONJUNCT_END and not (j == i and word in _DETERMINER):
            break
        j += 1
    return j


def _conjunct_left(tokens: Sequence[_Tok], i: int, predicate: int | None) -> int:
    """Start of the conjunct ending at i (inclusive): back to a boundary, a comma or a verb."""
    j = i
    while j >= 0 and i - j < _MAX_CONJUNCT:
        word = tokens[j].text.lower()
        if word in (",", ";", ":", "(", ")") or word in _COORDINATORS or word in _CONJUNCT_END:
            break
        if _is_verb(tokens, j, predicate):
            return j if j == i else j + 1  # a verb ends the conjunct, unless it is the conjunct
        j -= 1
    return j + 1


def _coordination(
    tokens: list[_Tok], predicate: int | None, phrase_text: str
) -> tuple[list[tuple[int, int]], int] | None:
    """The first coordination rules can split: ([(start, end) of each conjunct], end of the shared
    object for verb coordinations or -1)."""
    for c, token in enumerate(tokens):
        if token.text.lower() not in _COORDINATORS or c == 0 or c + 1 >= len(tokens):
            continue
        left_end = c - 1 if tokens[c - 1].text != "," else c - 2
        if left_end < 0:
            continue
        right = (c + 1, _conjunct_right(tokens, c + 1))
        left = (_conjunct_left(tokens, left_end, predicate), left_end + 1)
        if right[1] <= right[0] or left[1] <= left[0]:
            continue
        conjuncts = [left, right]
        verb_pair = left[1] - left[0] == 1 and _is_verb(tokens, left[0], predicate)
        verb_pair = verb_pair and (_is_verb(tokens, right[0], predicate) or _same_form(tokens, conjuncts))
        # More items after: "A, B and C and D" (a list that goes on past the first coordinator).
        while (
            not verb_pair
            and conjuncts[-1][1] + 1 < len(tokens)
            and (
                tokens[conjuncts[-1][1]].text.lower() in _COORDINATORS or tokens[conjuncts[-1][1]].text == ","
            )
        ):
            nxt = conjuncts[-1][1] + 1
            if tokens[nxt].text.lower() in _COORDINATORS:
                nxt += 1
            end = _conjunct_right(tokens, nxt)
            if end <= nxt:
                break
            conjuncts.append((nxt, end))
        # More items of a list: "computers, tablets, and smartphones".
        while conjuncts[0][0] >= 2 and tokens[conjuncts[0][0] - 1].text == ",":
            end = conjuncts[0][0] - 2
            start = _conjunct_left(tokens, end, predicate)
            if start > end or end - start + 1 > 4:
                break
            conjuncts.insert(0, (start, end + 1))
        pieces = [" ".join(t.text for t in tokens[a:b]) for a, b in conjuncts]
        if any(any(ch.isdigit() for ch in piece) for piece in pieces):
            continue  # figures in lists are left to the figure rules, paired with their context
        span = " ".join(t.text for t in tokens[conjuncts[0][0] : conjuncts[-1][1]])
        if _phrase(span) in phrase_text:
            continue  # the sources say it word for word ("research and development")
        verbs = [_is_verb(tokens, a, predicate) and b - a == 1 for a, b in conjuncts[:-1]]
        if all(verbs) and _is_verb(tokens, conjuncts[-1][0], predicate) | _same_form(tokens, conjuncts):
            last = conjuncts[-1]
            return [(a, b) for a, b in conjuncts[:-1]] + [(last[0], last[0] + 1)], len(tokens)
        return conjuncts, -1
    return None


def _same_form(tokens: Sequence[_Tok], conjuncts: Sequence[tuple[int, int]]) -> bool:
    """Coordinated words with one verb ending ("designs and programs", "designing and operating")."""
    first = tokens[conjuncts[0][0]].text.lower()
    other = tokens[conjuncts[-1][0]].text.lower()
    for ending in ("ing", "es", "s", "ed"):
        if first.endswith(ending) and other.endswith(ending):
            return not first.endswith(("ics", "ss")) and conjuncts[0][1] - conjuncts[0][0] == 1
    return False


def _predicate_coordination(tokens: list[_Tok], predicate: int | None) -> list[list[_Tok]] | None:
    """'X designs robots and sells software' -> 'X designs robots', 'X sells software'."""
    if predicate is None:
        return None
    verb = tokens[predicate].text.lower()
    for c in range(predicate + 2, len(tokens) - 1):
        if tokens[c].text.lower() not in _COORDINATORS:
            continue
        nxt = tokens[c + 1].text.lower()
        same_form = verb.endswith("s") and nxt.endswith("s") and not nxt.endswith(("ics", "ss"))
        if nxt in _PREDICATE_VERBS and (
            same_form or verb in _COPULAS or verb.endswith("ed") == nxt.endswith("ed")
        ):
            end = c - 1 if tokens[c - 1].text == "," else c
            return [tokens[:end], tokens[:predicate] + tokens[c + 1 :]]
    return None


def _distribute(
    tokens: list[_Tok], predicate: int | None, phrase_text: str, depth: int = 0
) -> list[list[_Tok]]:
    """Split one token list at its first coordination, then each part again."""
    if depth == 0 and (halves := _predicate_coordination(tokens, predicate)) is not None:
        return [atom for half in halves for atom in _distribute(half, predicate, phrase_text, depth + 1)]
    found = _coordination(tokens, predicate, phrase_text) if depth < 6 else None
    if found is None:
        return [tokens]
    conjuncts, object_end = found
    first, last = conjuncts[0][0], conjuncts[-1][1]
    atoms = []
    if object_end >= 0:  # verbs sharing one object: "designs and programs robot fleets"
        shared_object = tokens[last:]
        for a, b in conjuncts:
            atoms.append(tokens[:first] + tokens[a:b] + shared_object)
    else:
        head: list[_Tok] = []
        left = conjuncts[0]
        right_words = conjuncts[-1][1] - conjuncts[-1][0]
        lone = left[1] - left[0] == 1 and tokens[left[0]].text
        if (
            len(conjuncts) == 2
            and lone
            and lone.islower()
            and right_words >= 2
            and (not lone.lower().endswith("s") or lone.lower().endswith("ics"))
            and not _is_verb(tokens, left[0], predicate)
        ):
            head = [tokens[conjuncts[-1][1] - 1]]  # "robotics and automation start-up": one shared head
        for n, (a, b) in enumerate(conjuncts):
            own = tokens[a:b] + (head if n < len(conjuncts) - 1 else [])
            atoms.append(tokens[:first] + own + tokens[last:])
    result = []
    for atom in atoms:
        result.extend(_distribute(atom, None if object_end < 0 else predicate, phrase_text, depth + 1))
    return result


@dataclass
class AtomicSpan:
    """One atomic claim before checking: its text and where it sits in the answer."""

    text: str
    start: int  # span of its own part (what sets it apart from the other claims of its clause)
    end: int
    segments: list[list[int]]  # every answer span its text is made of, in order
    clause: int


def atomic_claims(text: str, *, entity: str | None = None, phrase_text: str = "") -> list[AtomicSpan]:
    """The atomic claims of an answer (special tokens already removed), with their answer spans.

    ``phrase_text`` is the normalised sources (SourceIndex.phrase_text): a coordination the sources
    state word for word is not split.
    """
    atoms: list[AtomicSpan] = []
    for clause, (_, start, end) in enumerate(split_claims(text)):
        tokens = _tokens(text, start, end)
        if not tokens:
            continue
        parts: list[list[_Tok]] = []
        for piece in _split_relative(tokens):
            predicate = _predicate_start(piece, entity)
            parts.extend(_distribute(piece, predicate, phrase_text))
        unique: dict[tuple[int, ...], list[_Tok]] = {}
        for part in parts:
            unique.setdefault(tuple(t.index for t in part), part)
        parts = list(unique.values())
        shared = set.intersection(*[{t.index for t in part} for part in parts]) if len(parts) > 1 else set()
        for part in parts:
            own = [t for t in part if t.index not in shared] or part
            segments = _segments(part)
            atom_text = " ".join(text[a:b] for a, b in segments).strip()
            atoms.append(AtomicSpan(atom_text, own[0].start, own[-1].end, segments, clause))
    return atoms


def _segments(tokens: Sequence[_Tok]) -> list[list[int]]:
    """Runs of consecutive tokens as answer spans."""
    segments: list[list[int]] = []
    previous = None
    for token in tokens:
        if previous is not None and token.index == previous.index + 1:
            segments[-1][1] = token.end
        else:
            segments.append([token.start, token.end])
        previous = token
    return segments
