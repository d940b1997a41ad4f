"""Mask rules: what to search for and what replaces it, proposed from an entity name."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engine.configfile import check_name
from engine.errors import UserError

# Letters and digits (any script); the underscore counts as a separator so ``NVIDIA_driver`` is masked.
NOT_WORD_BEFORE = r"(?<![^\W_])"
NOT_WORD_AFTER = r"(?![^\W_])"

LEGAL_SUFFIXES = (
    "Corporation",
    "Corp.",
    "Corp",
    "Incorporated",
    "Inc.",
    "Inc",
    "Limited",
    "Ltd.",
    "Ltd",
    "L.L.C.",
    "LLC",
    "PLC",
    "Co.",
    "GmbH",
    "S.A.",
    "N.V.",
    "AG",
    "SE",
    "Holdings",
)
DOMAIN_TLDS = (
    "com",
    "net",
    "org",
    "io",
    "ai",
    "co",
    "dev",
    "app",
    "info",
    "biz",
    "tech",
    "cloud",
    "us",
    "uk",
    "de",
    "cn",
    "jp",
    "fr",
    "eu",
)

# Rule ids. Name forms are split by how the name is written so a user can reject, say, lowercase
# matches of a name that is also an ordinary word ("apple").
RULE_NAME = "name"
RULE_POSSESSIVE = "possessive"
RULE_POSSESSIVE_CURLY = "possessive-curly"
RULE_SUFFIX = "suffix"
RULE_OTHER_CASING = "other-casing"
RULE_DOMAIN = "domain"
RULE_TICKER = "ticker"
ALIAS_PREFIX = "alias:"
# A name that identifies the entity (a product, a person, a ticker), added from the leak report.
LEAK_PREFIX = "leak:"

SUFFIX_RE = "|".join(re.escape(s) for s in sorted(LEGAL_SUFFIXES, key=len, reverse=True))
TLD_RE = "|".join(sorted(DOMAIN_TLDS, key=len, reverse=True))


@dataclass(frozen=True)
class MaskRule:
    """One kind of occurrence to replace. ``target`` is what is searched; ``replacement`` replaces
    only the name part of a match (a suffix or possessive stays as written)."""

    id: str
    label: str
    target: str
    replacement: str
    case_sensitive: bool = False
    drop_suffix: bool = (
        False  # suffix rule only: "NVIDIA Corporation" -> "EGNIVIA" instead of "EGNIVIA Corporation"
    )


def name_rule(rules: Sequence[MaskRule]) -> MaskRule | None:
    """The rule that masks the entity's own name (not an alias, the ticker or an identifying name)."""
    return next(
        (r for r in rules if not r.id.startswith((ALIAS_PREFIX, LEAK_PREFIX)) and r.id != RULE_TICKER), None
    )


def split_legal_suffix(name: str) -> str:
    """'Apple Inc.' -> 'Apple'; a name without a legal suffix is returned stripped."""
    pattern = re.compile(rf",?\s+(?:{SUFFIX_RE})$", re.IGNORECASE)
    core = pattern.sub("", name.strip())
    return core or name.strip()


def literal_pattern(text: str) -> str:
    """Regex for ``text`` where any run of whitespace matches any run of whitespace."""
    return r"\s+".join(re.escape(part) for part in text.split())


def _domain_label(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _default_new_ticker(ticker: str, new_name: str) -> str:
    letters = re.sub(r"[^A-Z0-9]", "", new_name.upper())
    return (letters[: len(ticker)] or "XXXX").ljust(len(ticker), "X")


def propose_rules(
    entity: str,
    *,
    new_name: str,
    ticker: str | None = None,
    new_ticker: str | None = None,
    aliases: Sequence[str] = (),
    keep_suffix: bool = True,
) -> list[MaskRule]:
    """The rules that mask ``entity`` as ``new_name``.

    ``aliases`` are other names of the company; ``"OLD=NEW"`` gives an alias its own replacement.
    A ticker of four or more characters is matched in any casing, a shorter one only as written.
    """
    # Names end up in the masked set itself: a bidi override or zero-width space would hide in it.
    for label, value in (("entity", entity), ("new name", new_name), ("ticker", ticker), ("new ticker", new_ticker)):
        if value:
            check_name(value, label=label, source="mask")
    for raw in aliases:
        check_name(raw, label="alias", source="mask")
    core = split_legal_suffix(entity)
    new = new_name.strip()
    if not core:
        raise UserError("entity name is empty")
    if not new:
        raise UserError("new name is empty")
    if core.casefold() == new.casefold():
        raise UserError(f"new name {new!r} is the entity name itself")
    if not any(ch.isalnum() for ch in core):
        raise UserError(f"entity name {entity!r} has no letters or digits")
    rules = [
        MaskRule(RULE_NAME, f"{core} (as written)", core, new, case_sensitive=True),
        MaskRule(RULE_POSSESSIVE, f"{core}'s (possessive, straight apostrophe)", core, new, True),
        MaskRule(RULE_POSSESSIVE_CURLY, f"{core}\u2019s (possessive, curly apostrophe)", core, new, True),
        MaskRule(
            RULE_SUFFIX,
            f"{core} + legal suffix (Corporation, Inc., Ltd., ...)",
            core,
            new,
            True,
            drop_suffix=not keep_suffix,
        ),
        MaskRule(
            RULE_OTHER_CASING, f"{core} in another casing ({core.title()}, {core.lower()}, ...)", core, new
        ),
        MaskRule(
            RULE_DOMAIN, f"web domains ({_domain_label(core)}.com, ...)", core, _domain_label(new) or new
        ),
    ]
    if ticker and ticker.strip():
        symbol = ticker.strip()
        replacement = (new_ticker or "").strip() or _default_new_ticker(symbol, new)
        rules.append(
            MaskRule(RULE_TICKER, f"ticker {symbol}", symbol, replacement, case_sensitive=len(symbol) < 4)
        )
    seen = {core.casefold()}
    for raw in aliases:
        alias, _, alias_new = raw.partition("=")
        alias = alias.strip()
        if not alias or alias.casefold() in seen:
            continue
        seen.add(alias.casefold())
        rules.append(MaskRule(ALIAS_PREFIX + alias, f"alias {alias}", alias, alias_new.strip() or new))
    _refuse_self_naming(rules)
    return rules


def _refuse_self_naming(rules: Sequence[MaskRule]) -> None:
    """A replacement that contains a name being masked (NVIDIA -> NVIDIAX) would leak it again."""
    # A short ticker (matched case-sensitively, as a word) may well sit inside an invented name.
    targets = [r.target for r in rules if r.id != RULE_DOMAIN and not (r.id == RULE_TICKER and len(r.target) < 4)]
    for rule in rules:
        for target in targets:
            new, old = rule.replacement.casefold(), target.casefold()
            if old in new and new != old:
                raise UserError(
                    f"replacement {rule.replacement!r} ({rule.label}) contains {target!r}: "
                    "the masked set would still name the company; choose a name without it"
                )
