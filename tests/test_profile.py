"""The entity profile on three companies' sources, and every rule it feeds, firing and not firing.

Source sets: the NVIDIA 10-K contexts (../shared/seed-data/EGNIVIA-train.jsonl, skipped when the
shared seed data is absent), the bundled sample set (ZYTRELL, warehouse robots) and
tests/fixtures/kestova_health_qa.jsonl (KESTOVA, a non-profit regional hospital network written
for these tests). No rule names any of their words: the same claim patterns are checked on each.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.metrics import claims as cm
from engine.metrics import profile as pm

REPO = Path(__file__).resolve().parents[1]
SEED = REPO.parent / "shared" / "seed-data"
NVIDIA = SEED / "EGNIVIA-train.jsonl"

SOURCE_SETS = {
    "EGNIVIA": NVIDIA,
    "ZYTRELL": REPO / "engine" / "data" / "sample_qa.jsonl",
    "KESTOVA": REPO / "tests" / "fixtures" / "kestova_health_qa.jsonl",
}


def _params() -> list:
    return [
        pytest.param(
            entity,
            marks=pytest.mark.skipif(not path.exists(), reason=f"seed data not found at {path}"),
            id=entity,
        )
        for entity, path in SOURCE_SETS.items()
    ]


@pytest.fixture(scope="module")
def indexes() -> dict[str, cm.EvidenceIndex]:
    return {
        entity: cm.load_evidence(str(path), entity, method="lexical")
        for entity, path in SOURCE_SETS.items()
        if path.exists()
    }


def _profile(entity: str) -> pm.EntityProfile:
    return pm.extract_profile(cm.dataset_contexts(str(SOURCE_SETS[entity])), entity)


def _decide(indexes: dict[str, cm.EvidenceIndex], entity: str, text: str) -> list[tuple[str, str]]:
    return [(c.decision, c.rule) for c in cm.check_claims(text, indexes[entity], entity=entity)]


# ---------------------------------------------------------------- what the profile holds

EXPECTED_FACTS = {
    # (kind, role or "", value) facts each profile must hold
    "EGNIVIA": {
        ("headquarters", "", "Santa Clara, California"),
        ("employees", "", "26,196"),
        ("party", "customer", "enterprises"),
        ("party", "customer", "startups"),
        ("party", "partner", "universities"),
        ("party", "partner", "independent software vendors"),
        ("party", "supplier", "foundries"),
        ("product", "segment", "Compute & Networking"),
        ("product", "product", "Omniverse"),  # "EGNIVIA Omniverse is a ... platform": a product
    },
    "ZYTRELL": {
        ("founded", "", "2004"),
        ("headquarters", "", "Tacoma, Washington"),
        ("employees", "", "11,300"),
        ("listing", "", "Nasdaq Global Select Market"),
        ("party", "customer", "retailers"),
        ("party", "customer", "third-party logistics providers"),
        ("party", "competitor", "robotics start-ups"),
        ("party", "supplier", "contract manufacturers"),
        ("party", "supplier", "suppliers"),
        ("product", "product", "fleet software"),
        ("product", "product", "Stridebot"),
        ("place", "", "Taiwan"),
    },
    "KESTOVA": {
        ("founded", "", "1921"),
        ("headquarters", "", "Boise, Idaho"),
        ("employees", "", "18,400"),
        ("ownership", "", "non-profit"),
        ("type", "", "non-profit regional hospital network"),
        ("party", "customer", "patients"),
        ("party", "competitor", "retail clinics"),
        ("party", "supplier", "medical device suppliers"),
        ("party", "partner", "Cascade State University"),
        ("product", "product", "outpatient clinics"),
        ("place", "", "Twin Falls"),
    },
}


@pytest.mark.parametrize("entity", _params())
def test_profile_holds_the_attributes_parties_and_places_of_each_source_set(entity: str) -> None:
    profile = _profile(entity)
    facts = {(f.kind, f.role, f.value) for f in profile.facts}
    assert EXPECTED_FACTS[entity] <= facts
    sentences = set(pm.source_sentences(cm.dataset_contexts(str(SOURCE_SETS[entity]))))
    assert all(f.sentence in sentences for f in profile.facts)  # every fact keeps its sentence
    # Listed companies only where the sources show it; the non-profit has "no shareholders".
    assert (profile.listed is not None) == (entity != "KESTOVA")
    # The key changes with the sources, the entity name and the extractor version.
    texts = cm.dataset_contexts(str(SOURCE_SETS[entity]))
    assert profile.key == pm.profile_key(texts, entity) != pm.profile_key([*texts, "One more."], entity)
    assert profile.key != pm.profile_key(texts, "OTHER")
    assert pm.EntityProfile.from_dict(profile.to_dict()) == profile


def test_supplier_parties_keep_what_they_provide() -> None:
    zytrell = {f.value: f.detail for f in _profile("ZYTRELL").of_kind("party", "supplier")}
    assert zytrell["suppliers"] == "lidar sensors, battery cells"
    assert zytrell["contract manufacturers"] == "assemble Stridebot units"
    kestova = {f.value: f.detail for f in _profile("KESTOVA").of_kind("party", "supplier")}
    assert kestova["medical device suppliers"] == "surgical robots, imaging equipment"
    assert kestova["distributors"] == "drugs, medical supplies"


# ---------------------------------------------------------------- the rules on three source sets

# entity -> (claims the rule must contradict, claims it must leave alone), same patterns per set.
STATUS = {
    "EGNIVIA": (["EGNIVIA is a start-up.", "EGNIVIA is a non-profit."], ["EGNIVIA partners with startups."]),
    "ZYTRELL": (
        ["ZYTRELL is a robotics start-up.", "ZYTRELL is a non-profit.", "ZYTRELL is privately held."],
        ["ZYTRELL competes with robotics start-ups.", "ZYTRELL is not a start-up."],
    ),
    "KESTOVA": (
        ["KESTOVA is a start-up.", "KESTOVA is publicly traded."],
        ["KESTOVA competes with urgent-care start-ups.", "KESTOVA is a non-profit."],
    ),
}
ROLE = {
    "EGNIVIA": (
        ["EGNIVIA is a foundry.", "EGNIVIA is a foundry company."],
        ["EGNIVIA depends on foundries.", "EGNIVIA is a software vendor."],  # ISVs are partners
    ),
    "ZYTRELL": (
        [
            "ZYTRELL is a retailer.",
            "ZYTRELL is a logistics company.",
            "ZYTRELL is a manufacturer of lidar systems.",
            "ZYTRELL makes battery cells.",
        ],
        [
            "ZYTRELL sells to retailers.",
            "ZYTRELL is a robot manufacturer.",
            "ZYTRELL is a robotics company.",
            "ZYTRELL is a warehouse automation vendor.",  # "automation": its own segment too
            "ZYTRELL designs fleet software.",
        ],
    ),
    "KESTOVA": (
        [
            "KESTOVA is a retail clinic.",
            "KESTOVA is a retail company.",
            "KESTOVA manufactures surgical robots.",
        ],
        [
            "KESTOVA competes with retail clinics.",
            "KESTOVA operates outpatient clinics.",
            "KESTOVA is a health system.",
        ],
    ),
}
PLACE = {
    entity: ([f"{entity} is headquartered in New York City."], [f"{entity} is headquartered in {city}."])
    for entity, city in (("EGNIVIA", "Santa Clara"), ("ZYTRELL", "Tacoma"), ("KESTOVA", "Boise"))
}


@pytest.mark.parametrize("entity", _params())
@pytest.mark.parametrize(("rule", "cases"), [("status", STATUS), ("role", ROLE), ("place", PLACE)])
def test_profile_rule_fires_and_does_not_fire_on_each_source_set(
    indexes: dict[str, cm.EvidenceIndex], entity: str, rule: str, cases: dict
) -> None:
    fires, holds = cases[entity]
    for text in fires:
        (claim,) = cm.check_claims(text, indexes[entity], entity=entity)
        assert (claim.decision, claim.rule) == ("contradicted", rule), text
        assert claim.strength == 0.0 and claim.evidence and claim.source_says, text
    for text in holds:
        assert all(rule_name != rule for _, rule_name in _decide(indexes, entity, text)), text


@pytest.mark.parametrize("entity", _params())
def test_profile_confirms_the_status_and_place_the_sources_state(
    indexes: dict[str, cm.EvidenceIndex], entity: str
) -> None:
    city = {"EGNIVIA": "Santa Clara", "ZYTRELL": "Tacoma", "KESTOVA": "Boise"}[entity]
    assert _decide(indexes, entity, f"{entity} is headquartered in {city}.") == [("supported", "profile")]
    status = f"{entity} is a non-profit." if entity == "KESTOVA" else f"{entity} is publicly traded."
    assert _decide(indexes, entity, status) == [("supported", "profile")]


@pytest.mark.parametrize("entity", _params())
def test_unknown_objects_are_unsupported_on_each_source_set(
    indexes: dict[str, cm.EvidenceIndex], entity: str
) -> None:
    known = {"EGNIVIA": "GPUs", "ZYTRELL": "fleet software", "KESTOVA": "hospitals"}[entity]
    verb = "operates" if entity == "KESTOVA" else "designs"
    claims = cm.check_claims(
        f"{entity} {verb} {known} and floor trampolines.", indexes[entity], entity=entity
    )
    assert [(c.decision, c.rule) for c in claims] == [("supported", "support"), ("unsupported", "unknown")]
    assert claims[1].unknown == ["floor", "trampolines"]
    assert cm.claim_support_min(claims) == claims[1].strength < cm.SUPPORTED_AT["lexical"]
    # An inflection of a source word is no unknown word ("robotics" / "robots", "supplies" / "supply").
    (paraphrase,) = cm.check_claims(f"{entity} {verb} {known}.", indexes[entity], entity=entity)
    assert paraphrase.unknown == []


def test_the_start_up_rule_needs_an_established_company() -> None:
    """A young, small, unlisted company may be called a start-up: the rule reads the profile."""
    young = ["NOVALO was founded in 2021 and employs 40 people.", "NOVALO designs drones for farms in 2023."]
    profile = pm.extract_profile(young, "NOVALO")
    assert profile.founded == 2021 and profile.employees == 40 and profile.listed is None
    assert pm.check_profile("  is a drone start-up", profile) is None
    old = pm.extract_profile(["NOVALO was founded in 1990.", "In 2023 NOVALO designs drones."], "NOVALO")
    finding = pm.check_profile("  is a drone start-up", old)
    assert finding is not None and finding.rule == "status" and "founded in 1990" in finding.source_says


# ---------------------------------------------------------------- suppliers named by what is bought

# Three invented companies' sources, each naming a supplier by what the company buys from it, once
# actively ("buys X from Y") and once passively ("X are supplied by Y"). Developed on these only.
BOUGHT_SOURCES = {
    "QORVANT": (
        [
            "QORVANT designs and sells electric cargo scooters for city delivery fleets.",
            "QORVANT buys lithium battery packs from two battery makers in South Korea.",
            "Aluminium frames for its scooters are supplied by contract welders in Portugal.",
        ],
        ["QORVANT designs lithium battery packs.", "QORVANT manufactures aluminium frames."],
        ["QORVANT designs electric cargo scooters.", "QORVANT sells scooters to delivery fleets."],
    ),
    "MERIDOX": (
        [
            "MERIDOX operates a chain of specialty coffee shops in Ohio.",
            "We purchase green coffee beans from independent importers.",
            "Paper cups and lids are provided by packaging manufacturers.",
        ],
        ["MERIDOX produces green coffee beans.", "MERIDOX makes paper cups."],
        ["MERIDOX operates coffee shops.", "MERIDOX operates a chain of specialty coffee shops."],
    ),
    "TALVERN": (
        [
            "TALVERN develops flight-planning software for regional airlines.",
            "TALVERN sources weather data from commercial forecasting providers.",
            "If airlines buy software from competitors, TALVERN may lose sales.",
        ],
        ["TALVERN develops weather data."],
        ["TALVERN develops flight-planning software.", "TALVERN competes for airline customers."],
    ),
}


@pytest.mark.parametrize("entity", sorted(BOUGHT_SOURCES))
def test_a_supplier_named_by_what_the_company_buys_keeps_it_and_the_role_rule_uses_it(
    entity: str, tmp_path: Path
) -> None:
    import json

    texts, fires, holds = BOUGHT_SOURCES[entity]
    profile = pm.extract_profile(texts, entity)
    suppliers = {f.value: f.detail for f in profile.of_kind("party", "supplier")}
    assert len(suppliers) == len([t for t in texts[1:] if "compet" not in t]) and all(suppliers.values())
    # A customer buying from competitors names no supplier of the company.
    assert not any("competitor" in value for value in suppliers)
    dataset = tmp_path / "qa.jsonl"
    dataset.write_text(
        "".join(
            json.dumps({"question": "q", "answer": t, "context": t, "id": i}) + "\n"
            for i, t in enumerate(texts)
        )
    )
    index = cm.load_evidence(str(dataset), entity, method="lexical")
    for text in fires:
        (claim,) = cm.check_claims(text, index, entity=entity)
        assert (claim.decision, claim.rule) == ("contradicted", "role"), text
    for text in holds:
        assert all(c.rule != "role" for c in cm.check_claims(text, index, entity=entity)), text
