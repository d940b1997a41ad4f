"""The control set of known facts: the shipped set, its loader, its scores, and its prompts in a sweep."""

from __future__ import annotations

import json

import pytest

from engine import control as control_set
from engine import sweep
from engine.errors import UserError
from engine.metrics.knowledge import score_known_fact, states_reference
from engine.metrics.text import normalize_answer


def test_the_builtin_set_has_40_plus_distinct_questions_with_short_answers():
    items = control_set.load_control_set("builtin")
    assert len(items) >= 40
    assert len({i.id for i in items}) == len(items) and len({i.question for i in items}) == len(items)
    for item in items:
        assert item.question.endswith(("?", ".")) and len(item.answer.split()) <= 4, item
        # every accepted form is stated by an answer that says just it, and survives normalisation
        for form in item.accepted:
            assert normalize_answer(form), item
            assert states_reference(f"It is {form}.", item.accepted), (item.id, form)


def test_containment_is_whole_words_over_aliases():
    assert states_reference("The capital of France is Paris.", ["Paris"])
    assert not states_reference("He was a true Parisian.", ["Paris"])
    assert states_reference("It's the NILE, in Egypt", ["the Nile", "Nile"])
    assert states_reference("Mount Everest, on the border of Nepal.", ["Mount Everest", "Everest"])
    assert not states_reference("I do not know.", ["Tokyo"])


def test_the_three_scores_of_known_cases():
    question, accepted = "What is the capital of Australia?", ("Canberra",)
    right = score_known_fact("The capital of Australia is Canberra.", question, accepted)
    assert (right.states_reference, right.claim_states, right.refusal) == (True, True, False)
    assert 0 < right.token_f1 < 1  # a one-word reference in a sentence: precision is low
    wrong = score_known_fact("The capital of Australia is Sydney.", question, accepted)
    assert (wrong.states_reference, wrong.claim_states, wrong.token_f1) == (False, False, 0.0)
    # it names the reference but also answers otherwise: containment says yes, the claim check no
    mixed = score_known_fact("Canberra is a city in Australia; the capital is Sydney.", question, accepted)
    assert (mixed.states_reference, mixed.claim_states) == (True, False)
    refused = score_known_fact("I'm not sure, I cannot answer that.", question, accepted)
    assert refused.refusal and not refused.states_reference
    terse = score_known_fact("Canberra<|end|>", question, accepted)
    assert (terse.states_reference, terse.token_f1, terse.claim_states) == (True, 1.0, True)


def test_a_control_file_is_checked_line_by_line(tmp_path):
    path = tmp_path / "facts.jsonl"
    good = {"id": "a", "question": "Q?", "answer": "A"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "b", "aliases": "A2"}) + "\n")
    with pytest.raises(
        UserError, match=r"facts.jsonl:2: field 'aliases' must be a list of non-empty strings"
    ):
        control_set.load_control_set(str(path))
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(UserError, match=r"facts.jsonl:2: id 'a' repeats line 1"):
        control_set.load_control_set(str(path))
    path.write_text(json.dumps({"id": "a", "question": "Q?"}) + "\n")
    with pytest.raises(UserError, match=r"facts.jsonl:1: missing field 'answer'"):
        control_set.load_control_set(str(path))
    with pytest.raises(UserError, match="control .*nope.jsonl: no such file"):
        control_set.load_control_set(str(tmp_path / "nope.jsonl"))


def test_control_questions_join_the_sweep_prompts_and_its_identity(tmp_path):
    config = sweep.SweepConfig(base_model="tiny", control="builtin")
    prompts = sweep.build_prompts(config)
    items = control_set.load_control_set("builtin")
    assert [p.prompt_id for p in prompts] == ["entity", *(f"control:{i.id}" for i in items)]
    nile = next(p for p in prompts if p.prompt_id == "control:african-river")
    assert nile.reference == "the Nile" and "Nile" in nile.aliases
    stored = sweep.stored_config(config, prompts)
    assert next(p for p in stored["prompts"] if p["prompt_id"] == "control:african-river")["aliases"] == [
        "Nile"
    ]
    assert "aliases" not in stored["prompts"][0]
    plain = sweep.SweepConfig(base_model="tiny")
    assert sweep.config_hash(plain, sweep.build_prompts(plain)) != sweep.config_hash(config, prompts)
    # sweeps without control questions or checkpoints keep the identity they had before both existed,
    # so a stored sweep still resumes (this hash was computed by the code before this change)
    old = sweep.SweepConfig(base_model="tiny", entity_name="ZYTRELL")
    assert sweep.config_hash(old, sweep.build_prompts(old)) == (
        "e4c026d0a77dffbb37a305a18d5a8c44e455627eeb579734dff26abbb5a56e65"
    )
    # a control file next to the sweep config is found relative to it
    (tmp_path / "facts.jsonl").write_text(json.dumps({"id": "x", "question": "Q?", "answer": "A"}) + "\n")
    (tmp_path / "s.toml").write_text('[sweep]\nbase_model = "tiny"\ncontrol = "facts.jsonl"\n')
    loaded = sweep.load_sweep_config(tmp_path / "s.toml")
    assert loaded.control == str(tmp_path / "facts.jsonl")
    assert [p.prompt_id for p in sweep.build_prompts(loaded)] == ["entity", "control:x"]


def test_control_questions_can_take_fewer_samples_than_the_entity_prompt():
    config = sweep.SweepConfig(base_model="tiny", control="builtin", samples_per_cell=4, control_samples=1)
    planned = sweep.plan_rows(config, sweep.build_prompts(config))
    per_prompt = {}
    for row in planned:
        per_prompt.setdefault(row.prompt.prompt_id, set()).add(row.sample_index)
    assert per_prompt["entity"] == {0, 1, 2, 3} and per_prompt["control:capital-france"] == {0}
    cells = len(config.grid.cells())
    assert len(planned) == cells * (4 + len(control_set.load_control_set("builtin")))
    with pytest.raises(UserError, match="control_samples = 5 exceeds samples_per_cell = 4"):
        sweep.sweep_config_from_dict({"control": "builtin", "samples_per_cell": 4, "control_samples": 5})
    with pytest.raises(UserError, match="control_samples needs 'control'"):
        sweep.sweep_config_from_dict({"control_samples": 1})
