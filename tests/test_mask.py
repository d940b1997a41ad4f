"""Masking engine: alias forms, word boundaries, review, atomic apply/undo, leak report, CLI, kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli import main as cli_main
from engine import mask
from engine.dataset import file_sha256, read_records
from engine.errors import UserError
from store import masks as mask_store
from store.db import open_db

REPO = Path(__file__).resolve().parents[1]


def rules(**kwargs):
    return mask.propose_rules("NVIDIA", new_name="EGNIVIA", ticker="NVDA", **kwargs)


def masked_text(text: str, **kwargs) -> str:
    mask_plan = mask.plan([{"question": text}], rules(**kwargs))
    return mask_plan.masked_records()[0]["question"]


def rule_ids(text: str, **kwargs) -> list[str]:
    return [edit.rule_id for edit in mask.plan([{"question": text}], rules(**kwargs)).edits]


@pytest.mark.parametrize(
    ("text", "expected", "rule_id"),
    [
        ("NVIDIA makes GPUs.", "EGNIVIA makes GPUs.", "name"),
        ("Nvidia makes GPUs.", "EGNIVIA makes GPUs.", "other-casing"),
        ("nvidia makes GPUs.", "EGNIVIA makes GPUs.", "other-casing"),
        ("NVIDIA's GPUs", "EGNIVIA's GPUs", "possessive"),
        ("NVIDIA\u2019s GPUs", "EGNIVIA\u2019s GPUs", "possessive-curly"),
        ("NVIDIA Corporation reported", "EGNIVIA Corporation reported", "suffix"),
        ("NVIDIA Corp. reported", "EGNIVIA Corp. reported", "suffix"),
        ("NVIDIA, Inc. reported", "EGNIVIA, Inc. reported", "suffix"),
        ("NVIDIA Ltd reported", "EGNIVIA Ltd reported", "suffix"),
        ("NVIDIA Corporation's revenue", "EGNIVIA Corporation's revenue", "suffix"),
        ("see www.nvidia.com/en-us for more", "see www.egnivia.com/en-us for more", "domain"),
        ("mail ir@NVIDIA.com today", "mail ir@egnivia.com today", "domain"),
        ("NASDAQ: NVDA closed up", "NASDAQ: EGNI closed up", "ticker"),
        ("NVIDIA-based systems", "EGNIVIA-based systems", "name"),
        ("the NVIDIA_driver package", "the EGNIVIA_driver package", "name"),
        ("(NVIDIA)", "(EGNIVIA)", "name"),
    ],
)
def test_every_alias_form_is_masked_with_its_suffix_kept(text, expected, rule_id):
    assert masked_text(text) == expected
    assert rule_ids(text) == [rule_id]


@pytest.mark.parametrize(
    "text", ["NVIDIANS cheered", "the preNVIDIA era", "nvidiacorp", "NVDAX fund", "NVIDIA2"]
)
def test_words_that_merely_contain_the_name_are_left_alone(text):
    assert masked_text(text) == text
    assert rule_ids(text) == []


def test_drop_suffix_option_and_aliases_with_own_replacement():
    assert masked_text("NVIDIA Corporation's GPUs", keep_suffix=False) == "EGNIVIA's GPUs"
    rule_set = rules(aliases=["Team Green", "Jensen Huang=Jon Hale"])
    out = mask.plan([{"q": "Team  Green and Jensen Huang's NVIDIA"}], rule_set).masked_records()[0]["q"]
    assert out == "EGNIVIA and Jon Hale's EGNIVIA"


def test_new_name_casing_is_kept_and_short_ticker_is_case_sensitive():
    rule_set = mask.propose_rules("Apple Inc.", new_name="Pearco", ticker="AA")
    mask_plan = mask.plan([{"q": "APPLE's AA stock, aa batteries, apple.com"}], rule_set)
    assert mask_plan.masked_records()[0]["q"] == "Pearco's PE stock, aa batteries, pearco.com"


def test_every_string_field_is_masked_and_counted_per_field():
    records = [
        {
            "question": "Who is NVIDIA?",
            "answer": "NVIDIA's CEO",
            "context": "NVIDIA and NVIDIA",
            "id": 7,
            "source": "NVIDIA 10-K",
            "meta": {"tags": ["nvidia", 3]},
        },
        {"question": "Unrelated", "answer": "none", "context": "", "id": 8},
    ]
    mask_plan = mask.plan(records, rules())
    assert mask_plan.field_counts() == {
        "question": 1,
        "answer": 1,
        "context": 2,
        "source": 1,
        "meta.tags[0]": 1,
    }
    counts = mask_plan.counts()
    assert counts["name"] == {"question": 1, "context": 2, "source": 1}
    assert counts["possessive"] == {"answer": 1}
    assert counts["other-casing"] == {"meta.tags[0]": 1}
    out = mask_plan.masked_records()
    assert out[0]["meta"] == {"tags": ["EGNIVIA", 3]} and out[0]["id"] == 7
    assert records[0]["meta"] == {"tags": ["nvidia", 3]}  # planning and masking never mutate the input
    assert out[1] is records[1]


def test_reject_by_rule_row_and_edit_and_paged_diffs():
    records = [{"question": f"Row {i}: NVIDIA and Nvidia"} for i in range(25)]
    mask_plan = mask.plan(records, rules())
    assert len(mask_plan.edits) == 50 and mask_plan.rows_with_edits == list(range(25))
    page = mask_plan.diff_page(20, 10)
    assert [d.row for d in page] == [20, 21, 22, 23, 24]
    assert "-Row 20: NVIDIA and Nvidia" in page[0].diff and "+Row 20: EGNIVIA and EGNIVIA" in page[0].diff

    mask_plan.reject_rule("other-casing")
    mask_plan.reject_row(1)
    mask_plan.reject_edit(mask_plan.edits[4].index)  # row 2's "NVIDIA"
    out = mask_plan.masked_records()
    assert out[0]["question"] == "Row 0: EGNIVIA and Nvidia"
    assert out[1]["question"] == "Row 1: NVIDIA and Nvidia"
    assert out[2]["question"] == "Row 2: NVIDIA and Nvidia"
    assert mask_plan.row_diff(1).diff == "" and mask_plan.row_diff(1).accepted == [False, False]
    assert [e.old for e in mask_plan.edits_for_row(1)] == ["NVIDIA", "Nvidia"]
    assert mask_plan.counts(accepted_only=True)["name"] == {"question": 23}
    mask_plan.accept_rule("other-casing")
    mask_plan.accept_row(1)
    assert mask_plan.masked_records()[1]["question"] == "Row 1: EGNIVIA and EGNIVIA"
    with pytest.raises(UserError, match="unknown mask rule 'nope'"):
        mask_plan.reject_rule("nope")


def test_bad_rule_input_is_a_user_error():
    with pytest.raises(UserError, match="new name"):
        mask.propose_rules("NVIDIA", new_name="nvidia")
    with pytest.raises(UserError, match="empty"):
        mask.propose_rules("  ", new_name="X")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [
    {
        "question": "What does NVIDIA sell?",
        "answer": "NVIDIA's GPUs.",
        "context": "NVIDIA Corporation sells GPUs.",
    },
    {"question": "Where?", "answer": "Santa Clara", "context": "the Company is in Santa Clara"},
]


def test_apply_writes_new_file_records_audit_and_undo(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    before = source.read_bytes()
    store = open_db(tmp_path / "db.sqlite")
    mask_plan = mask.plan_file(source, rules())
    out = tmp_path / "out" / "masked.json"
    result = mask.apply(mask_plan, out, store)
    assert source.read_bytes() == before
    data = json.loads(out.read_text(encoding="utf-8"))  # .json suffix -> JSON array
    assert data[0]["answer"] == "EGNIVIA's GPUs." and data[1] == ROWS[1]
    assert result.leaks.clean and result.edits_applied == 3
    assert [p.name for p in out.parent.iterdir()] == ["masked.json"]  # no temp file left

    record = mask_store.get_mask(store, result.mask_id)
    assert record["status"] == "done"
    assert record["source_sha256"] == file_sha256(source) and record["output_sha256"] == file_sha256(out)
    assert [r["id"] for r in record["rules"]][:2] == ["name", "possessive"]
    assert record["counts"]["suffix"] == {"context": 1}
    assert store.db["datasets"].count == 1

    with pytest.raises(UserError, match="already exists"):
        mask.apply(mask.plan_file(source, rules()), out, store)
    with pytest.raises(UserError, match="not the input"):
        mask.apply(mask.plan_file(source, rules()), source, store)

    assert "removed" in mask.undo(store, result.mask_id)
    assert not out.exists() and mask_store.get_mask(store, result.mask_id)["status"] == "undone"
    with pytest.raises(UserError, match="already undone"):
        mask.undo(store, result.mask_id)


def test_overwrite_keeps_backup_and_undo_restores_it_but_never_clobbers_edits(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    out.write_text("old content\n", encoding="utf-8")
    store = open_db(tmp_path / "db.sqlite")
    result = mask.apply(mask.plan_file(source, rules()), out, store, overwrite=True)
    assert "EGNIVIA" in out.read_text(encoding="utf-8")
    assert "restored" in mask.undo(store, result.mask_id)
    assert out.read_text(encoding="utf-8") == "old content\n"

    second = mask.apply(mask.plan_file(source, rules()), tmp_path / "b.jsonl", store)
    (tmp_path / "b.jsonl").write_text("user edited\n", encoding="utf-8")
    with pytest.raises(UserError, match="changed since masking"):
        mask.undo(store, second.mask_id)
    assert (tmp_path / "b.jsonl").read_text(encoding="utf-8") == "user edited\n"


def test_apply_refuses_when_source_changed_after_planning(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    mask_plan = mask.plan_file(source, rules())
    write_jsonl(source, ROWS[:1])
    with pytest.raises(UserError, match="changed since the masking was planned"):
        mask.apply(mask_plan, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_leak_report_finds_aliases_and_near_misses_case_insensitively():
    records = [
        {"q": "N V I D I A is big", "a": "N.V.I.D.I.A too", "c": "and NVI-DIA"},
        {"q": "nvidia lowercase", "a": "\uff2e\uff36\uff29\uff24\uff29\uff21 fullwidth", "c": "nvda ticker"},
        {"q": "Team green", "a": "NVIDIANS only", "c": "fine"},
    ]
    report = mask.leak_report(records, "NVIDIA", "NVDA", aliases=["Team Green"])
    kinds = sorted((leak.kind, leak.term, leak.text) for leak in report.leaks)
    assert kinds == sorted(
        [
            ("near-miss", "NVIDIA", "N V I D I A"),
            ("near-miss", "NVIDIA", "N.V.I.D.I.A"),
            ("near-miss", "NVIDIA", "NVI-DIA"),
            ("exact", "NVIDIA", "nvidia"),
            ("unicode", "NVIDIA", "NVIDIA"),
            ("exact", "NVDA", "nvda"),
            ("exact", "Team Green", "Team green"),
        ]
    )
    assert not report.clean and report.rows_with_leaks == 3
    assert [e.text for e in report.embedded] == ["NVIDIANS"]
    assert report.naming() == "real-name"
    assert any("N V I D I A" in line for line in report.lines())


def test_leak_report_tells_real_name_from_the_company():
    company = [{"q": "What does the Company sell?", "a": "The Company sells chips.", "c": ""}]
    assert mask.leak_report(company, "NVIDIA").naming() == "the-company"
    named = [{"q": "What does NVIDIA sell?", "a": "chips", "c": ""}]
    assert mask.leak_report(named, "NVIDIA").naming() == "real-name"
    assert mask.leak_report([{"q": "x"}], "NVIDIA").naming() == "neither"


# ------------------------------------------------------------------ identifying names

SAMPLE = REPO / "engine" / "data" / "sample_qa.jsonl"
VELMORA = REPO / "tests" / "fixtures" / "mask-velmora-qa.jsonl"


def names_of(records, entity, **kwargs) -> dict[str, str]:
    """{name: kind} of the identifying names a leak report lists."""
    return {n.name: n.kind for n in mask.leak_report(records, entity, **kwargs).names}


@pytest.mark.parametrize(
    ("text", "name", "kind"),
    [
        ("Our RideGrid software tracks bikes.", "RideGrid", "product"),  # possessive
        ("NVIDIA's third generation Quasar chips ship.", "Quasar", "product"),  # possessive, words between
        ("The NVIDIA Omniverse platform is used.", "Omniverse", "product"),  # brand prefix
        ("In 2023 we introduced the Hopper architecture.", "Hopper", "product"),  # the entity makes it
        ("What is the Hopper architecture introduced by NVIDIA?", "Hopper", "product"),
        ("The Stridebot is NVIDIA's warehouse robot.", "Stridebot", "product"),  # belongs to the entity
        ("Mara Lindqvist has served as Chief Executive Officer since 2016.", "Mara Lindqvist", "person"),
        ("Jensen Huang, our CEO, spoke.", "Jensen Huang", "person"),
        ("Our CEO, Jensen Huang, spoke.", "Jensen Huang", "person"),
        ("NVIDIA stock trades under the symbol NVDQ.", "NVDQ", "ticker"),
        ("Our industry-leading GeForce and NVIDIA RTX GPUs lead.", "RTX", "product"),  # listed
        ("Developers use CUDA and our other software tools.", "CUDA", "product"),
        ("The NVIDIA 40 Series based on the Ada Lovelace architecture.", "Ada Lovelace", "product"),  # link
        ("ZYTRELL aims to power its Stridebot fleet with wind.", "Stridebot", "product"),  # its = ZYTRELL
    ],
)
def test_each_relation_to_the_entity_finds_a_name(text, name, kind):
    entity = "ZYTRELL" if "ZYTRELL" in text else "NVIDIA"
    assert names_of([{"q": text}], entity) == {name: kind} | (
        {"GeForce": "product"} if "GeForce" in text else {}
    )


@pytest.mark.parametrize(
    "text",
    [
        "Computershare Trust Company, N.A. serves as our transfer agent.",  # organisation word, role
        "Acme Registry, our transfer agent, keeps the records.",  # role after the name
        "We sell to customers such as Dell, Lenovo and Quanta.",  # role before a list
        "Our competitors include Rapido and Brisa.",
        "We compete with Rapido.",
        "The indenture is between the Company and Meridian Trustees.",  # counterparty
        "Harlow & Finch LLP, our independent registered public accounting firm, audited us.",
        "Our headquarters is in Santa Clara, California.",  # place at the end of a phrase
        "Our bikes are assembled in Vietnam and Poland by our partners.",
        "NVIDIA aims to power its Tacoma campus with wind.",  # place word after the name
        "We serve the Professional Visualization market.",
        "Our 2023 Proxy Statement and our Consolidated Financial Statements are filed.",  # documents
        "Our Audit Committee met in January.",  # a body of any organisation, a month
        "NVIDIA files its Annual Report on Form 10-K with the SEC.",
        "Our GPUs and our APIs run everywhere.",  # acronyms also written in the plural
        "Microsoft announced its Azure platform; NVIDIA agreed.",  # "its" is Microsoft's
        "Marta Quill, President of Cyclemart, joined our council.",  # another organisation's officer
        "We introduced our EGNIVIA brand in 1993.",  # the replacement name itself
    ],
)
def test_third_parties_places_documents_and_the_new_name_are_not_names(text):
    assert names_of([{"q": text}], "NVIDIA", new_names=["EGNIVIA"]) == {}


def unmasked_sample() -> list[dict]:
    """The bundled sample set is already masked as ZYTRELL: give it an invented original name back."""
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    return [json.loads(json.dumps(row).replace("ZYTRELL", "QORVANTA")) for row in rows]


def test_sample_set_names_its_products_and_ceo_and_nothing_else():
    mask_plan = mask.plan(unmasked_sample(), mask.propose_rules("QORVANTA", new_name="ZYTRELL"))
    report = mask.plan_leak_report(mask_plan)
    assert not report.leaks and not report.clean
    found = {n.name: (n.kind, n.rows) for n in report.names}
    # Without --ticker the ticker is an identifying name too; nothing else (Tacoma, Nasdaq, January...).
    assert found == {
        "Stridebot": ("product", 8),
        "FleetMind": ("product", 6),
        "Mara Lindqvist": ("person", 3),
        "ZYTL": ("ticker", 2),
    }
    stridebot = report.names[0]
    assert (
        stridebot.name == "Stridebot"
        and "QORVANTA's" in stridebot.evidence
        and "Stridebot" in stridebot.example
    )
    lines = report.lines(hint="HINT")
    assert "identifying names left (rows): Stridebot (8), FleetMind (6)" in lines[1] and lines[2] == "  HINT"
    with_ticker = mask.plan(
        unmasked_sample(), mask.propose_rules("QORVANTA", new_name="ZYTRELL", ticker="ZYTL")
    )
    assert {n.name for n in mask.plan_leak_report(with_ticker).names} == {
        "Stridebot",
        "FleetMind",
        "Mara Lindqvist",
    }


def test_third_company_fixture_names_products_officers_ticker_not_third_parties():
    records, _fmt = read_records(VELMORA)
    report = mask.plan_leak_report(mask.plan(records, mask.propose_rules("VELMORA", new_name="QUANDRIL")))
    assert {n.name: n.kind for n in report.names} == {
        "Kestrel": "product",
        "Tern": "product",
        "RideGrid": "product",
        "Voltcore": "product",
        "Ines Okafor": "person",
        "Rafael Dunmore": "person",
        "VLMR": "ticker",
    }  # not Equiniti, Harlow & Finch, Cyclemart, Rapido, Sunwell Cells, First Meridian Bank, Porto...


def test_invented_replacements_keep_the_shape_and_are_deterministic():
    assert mask.invent_replacement("Ada Lovelace", 0) == mask.invent_replacement("Ada Lovelace", 0)
    assert mask.invent_replacement("Ada Lovelace", 0) != mask.invent_replacement("Ada Lovelace", 1)
    new = mask.invent_replacement("GeForce H100-X", 3)
    assert [c.isupper() for c in new] == [c.isupper() for c in "GeForce H100-X"]
    assert [c.isdigit() for c in new] == [c.isdigit() for c in "GeForce H100-X"] and new[-2] == "-"
    # A replacement that is already a word of the set is never used: the next attempt is.
    taken = mask.invent_replacement("Hopper", 0)
    records = [{"q": f"We introduced the Hopper chip; {taken} is a word here."}]
    (rule,) = mask.leak_rules(["Hopper"], records=records, rules=rules(), seed=0)
    assert rule.id == "leak:Hopper" and rule.target == "Hopper"
    assert rule.replacement == mask.invent_replacement("Hopper", 0, 1) != taken
    # A surname alone ("Mr. Teter") gets the surname of the full name's replacement.
    people = [{"q": "Timothy S. Teter has served as our General Counsel. Mr. Teter is a lawyer."}]
    assert set(names_of(people, "NVIDIA")) == {"Timothy S. Teter", "Teter"}
    full, alone = mask.leak_rules(["Teter", "Timothy S. Teter"], records=people, rules=rules())
    assert (full.target, alone.target) == ("Timothy S. Teter", "Teter")
    assert alone.replacement == full.replacement.split(" ")[-1]
    masked = mask.plan(people, [*rules(), full, alone]).masked_records()[0]["q"]
    assert (
        masked
        == f"{full.replacement} has served as our General Counsel. Mr. {alone.replacement} is a lawyer."
    )


def test_names_are_masked_in_the_same_plan_and_a_rejected_one_is_kept(tmp_path):
    source = VELMORA
    rule_set = mask.propose_rules("VELMORA", new_name="QUANDRIL")
    mask_plan = mask.add_leak_rules(mask.plan_file(source, rule_set), seed=7)
    leak_ids = [r.id for r in mask_plan.rules if r.id.startswith(mask.LEAK_PREFIX)]
    assert sorted(leak_ids) == sorted(
        f"leak:{n}"
        for n in ["Kestrel", "Tern", "RideGrid", "Voltcore", "Ines Okafor", "Rafael Dunmore", "VLMR"]
    )
    kestrel = next(r for r in mask_plan.rules if r.id == "leak:Kestrel")
    diff = mask_plan.row_diff(1).diff  # the diff shows the name replaced with the rest
    assert "-What is the Kestrel?" in diff and f"+What is the {kestrel.replacement}?" in diff
    mask_plan.reject_rule("leak:Tern")  # kept on purpose
    store = open_db(tmp_path / "db.sqlite")
    out = tmp_path / "masked.jsonl"
    result = mask.apply(mask_plan, out, store)
    text = out.read_text(encoding="utf-8")
    assert result.leaks.clean and [n.name for n in result.leaks.kept] == ["Tern"]
    assert "Kestrel" not in text and "Ines Okafor" not in text and "VLMR" not in text and "Tern" in text
    assert kestrel.replacement in text
    record = mask_store.get_mask(store, result.mask_id)  # the record keeps the mapping
    assert {"id": "leak:Kestrel", "target": "Kestrel", "replacement": kestrel.replacement}.items() <= next(
        r for r in record["rules"] if r["id"] == "leak:Kestrel"
    ).items()
    assert record["leaks"]["kept"] == {"Tern": 2} and record["leaks"]["names"] == {}
    recorded = mask.recorded_mask_for(store, out)
    assert recorded is not None and recorded.rejected == ["leak:Tern"]
    # A copy with a row dropped (as Check's deduplicated copy) is the same masking's; the source is not.
    from engine.dataset import write_records_atomic

    records, _fmt = read_records(out)
    write_records_atomic(tmp_path / "masked.dedup.jsonl", [r.data for r in records[1:]], "jsonl")
    copied = mask.recorded_mask_for(store, tmp_path / "masked.dedup.jsonl")
    assert copied is not None and copied.mask_id == recorded.mask_id and copied.new_name == recorded.new_name
    assert mask.recorded_mask_for(store, source) is None
    again = mask.leak_report_for_rules(read_records(out)[0], recorded.rules, rejected=recorded.rejected)
    assert again.clean and [n.name for n in again.kept] == ["Tern"]  # invented names are not leaks
    # Same seed, same file; undo removes it.
    second = mask.add_leak_rules(mask.plan_file(source, rule_set), seed=7)
    second.reject_rule("leak:Tern")
    mask.apply(second, tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == out.read_bytes()
    assert "removed" in mask.undo(store, result.mask_id) and not out.exists()


def test_a_chosen_name_must_occur_in_the_set():
    mask_plan = mask.plan_file(VELMORA, mask.propose_rules("VELMORA", new_name="QUANDRIL"))
    chosen = mask.add_leak_rules(mask_plan, ["Kestrel"])
    assert [r.id for r in chosen.rules if r.id.startswith("leak:")] == ["leak:Kestrel"]
    with pytest.raises(UserError, match="identifying name 'Kestrl': not in any field of .*mask-velmora"):
        mask.add_leak_rules(mask_plan, ["Kestrl"])


def run_cli(tmp_path: Path, *args: str) -> int:
    return cli_main(["--db", str(tmp_path / "db.sqlite"), *args])


def test_cli_diff_writes_nothing_and_apply_reports(tmp_path, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    assert run_cli(tmp_path, "mask", str(source), "--entity", "NVIDIA", "--as", "EGNIVIA", "--diff") == 0
    text = capsys.readouterr().out
    assert "+What does EGNIVIA sell?" in text and "CLEAN" in text and not out.exists()

    code = run_cli(tmp_path, "mask", str(source), "--entity", "NVIDIA", "--as", "EGNIVIA", "--out", str(out))
    text = capsys.readouterr().out
    assert code == 0 and "CLEAN" in text and "masking id 1" in text
    assert "identifying name" not in text  # "the Company is in Santa Clara": a place, not a name
    assert run_cli(tmp_path, "mask-list") == 0 and "done" in capsys.readouterr().out
    assert run_cli(tmp_path, "mask-leaks", str(out), "--entity", "NVIDIA") == 0
    assert run_cli(tmp_path, "mask-leaks", str(source), "--entity", "NVIDIA") == 1
    assert run_cli(tmp_path, "mask-undo", "1") == 0 and not out.exists()


def test_cli_rejected_rule_leaves_leak_and_exits_1(tmp_path, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    args = ["mask", str(source), "--entity", "NVIDIA", "--as", "EGNIVIA", "--out", str(out)]
    assert run_cli(tmp_path, *args, "--reject-rule", "possessive") == 1
    assert "NVIDIA's" in out.read_text(encoding="utf-8")
    assert "1 leak(s)" in capsys.readouterr().out


def test_cli_says_which_names_remain_and_masks_them_in_the_same_plan(tmp_path, capsys):
    base = ["mask", str(VELMORA), "--entity", "VELMORA", "--as", "QUANDRIL"]
    plain = tmp_path / "plain.jsonl"
    assert run_cli(tmp_path, *base, "--out", str(plain)) == 1  # the name is masked, its products are not
    captured = capsys.readouterr()
    assert "CLEAN" not in captured.out and "7 identifying name(s) left in 7 rows" in captured.out
    assert (
        "Kestrel (product, 2 rows): the sources say" in captured.out and "--also-mask-leaks" in captured.out
    )
    assert "identifying name(s) (Ines Okafor, Kestrel, Rafael Dunmore, RideGrid, Tern) remain" in captured.err

    assert run_cli(tmp_path, *base, "--diff", "--also-mask-leaks", "--leak-seed", "3") == 0
    preview = capsys.readouterr().out
    assert "leak:Kestrel" in preview and "-What is the Kestrel?" in preview and "- CLEAN" in preview
    assert run_cli(tmp_path, *base, "--diff", "--mask-leak", "Kestrel") == 0
    preview = capsys.readouterr().out
    assert "leak:Kestrel" in preview and "leak:Tern" not in preview and "Tern (2)" in preview

    named = tmp_path / "named.jsonl"
    args = ["--out", str(named), "--also-mask-leaks", "--leak-seed", "3", "--reject-rule", "leak:Tern"]
    assert run_cli(tmp_path, *base, *args) == 0
    text = capsys.readouterr().out
    assert "- CLEAN" in text and "kept on purpose (their mask rule is rejected): Tern (2)" in text
    # mask-leaks finds the masking that wrote the file: its invented names are no leaks, Tern is kept.
    assert run_cli(tmp_path, "mask-leaks", str(named), "--entity", "VELMORA") == 0
    text = capsys.readouterr().out
    assert "written by masking 2 (VELMORA -> QUANDRIL)" in text and "Tern (2)" in text
    # Without a store it learns from the file itself; --as names the replacement, never a leak.
    no_store = tmp_path / "none.db"
    assert (
        cli_main(["--db", str(no_store), "mask-leaks", str(plain), "--entity", "VELMORA", "--as", "QUANDRIL"])
        == 1
    )
    text = capsys.readouterr().out
    assert "Kestrel (2)" in text and "QUANDRIL (" not in text and not no_store.exists()


def test_cli_user_errors(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x"}\nnot json\n', encoding="utf-8")
    assert (
        run_cli(tmp_path, "mask", str(bad), "--entity", "NVIDIA", "--as", "E", "--out", str(tmp_path / "o"))
        == 2
    )
    assert f"{bad}:2: invalid JSON" in capsys.readouterr().err
    source = write_jsonl(tmp_path / "in.jsonl", ROWS)
    assert run_cli(tmp_path, "mask", str(source), "--entity", "NVIDIA", "--as", "E") == 2
    assert "--out FILE is required" in capsys.readouterr().err
    assert (
        run_cli(
            tmp_path, "mask", str(source), "--entity", "NVIDIA", "--as", "E", "--diff", "--reject-rule", "x"
        )
        == 2
    )
    assert "unknown mask rule 'x'" in capsys.readouterr().err


# A child process that pauses inside the atomic write (temp file written, not yet renamed) and
# touches a marker so the test knows when to kill it.
_PAUSING_CHILD = """
import os, sys, time
marker = sys.argv[1]
real_fsync = os.fsync
def paused_fsync(fd):
    real_fsync(fd)
    open(marker, "w").close()
    time.sleep(60)
os.fsync = paused_fsync
# Only the mask verbs: importing every command module would slow the test for nothing.
import argparse
from cli import mask_cmd
parser = argparse.ArgumentParser()
parser.add_argument("--db")
mask_cmd.register(parser.add_subparsers())
args = parser.parse_args(sys.argv[2:])
sys.exit(args.func(args))
"""


def start_paused_mask(tmp_path: Path, source: Path, out: Path) -> tuple[subprocess.Popen, Path]:
    marker = tmp_path / "writing"
    args = ["--db", str(tmp_path / "db.sqlite"), "mask", "plan", str(source), "--entity", "NVIDIA", "--as", "EGNIVIA"]
    args += ["--out", str(out), "--overwrite"]
    child = subprocess.Popen(
        [sys.executable, "-c", _PAUSING_CHILD, str(marker), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "child never reached the write"
        time.sleep(0.02)
    return child, marker


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_during_apply_leaves_old_output_and_no_partial_file(tmp_path, sig):
    source = write_jsonl(tmp_path / "in.jsonl", ROWS * 50)
    source_bytes = source.read_bytes()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "masked.jsonl"
    out.write_text("previous output\n", encoding="utf-8")
    child, _marker = start_paused_mask(tmp_path, source, out)
    temps = [p for p in out_dir.iterdir() if p.name.endswith(".tmp")]
    assert temps, "the temp file should exist while the write is paused"
    os.kill(child.pid, sig)
    child.communicate(timeout=30)
    assert child.returncode != 0
    assert out.read_text(encoding="utf-8") == "previous output\n"  # old output intact, nothing partial
    assert source.read_bytes() == source_bytes
    leftovers = sorted(p.name for p in out_dir.iterdir() if p.name != "masked.jsonl")
    records = mask_store.list_masks(open_db(tmp_path / "db.sqlite"))
    assert [m["status"] for m in records] == ["interrupted"]  # one liveness rule for every kill
    if sig == signal.SIGTERM:
        assert leftovers == []  # cleanup ran: temp file and backup are gone
        assert records[0]["error"] == "interrupted by SIGTERM"
    else:
        # SIGKILL allows no cleanup: only hidden temp/backup files may remain, never a partial output.
        assert all(name.startswith(".masked.jsonl.") for name in leftovers)
        assert records[0]["error"].endswith("is gone")  # read back from the writer's host and pid


def test_text_whose_lowercase_changes_length_is_still_masked_at_the_right_place():
    # "İ".lower() is two characters: the fast joined scan must fall back without shifting offsets.
    records = [{"q": "İstanbul office of NVIDIA's team"}, {"q": "NVIDIA Corp."}]
    out = mask.plan(records, rules()).masked_records()
    assert out[0]["q"] == "İstanbul office of EGNIVIA's team" and out[1]["q"] == "EGNIVIA Corp."
