"""All rules compiled into one regex; a match names the rule that found it."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from engine.errors import UserError
from engine.mask.rules import (
    ALIAS_PREFIX,
    LEAK_PREFIX,
    NOT_WORD_AFTER,
    NOT_WORD_BEFORE,
    RULE_DOMAIN,
    RULE_NAME,
    RULE_OTHER_CASING,
    RULE_POSSESSIVE,
    RULE_POSSESSIVE_CURLY,
    RULE_SUFFIX,
    RULE_TICKER,
    SUFFIX_RE,
    TLD_RE,
    MaskRule,
    literal_pattern,
)


@dataclass(frozen=True)
class _Alternative:
    group: str
    core_group: str
    rule_id: str | None  # None: name forms, classified by casing
    suffix_group: str | None = None


class Matcher:
    """All rules compiled into ONE regex; each alternative is a named group so a match names its rule."""

    def __init__(self, rules: Sequence[MaskRule]):
        self.rules = {rule.id: rule for rule in rules}
        if len(self.rules) != len(rules):
            raise UserError("two mask rules share an id")
        parts: list[str] = []
        self.alternatives: dict[str, _Alternative] = {}

        def add(group: str, body: str, rule_id: str | None, suffix: bool = False) -> None:
            parts.append(f"(?P<{group}>{body})")
            self.alternatives[group] = _Alternative(
                group, f"{group}_c", rule_id, f"{group}_s" if suffix else None
            )

        # Aliases and identifying names are plain words to replace; the longest is tried first.
        alias_rules = sorted(
            (r for r in rules if r.id.startswith((ALIAS_PREFIX, LEAK_PREFIX))),
            key=lambda r: len(r.target),
            reverse=True,
        )
        for number, rule in enumerate(alias_rules):
            add(f"a{number}", f"(?P<a{number}_c>{self._flagged(rule)}){NOT_WORD_AFTER}", rule.id)
        name_rule = next(
            (r for r in rules if r.id in (RULE_NAME, RULE_POSSESSIVE, RULE_POSSESSIVE_CURLY, RULE_SUFFIX)),
            None,
        )
        core_any_case = f"(?i:{literal_pattern(name_rule.target)})" if name_rule else None
        if RULE_DOMAIN in self.rules:
            domain_core = f"(?i:{literal_pattern(self.rules[RULE_DOMAIN].target)})"
            add("dom", rf"(?P<dom_c>{domain_core})\.(?i:{TLD_RE}){NOT_WORD_AFTER}", RULE_DOMAIN)
        if name_rule is not None or RULE_OTHER_CASING in self.rules:
            target = (name_rule or self.rules[RULE_OTHER_CASING]).target
            self.core = target
            # Other casings are only matched when their rule is present.
            core = core_any_case if RULE_OTHER_CASING in self.rules else literal_pattern(target)
            if core is None:
                core = f"(?i:{literal_pattern(target)})"
            add("suf", rf"(?P<suf_c>{core})(?P<suf_s>,?[ \t]+(?i:{SUFFIX_RE})){NOT_WORD_AFTER}", None, True)
            add("pcu", rf"(?P<pcu_c>{core})\u2019[sS]{NOT_WORD_AFTER}", None)
            add("pst", rf"(?P<pst_c>{core})'[sS]{NOT_WORD_AFTER}", None)
            add("bare", rf"(?P<bare_c>{core}){NOT_WORD_AFTER}", None)
        else:
            self.core = None
        if RULE_TICKER in self.rules:
            add("tick", rf"(?P<tick_c>{self._flagged(self.rules[RULE_TICKER])}){NOT_WORD_AFTER}", RULE_TICKER)
        self.regex = re.compile(NOT_WORD_BEFORE + "(?:" + "|".join(parts) + ")") if parts else None
        # Lowercased first word of every target: each match of the regex starts with one of them.
        self.needles = sorted({rule.target.split()[0].lower() for rule in rules if rule.target.split()})
        self._form_rule = {
            "suf": RULE_SUFFIX,
            "pcu": RULE_POSSESSIVE_CURLY,
            "pst": RULE_POSSESSIVE,
            "bare": RULE_NAME,
        }
        self._core_exact = re.compile(literal_pattern(self.core)) if self.core else None

    @staticmethod
    def _flagged(rule: MaskRule) -> str:
        body = literal_pattern(rule.target)
        return f"(?-i:{body})" if rule.case_sensitive else f"(?i:{body})"

    def _matches(self, text: str) -> list[re.Match[str]]:
        """The regex's matches, found fast: every match starts with one of the targets' first words,
        so ``str.find`` on the lowercased text gives the only positions worth trying."""
        assert self.regex is not None
        lowered = text.lower()
        if len(lowered) != len(text):  # lowercasing changed offsets (rare scripts): scan everything
            return list(self.regex.finditer(text))
        starts: list[int] = []
        for needle in self.needles:
            position = lowered.find(needle)
            while position != -1:
                starts.append(position)
                position = lowered.find(needle, position + 1)
        if not starts:
            return []
        if len(self.needles) > 1:
            starts.sort()
        matches: list[re.Match[str]] = []
        end = 0
        for position in starts:
            if position < end:
                continue
            match = self.regex.match(text, position)
            if match is not None:
                end = match.end()
                matches.append(match)
        return matches

    def edits_in_many(self, texts: Sequence[str]) -> list[tuple[int, int, int, str, str]]:
        """(text index, start, end, new text, rule id) for every occurrence in every text.

        One lowercase copy of all texts joined, one ``find`` sweep per needle, and a bisect to map a
        hit back to its text: per-field Python overhead only where a target actually occurs.
        """
        if self.regex is None or not texts:
            return []
        # Lowercase text by text: pure-ASCII fields take CPython's fast path, one big mixed string would not.
        lowered_parts = [text.lower() for text in texts]
        if any(len(low) != len(text) for low, text in zip(lowered_parts, texts, strict=True)):
            # Lowercasing changed offsets (rare scripts): go text by text.
            return [(i, *edit) for i, text in enumerate(texts) for edit in self.edits_in(text)]
        lowered = "\x00".join(lowered_parts)
        offsets: list[int] = []
        position = 0
        for text in texts:
            offsets.append(position)
            position += len(text) + 1
        hits: list[int] = []
        for needle in self.needles:
            position = lowered.find(needle)
            while position != -1:
                hits.append(position)
                position = lowered.find(needle, position + 1)
        hits.sort()
        found: list[tuple[int, int, int, str, str]] = []
        last_text, last_end = -1, 0
        for hit in hits:
            index = bisect_right(offsets, hit) - 1
            local = hit - offsets[index]
            if index == last_text and local < last_end:
                continue
            match = self.regex.match(texts[index], local)
            if match is None:
                continue
            last_text, last_end = index, match.end()
            edit = self._edit(texts[index], match)
            if edit is not None:
                found.append((index, *edit))
        return found

    def _edit(self, text: str, match: re.Match[str]) -> tuple[int, int, str, str] | None:
        alt = self.alternatives[match.lastgroup]  # type: ignore[index]
        core_start, core_end = match.span(alt.core_group)
        rule_id = alt.rule_id
        if rule_id is None:
            exact = self._core_exact.fullmatch(match.group(alt.core_group)) if self._core_exact else None
            if exact:
                form_rule = self._form_rule[alt.group]
                rule_id = form_rule if form_rule in self.rules else RULE_NAME
            else:
                rule_id = RULE_OTHER_CASING
            if rule_id not in self.rules:
                return None
        rule = self.rules[rule_id]
        start, end = match.span()
        if alt.suffix_group and rule.drop_suffix:
            # The suffix group ends the alternative, so the whole match becomes the new name.
            return start, end, text[start:core_start] + rule.replacement, rule_id
        return start, end, text[start:core_start] + rule.replacement + text[core_end:end], rule_id

    def edits_in(self, text: str) -> list[tuple[int, int, str, str]]:
        """(start, end, new text, rule id) for every occurrence in ``text``."""
        if self.regex is None:
            return []
        found: list[tuple[int, int, str, str]] = []
        for match in self._matches(text):
            edit = self._edit(text, match)
            if edit is not None:
                found.append(edit)
        return found
