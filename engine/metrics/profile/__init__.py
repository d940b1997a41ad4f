"""The entity profile: what the sources say the company is, built once per source set, and the
checks of an atomic claim against it.

Extraction (``extract_profile``) reads attributes (founding year, headquarters, size, listing,
ownership, products), other parties with their roles and places from the source sentences with
generic English cues only; each fact keeps its source sentence. The checks (``check_profile``,
``confirm_profile``) find a status, role or place contradiction, or a confirmation, for one
atomic claim. Definitions and limits are in docs/METRICS.md.

Modules, bottom up: ``phrases`` (noun phrases and word keys), ``model`` (``ProfileFact``,
``EntityProfile``, ``profile_key``), then ``extract`` (building a profile) and ``checks`` (a claim
against a profile), which never import each other. The public names are re-exported here, so
``from engine.metrics import profile; profile.extract_profile(...)`` works.
"""

from __future__ import annotations

from engine.metrics.profile.checks import (
    STARTUP_MAX_AGE,
    STARTUP_MAX_EMPLOYEES,
    ProfileFinding,
    check_profile,
    confirm_profile,
)
from engine.metrics.profile.extract import ENTITY_TOKEN, extract_profile, source_sentences
from engine.metrics.profile.model import PROFILE_VERSION, EntityProfile, ProfileFact, profile_key
from engine.metrics.profile.phrases import noun_phrases, word_key

__all__ = [
    "ENTITY_TOKEN",
    "PROFILE_VERSION",
    "STARTUP_MAX_AGE",
    "STARTUP_MAX_EMPLOYEES",
    "EntityProfile",
    "ProfileFact",
    "ProfileFinding",
    "check_profile",
    "confirm_profile",
    "extract_profile",
    "noun_phrases",
    "profile_key",
    "source_sentences",
    "word_key",
]
