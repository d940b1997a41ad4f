"""Checking an atomic claim against the entity profile: status, role and place contradictions.

``check_profile`` finds, for one (entity-masked) atomic claim, a **status** contradiction (a company
type the profile rules out: a start-up founded decades ago, with thousands of employees or a
listing; private or non-profit while listed; listed while non-profit or private), a **role**
confusion (the claim gives the company the role the sources give another party: "a robotics
start-up" when robotics start-ups are its competitors, "manufacturer of lidar systems" when
suppliers provide the lidar sensors) and a **place** contradiction (headquartered elsewhere,
founded in another year). ``confirm_profile`` finds a status or place the profile states.
Definitions and limits are in docs/METRICS.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from engine.metrics.profile.model import EntityProfile, ProfileFact
from engine.metrics.profile.phrases import (
    GENERIC_KEYS,
    noun_phrases,
    phrase_keys,
    split_noun_phrase,
    word_key,
)

# A company this old (years between its founding and the latest year the sources mention), this
# large, or listed, is no start-up. Generic cut-offs: start-up studies use up to 10 years and
# a few hundred employees.
STARTUP_MAX_AGE = 10
STARTUP_MAX_EMPLOYEES = 500


@dataclass
class ProfileFinding:
    """Why the profile contradicts a claim: the rule, the source sentence, what the source says, the culprit."""

    rule: str  # status | role | place
    sentence: str
    source_says: str
    culprit: str | None


_NEGATED = re.compile(r"\b(?:not|never|no longer|isn't|wasn't|aren't)\s+(?:\w+\s+){0,2}$", re.IGNORECASE)

_CLAIM_STARTUP = re.compile(
    r"\bstart[- ]?ups?\b|\bearly[- ]stage\b|\bnewly[- ](?:founded|formed|established)\b|\byoung (?:company|firm)\b",
    re.IGNORECASE,
)
_CLAIM_SMALL = re.compile(r"\bsmall(?:[- ]sized)? (?:company|firm|business|enterprise)\b", re.IGNORECASE)
_CLAIM_NONPROFIT = re.compile(
    r"\bnon-?profit\b|\bnot[- ]for[- ]profit\b|\bcharit(?:y|able organi[sz]ation)\b", re.I
)
_CLAIM_PRIVATE = re.compile(
    r"\bprivate(?:ly)?[- ](?:held|owned)\b|\bprivate (?:company|firm|corporation)\b"
    r"|\bnot publicly (?:traded|listed|held)\b|\bunlisted\b|\bfamily[- ]owned\b",
    re.IGNORECASE,
)
_CLAIM_LISTED = re.compile(
    r"\bpublicly[- ](?:traded|listed|held)\b|\blisted(?: on| company)?\b|\bpublic company\b|\btraded on\b",
    re.I,
)
_CLAIM_UNIT = re.compile(r"\bbusiness unit\b|\bdivision of\b|\bsubsidiary\b", re.IGNORECASE)
_CLAIM_HQ = re.compile(
    r"\b(?:headquartered|based|headquarters(?:\s+(?:is|are))?(?:\s+located)?)\s+in\s+"
    r"(?P<place>[A-Z][\w\-]*(?:[ ,]+[A-Z][\w\-]*)*)"
)
_CLAIM_FOUNDED = re.compile(
    r"\b(?:founded|established|incorporated)\s+(?:in\s+)?(?P<year>1[6-9]\d\d|20\d\d)\b"
)
_COPULA_NP = re.compile(r"\b(?:is|are|was|were|as|becomes?|remains?)\s+(?P<rest>.+)", re.IGNORECASE)
_PRODUCER = re.compile(
    r"\b(?:(?:maker|manufacturer|producer|designer|developer|supplier|builder|fabricator)s?\s+of"
    r"|design(?:s|ing)?|make(?:s)?|making|manufactur(?:es|ing|e)|build(?:s|ing)?|produc(?:es|ing|e)"
    r"|fabricat(?:es|ing|e)|assembl(?:es|ing|e)|suppl(?:ies|ying|y)|develop(?:s|ing)?)\s+(?P<rest>.+)",
    re.IGNORECASE,
)


def _established(profile: EntityProfile) -> tuple[ProfileFact, str] | None:
    """The strongest sign that the company is long established: (fact, what it says), or None."""
    founded = profile.first("founded")
    if founded and profile.latest_year and profile.latest_year - int(founded.value) >= STARTUP_MAX_AGE:
        return founded, f"founded in {founded.value}"
    employees = profile.first("employees")
    if employees and int(employees.value.replace(",", "")) > STARTUP_MAX_EMPLOYEES:
        return employees, f"{employees.value} employees"
    if profile.listed:
        return profile.listed, f"listed ({profile.listed.value})"
    return None


# The type is said of the company: after a copula or in an apposition ("X, a start-up, ..."), with
# no relation between ("competes with start-ups", "is popular with start-ups" say nothing of its type).
_PREDICATE_BEFORE = re.compile(
    r"(?:\b(?:is|are|was|were|as|becomes?|remains?)\b|^\s*,?\s*(?:an?|the)\b|,\s*(?:an?|the)\b)"
    r"(?P<between>(?:[\s,]+[\w&'’\-]+){0,6}?)\s*$",
    re.IGNORECASE,
)
_RELATION_WORDS = frozenset("with to for from by against than like among between serving selling".split())


def _unnegated(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The first match the claim says of the company (a predicate or apposition), not negated."""
    for match in pattern.finditer(text):
        before = text[: match.start()]
        predicate = _PREDICATE_BEFORE.search(before)
        if predicate is None or _NEGATED.search(before):
            continue
        if {w.lower() for w in re.findall(r"[\w'’\-]+", predicate.group("between"))} & _RELATION_WORDS:
            continue
        return match
    return None


def confirm_profile(claim: str, profile: EntityProfile | None) -> ProfileFinding | None:
    """A status or place the profile states, said by the (entity-masked) claim: listed, non-profit,
    private, headquarters, founding year. Rule 'profile', with the fact's sentence."""
    if profile is None:
        return None
    if (match := _unnegated(_CLAIM_LISTED, claim)) and profile.listed:
        return ProfileFinding(
            "profile", profile.listed.sentence, f"listed ({profile.listed.value})", match.group(0)
        )
    for pattern, what in ((_CLAIM_NONPROFIT, "non-profit"), (_CLAIM_PRIVATE, "private")):
        if (match := _unnegated(pattern, claim)) and (fact := profile.ownership(what)):
            return ProfileFinding("profile", fact.sentence, what, match.group(0))
    headquarters = profile.first("headquarters")
    if headquarters and (match := _CLAIM_HQ.search(claim)):
        said = {w.lower() for w in re.findall(r"[A-Za-z]+", match.group("place"))}
        if said and said <= {w.lower() for w in re.findall(r"[A-Za-z]+", headquarters.value)}:
            return ProfileFinding(
                "profile", headquarters.sentence, f"headquarters: {headquarters.value}", None
            )
    founded = profile.first("founded")
    if founded and (match := _CLAIM_FOUNDED.search(claim)) and match.group("year") == founded.value:
        return ProfileFinding("profile", founded.sentence, f"founded in {founded.value}", None)
    return None


def check_profile(claim: str, profile: EntityProfile | None) -> ProfileFinding | None:
    """The first profile rule the (entity-masked) claim breaks, or None."""
    if profile is None:
        return None
    return _status(claim, profile) or _role(claim, profile) or _place(claim, profile)


def _status(claim: str, profile: EntityProfile) -> ProfileFinding | None:
    if match := _unnegated(_CLAIM_STARTUP, claim):
        if established := _established(profile):
            fact, says = established
            return ProfileFinding("status", fact.sentence, f"no start-up: {says}", match.group(0))
    if (match := _unnegated(_CLAIM_SMALL, claim)) and (profile.employees or 0) > STARTUP_MAX_EMPLOYEES:
        fact = profile.first("employees")
        return ProfileFinding("status", fact.sentence, f"{fact.value} employees", match.group(0))  # type: ignore[union-attr]
    listed = profile.listed
    if listed:
        for pattern, what in (
            (_CLAIM_PRIVATE, "private"),
            (_CLAIM_NONPROFIT, "non-profit"),
            (_CLAIM_UNIT, "a unit"),
        ):
            if (match := _unnegated(pattern, claim)) and not profile.ownership(what):
                return ProfileFinding(
                    "status",
                    listed.sentence,
                    f"a listed company ({listed.detail or listed.value})",
                    match.group(0),
                )
    if match := _unnegated(_CLAIM_LISTED, claim):
        for what in ("non-profit", "private"):
            if (fact := profile.ownership(what)) and not listed:
                return ProfileFinding("status", fact.sentence, f"a {what} organisation", match.group(0))
    if (match := _unnegated(_CLAIM_PRIVATE, claim)) and (fact := profile.ownership("non-profit")):
        if not _CLAIM_NONPROFIT.search(claim):
            return ProfileFinding("status", fact.sentence, "a non-profit organisation", match.group(0))
    if (match := _unnegated(_CLAIM_NONPROFIT, claim)) and (fact := profile.ownership("private")):
        return ProfileFinding("status", fact.sentence, "a privately held company", match.group(0))
    return None


def _role(claim: str, profile: EntityProfile) -> ProfileFinding | None:
    own = profile.own_keys
    parties = [party for party, _, _ in profile.party_phrases]
    # "ENTITY is a robotics start-up" when robotics start-ups are its competitors.
    for match in _COPULA_NP.finditer(claim):
        if _NEGATED.search(claim[: match.start() + len(match.group(0)) - len(match.group("rest"))]):
            continue
        for phrase in noun_phrases(match.group("rest")):
            head, mods = split_noun_phrase(phrase)
            if not head:
                continue
            for party, party_head, party_mods in profile.party_phrases:
                if party.role == "partner":
                    continue  # partners often share the company's own trade
                shared = mods & party_mods
                if party_head != head or (party_mods and not shared):
                    continue
                if head in GENERIC_KEYS and not shared:
                    continue  # "a provider", "a company": the head alone names no role
                if (shared and shared <= own) or (not party_mods and head in own):
                    continue  # the shared words describe the company's own offerings too
                return ProfileFinding("role", party.sentence, f"{party.value}: its {party.role}s", phrase)
            if finding := _business_of_others(head, mods, phrase, profile):
                return finding
    # "designs lidar systems" / "manufacturer of lidar systems" when suppliers provide the lidar sensors.
    supplied = [p for p in parties if p.role == "supplier" and p.detail]
    for match in _PRODUCER.finditer(claim):
        if _NEGATED.search(claim[: match.start()]):
            continue
        for phrase in noun_phrases(match.group("rest")):
            words = set(phrase_keys(phrase)) - GENERIC_KEYS - _ACTIVITY_KEYS
            for party in supplied:
                shared = {
                    w
                    for w in words & set(phrase_keys(party.detail))
                    if w not in own and not _near_any(w, own)
                }
                if shared:
                    return ProfileFinding(
                        "role", party.sentence, f"{party.value} provide {party.detail}", phrase
                    )
    return None


# What suppliers *do* rather than provide ("all phases of the manufacturing process, including
# wafer fabrication, assembly, testing"): sharing these words is no sign of role confusion.
_ACTIVITY_KEYS = frozenset(
    word_key(w)
    for w in """manufacture manufacturing production produce process processes assembly assemble
    testing test packaging package phase phases fabrication design development supply service
    services part parts""".split()
)


def _business_of_others(
    head: str, mods: frozenset[str], phrase: str, profile: EntityProfile
) -> ProfileFinding | None:
    """'a logistics company' when logistics providers are its customers: a generic head ("company",
    "firm", "provider") whose every modifier names another party and none the company's own offerings."""
    if head not in GENERIC_KEYS or not mods:
        return None
    own = profile.own_keys
    if any(mod in own or _near_any(mod, own) for mod in mods):
        return None
    for party, party_head, party_mods in profile.party_phrases:
        if party.role == "partner":
            continue  # a partner's field may well be the company's own
        if mods <= party_mods | {party_head}:
            return ProfileFinding("role", party.sentence, f"{party.value}: its {party.role}s", phrase)
    return None


def _near_any(key: str, keys: Iterable[str]) -> bool:
    return len(key) >= 5 and any(len(k) >= 5 and (k.startswith(key) or key.startswith(k)) for k in keys)


def _place(claim: str, profile: EntityProfile) -> ProfileFinding | None:
    headquarters = profile.first("headquarters")
    if headquarters and (match := _CLAIM_HQ.search(claim)):
        said = {w.lower() for w in re.findall(r"[A-Za-z]+", match.group("place"))}
        known = {w.lower() for w in re.findall(r"[A-Za-z]+", headquarters.value)}
        if said and not said & known:
            return ProfileFinding(
                "place", headquarters.sentence, f"headquarters: {headquarters.value}", match.group("place")
            )
    founded = profile.first("founded")
    if founded and (match := _CLAIM_FOUNDED.search(claim)) and match.group("year") != founded.value:
        return ProfileFinding("place", founded.sentence, f"founded in {founded.value}", match.group("year"))
    return None
