"""Masking a company's name in a QA set: rules, a reviewable plan, an atomic apply, a leak report.

Workflow: ``propose_rules`` turns an entity name (plus ticker and aliases) into rules; ``plan`` finds
every occurrence in every string field with one combined regex and keeps the edits, each tagged with
the rule that found it; the user accepts or rejects rules, rows or single edits; ``apply`` writes a NEW
file atomically and records source, rules and output in the store; ``leak_report`` scans the result
(or any set) for the name, its aliases and near-misses such as ``N.V.I.D.I.A``.

Only the name itself is replaced: a possessive (``'s`` / ``’s``), a legal suffix (``Corporation``) or a
web domain's top-level part stays exactly as written, so ``NVIDIA's`` becomes ``EGNIVIA's``.

Modules: ``rules`` (propose_rules), ``matcher`` (one regex for all rules), ``plan`` (the
reviewable plan), ``names`` (names that identify the entity; its vocabulary in ``name_words``, the
reading of the sources' cues in ``name_cues``), ``leaks`` (leak report), ``invent``
(invented replacements for identifying names), ``apply`` (apply and undo). The
public names are re-exported here, so ``from engine import mask; mask.plan(...)`` keeps working.
"""

from __future__ import annotations

# The modules ``plan`` and ``apply`` share their names with functions re-exported below, and the
# functions win: inside the package, import from a module by its full name (engine.mask.plan).
from engine.mask.apply import (
    MaskResult,
    RecordedMask,
    apply,
    check_output,
    recorded_mask_for,
    recover_interrupted,
    require_changes,
    undo,
)
from engine.mask.invent import add_leak_rules, invent_replacement, leak_rules
from engine.mask.leaks import (
    Leak,
    LeakReport,
    closest_spelling,
    leak_report,
    leak_report_for_rules,
    plan_leak_report,
)
from engine.mask.names import IdentifyingName, identifying_names
from engine.mask.plan import (
    Edit,
    MaskPlan,
    RowDiff,
    SourceInfo,
    field_name,
    plan,
    plan_file,
)
from engine.mask.rules import (
    ALIAS_PREFIX,
    DOMAIN_TLDS,
    LEAK_PREFIX,
    LEGAL_SUFFIXES,
    RULE_DOMAIN,
    RULE_NAME,
    RULE_OTHER_CASING,
    RULE_POSSESSIVE,
    RULE_POSSESSIVE_CURLY,
    RULE_SUFFIX,
    RULE_TICKER,
    MaskRule,
    propose_rules,
    split_legal_suffix,
)

__all__ = [
    "ALIAS_PREFIX",
    "DOMAIN_TLDS",
    "Edit",
    "IdentifyingName",
    "LEAK_PREFIX",
    "LEGAL_SUFFIXES",
    "Leak",
    "LeakReport",
    "MaskPlan",
    "MaskResult",
    "MaskRule",
    "RULE_DOMAIN",
    "RecordedMask",
    "RULE_NAME",
    "RULE_OTHER_CASING",
    "RULE_POSSESSIVE",
    "RULE_POSSESSIVE_CURLY",
    "RULE_SUFFIX",
    "RULE_TICKER",
    "RowDiff",
    "SourceInfo",
    "add_leak_rules",
    "apply",
    "check_output",
    "closest_spelling",
    "field_name",
    "identifying_names",
    "invent_replacement",
    "leak_report",
    "leak_report_for_rules",
    "leak_rules",
    "plan",
    "plan_file",
    "plan_leak_report",
    "propose_rules",
    "recorded_mask_for",
    "recover_interrupted",
    "require_changes",
    "split_legal_suffix",
    "undo",
]
