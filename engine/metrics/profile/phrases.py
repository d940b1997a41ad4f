"""Noun phrases and word keys of the entity profile: what extraction and the checks compare.

``noun_phrases`` reads the coordinated noun phrases a fragment opens with ("retailers, third-party
logistics providers and parcel carriers"); ``word_key`` and ``phrase_keys`` turn words into the
keys facts and claims are compared by; ``split_noun_phrase`` gives a phrase's head and modifiers.
Generic English only, as everywhere in the profile.
"""

from __future__ import annotations

import functools
import re

from engine.metrics.text import _STOPWORDS, stem


@functools.lru_cache(maxsize=65536)
def word_key(word: str) -> str:
    """A word's stem with a trailing 'e' dropped and hyphens removed ('start-ups' = 'startup')."""
    stemmed = stem(word.replace("-", ""))
    return stemmed[:-1] if len(stemmed) > 4 and stemmed.endswith("e") else stemmed


def phrase_keys(phrase: str) -> list[str]:
    """The word keys of a phrase's content words (stop words and one-letter words left out)."""
    return [word_key(w) for w in _WORD.findall(phrase) if w.lower() not in _STOPWORDS and len(w) > 1]


_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9&'’\-]*")
# Words that end a noun phrase: prepositions, relative pronouns, auxiliaries, common verbs.
NP_END = frozenset(
    """for to in on at with by from through that which who whose whom including such across into via
    like while where when because as under over since during than is are was were be been being has
    have had could would may might can will should must if but so its their our his her accounted
    contributed reported ended ends held had relies rely depends depend uses use used competes compete
    sells sell buys buy serves serve include includes included designed made built sold based located
    headquartered founded established incorporated whereby instead according not also employ employs
    utilize utilizes using""".split()
)
_DETERMINERS = frozenset("a an the this these those its their our his her every each".split())
# Quantifier phrases in front of a party: "a limited number of suppliers", "over 13,000 startups".
QUANTIFIER = re.compile(
    r"^(?:(?:a|an|the)\s+)?(?:(?:limited|large|small|growing|rapidly growing|increasing|broad|wide)\s+)?"
    r"(?:number|range|variety|set|group|network|majority|handful|list)\s+of\s+"
    r"|^(?:hundreds|thousands|millions|dozens|many|several|some|all|most|various|key|certain|other"
    r"|over|more than|about|approximately|nearly|around)\s+(?:of\s+)?",
    re.IGNORECASE,
)
_LEADING_QUANTITY = frozenset("over about approximately nearly around more than some".split())
_COUNT = re.compile(r"^\d[\d,.]*\s+")


def noun_phrases(fragment: str, *, limit: int = 6) -> list[str]:
    """The coordinated noun phrases a fragment opens with: "retailers, third-party logistics
    providers and parcel carriers. Its ..." -> the three. Stops at a preposition, verb or clause end."""
    phrases: list[str] = []
    current: list[str] = []
    tokens = re.findall(
        r"\d{1,3}(?:,\d{3})+|[A-Za-z0-9][A-Za-z0-9&'’\-\.]*[A-Za-z0-9]|[A-Za-z0-9]|[,;:()&.]|['\"‘’“”]",
        fragment,
    )
    for position, token in enumerate(tokens):
        lowered = token.lower()
        if token in ("'", '"', "‘", "’", "“", "”"):
            continue
        if token == "&" and current and current[0][:1].isupper():
            current.append(token)
            continue
        if (
            lowered in ("and", "or", "&", ",")
            or lowered == "as"
            and tokens[position + 1 : position + 3] == ["well", "as"]
        ):
            if current:
                phrases.append(" ".join(current))
                current = []
            continue
        if lowered in ("well",) and position >= 1 and tokens[position - 1].lower() == "as":
            continue
        if not current and (lowered in _DETERMINERS or lowered in _LEADING_QUANTITY or token[0].isdigit()):
            continue
        if token in (";", ":", "(", ")", ".") or lowered in NP_END:
            break
        current.append(token)
        if len(current) > limit:
            current = current[:limit]
            break
    if current and len(current) <= limit:
        phrases.append(" ".join(current))
    cleaned = []
    for phrase in phrases:
        phrase = _COUNT.sub("", QUANTIFIER.sub("", QUANTIFIER.sub("", phrase)))
        words = phrase.split()
        while words and (words[0].lower() in _DETERMINERS or words[0].lower() in _STOPWORDS):
            words = words[1:]
        if words and any(w[0].isalpha() for w in words):
            cleaned.append(" ".join(words))
    return cleaned


# Heads too generic to name a role ("company", "provider of ...") or an object.
_GENERIC_HEADS = frozenset(
    """company corporation firm business organization organisation enterprise group provider leader
    player maker system systems solution solutions product products platform service services technology
    technologies unit units part parts equipment thing things""".split()
)
GENERIC_KEYS = frozenset(word_key(w) for w in _GENERIC_HEADS)


def split_noun_phrase(phrase: str) -> tuple[str, frozenset[str]]:
    """(head key, modifier keys) of a noun phrase; generic words are not modifiers."""
    keys = [k for k in phrase_keys(phrase) if k]
    if not keys:
        return "", frozenset()
    return keys[-1], frozenset(k for k in keys[:-1] if k not in GENERIC_KEYS)
