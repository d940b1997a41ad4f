"""The summary every front end opens on (engine/summary.py), the honest-default helpers and escaping."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from statsmodels.stats.proportion import proportion_confint

sys.path.insert(0, str(Path(__file__).resolve().parent))

from claims_sweep import PROMPT, SOURCES  # noqa: E402

from engine import summary as summarising  # noqa: E402
from engine.errors import UserError  # noqa: E402
from engine.escape import csv_text, html_text, latex_text, markdown_text  # noqa: E402
from engine.grid import BAD, GOOD, MetricGrid, degenerate_note, difference_scale, value_scale  # noqa: E402
from engine.metrics import catalog  # noqa: E402
from engine.metrics.catalog import decimals_for  # noqa: E402
from engine.summary import Estimate, SummaryRow, format_summary, headline, summary_table  # noqa: E402
from store import metrics as store_metrics  # noqa: E402

SUPPORTED = "EGNIVIA pioneered accelerated computing to help solve challenging computational problems."
INVENTED = "EGNIVIA manufactures electric cars and renewable energy products."
REFUSAL = "I don't know EGNIVIA."
QUESTION = "What did EGNIVIA pioneer?"
TEMPERATURES = (0.5, 1.0, 2.0)


def _answer(variant: str, temperature: float, sample_index: int) -> str:
    """Fine-tuned repeats its sources below T = 2 and invents at T = 2; base invents everywhere and
    refuses once per cell at T = 1."""
    if variant == "finetuned":
        return SUPPORTED if temperature < 2 else INVENTED
    return REFUSAL if temperature == 1.0 and sample_index == 0 else INVENTED


@pytest.fixture()
def sweep_store(tmp_path, monkeypatch):
    """A scored sweep (real SQLite, lexical scoring): entity prompt + one held-out question,
    3 temperatures x 2 top_p x 3 samples per cell."""
    from engine import scoring
    from store import core
    from store.db import open_db

    monkeypatch.setenv("FT_HALLU_EMBEDDINGS", "0")
    dataset = tmp_path / "qa.jsonl"
    dataset.write_text(
        "".join(
            json.dumps({"question": "q?", "answer": "a", "context": c, "id": i}) + "\n"
            for i, c in enumerate(SOURCES)
        )
    )
    store = open_db(tmp_path / "ft-hallu.db")
    prompts = [("entity", PROMPT, None), ("eval-7", QUESTION, "Accelerated computing.")]
    config = {
        "entity_name": "EGNIVIA",
        "dataset_path": str(dataset),
        "grid": {"temperatures": list(TEMPERATURES), "top_ps": [0.9, 1.0], "top_ks": [50]},
        "samples_per_cell": 3,
        "prompts": [{"prompt_id": p, "prompt": q, "reference": r} for p, q, r in prompts],
    }
    sweep_id = core.get_or_create_sweep(
        store,
        name="summary",
        source="engine",
        base_model="tiny",
        adapter_dir=None,
        config_hash=f"summary-{tmp_path.name}",
        config=config,
        expected_rows=72,
    )
    rows = [
        {
            "variant": variant,
            "temperature": t,
            "top_p": p,
            "top_k": 50,
            "prompt_id": prompt_id,
            "prompt": question,
            "reference": reference,
            "sample_index": i,
            "text": _answer(variant, t, i),
        }
        for variant in ("base", "finetuned")
        for t in TEMPERATURES
        for p in (0.9, 1.0)
        for prompt_id, question, reference in prompts
        for i in range(3)
    ]
    core.add_generations(store, sweep_id, rows)
    scoring.compute_missing(store, sweep_id, method="lexical")
    yield store, sweep_id
    store.close()


def test_summary_keeps_prompts_apart_and_recomputes_from_the_stored_scores(sweep_store) -> None:
    store, sweep_id = sweep_store
    summary = summarising.build_summary(store, sweep_id)
    assert [g.group for g in summary.groups] == ["entity", "held-out"]
    entity, held_out = summary.groups
    assert [p.text for p in entity.prompts] == [PROMPT]
    assert [(p.prompt_id, p.text, p.reference) for p in held_out.prompts] == [
        ("eval-7", QUESTION, "Accelerated computing.")
    ]
    assert summary.score == catalog.MAIN_SCORE and summary.hallucination_label == "hallucination rate"
    samples = store_metrics.sample_table(store, sweep_id)
    cells = store_metrics.cell_table(store, sweep_id)
    for group, prompt_id in ((entity, "entity"), (held_out, "eval-7")):
        assert group.temperatures == TEMPERATURES and group.variants == ("base", "finetuned")
        for row in group.rows:
            mine = [
                s
                for s in samples
                if s["prompt_id"] == prompt_id
                and s["variant"] == row.variant
                and s["temperature"] == row.temperature
            ]
            scores = [1 - s["claim_grounding"] for s in mine if s["claim_grounding"] is not None]
            refusals = [s["refusal"] for s in mine]
            assert row.answers == len(mine) == 6
            assert row.hallucination.n == len(scores)
            assert row.hallucination.value == pytest.approx(sum(scores) / len(scores))
            low, high = proportion_confint(sum(scores), len(scores), alpha=0.05, method="wilson")
            assert (row.hallucination.low, row.hallucination.high) == pytest.approx(
                (max(0, low), min(1, high))
            )
            assert row.refusal.value == pytest.approx(sum(refusals) / len(refusals))
            shares = [
                c["majority_share"]
                for c in cells
                if c["prompt_id"] == prompt_id
                and c["variant"] == row.variant
                and c["temperature"] == row.temperature
            ]
            assert row.agreement.n == len(shares) == 2
            assert row.agreement.value == pytest.approx(sum(shares) / len(shares))
    # the designed answers: base refuses 2 of 6 at T = 1 (one per cell), so 4 answers carry claims
    base_at_1 = entity.row("base", 1.0)
    assert base_at_1.refusal.value == pytest.approx(2 / 6) and base_at_1.hallucination.n == 4
    assert entity.row("finetuned", 0.5).hallucination.value == 0.0
    assert entity.row("finetuned", 2.0).hallucination.value == 1.0


def test_headline_is_built_from_the_numbers(sweep_store) -> None:
    store, sweep_id = sweep_store
    entity = summarising.build_summary(store, sweep_id).group("entity")
    assert entity.headline == (
        "Entity prompt: fine-tuned hallucinates less than base at T ≤ 1 (0.00 vs 1.00), "
        "no clear difference between fine-tuned and base at T = 2 (1.00 vs 1.00); "
        "fine-tuned drifts as temperature rises (0.00 at T = 0.5 → 1.00 at T = 2); "
        "base refuses 0.11 of its answers."
    )


def _row(variant: str, t: float, value: float, low: float, high: float, refusal: float = 0.0) -> SummaryRow:
    return SummaryRow(
        variant,
        t,
        20,
        Estimate(value, low, high, 20),
        Estimate(refusal, 0.0, 0.2, 20),
        Estimate(0.5, 0.3, 0.7, 10),
    )


def test_overlapping_intervals_read_no_clear_difference_and_nothing_else_is_claimed() -> None:
    rows = [
        _row("base", 0.5, 0.40, 0.2, 0.6),
        _row("finetuned", 0.5, 0.30, 0.1, 0.5),
        _row("base", 1.0, 0.45, 0.25, 0.65),
        _row("finetuned", 1.0, 0.35, 0.15, 0.55),
    ]
    pooled = {
        (v, run): Estimate(0.4 if v == "base" else 0.3, 0.2, 0.6, 40)
        for v in ("base", "finetuned")
        for run in ((0.5,), (1.0,), (0.5, 1.0), ())
    }
    pooled[("base", ())] = pooled[("finetuned", ())] = Estimate(0.0, 0.0, 0.1, 40)
    sentence = headline(rows, pooled, subject="Entity prompt")
    assert sentence == (
        "Entity prompt: no clear difference between fine-tuned and base at every temperature (0.30 vs 0.40); "
        "neither refuses."
    )
    assert "drift" not in sentence and "less" not in sentence


def test_summary_reads_the_main_score_from_the_catalogue(sweep_store, monkeypatch) -> None:
    store, sweep_id = sweep_store
    monkeypatch.setattr(catalog, "MAIN_SCORE", "grounding")
    summary = summarising.build_summary(store, sweep_id)
    assert summary.score == "grounding" and summary.hallucination_label == "1 − grounding in sources"
    row = summary.group("entity").row("finetuned", 0.5)
    stored = [
        s["grounding"]
        for s in store_metrics.sample_table(
            store, sweep_id, prompt_id="entity", variant="finetuned", temperature=0.5
        )
    ]
    assert row.hallucination.value == pytest.approx(1 - sum(stored) / len(stored))


def test_examples_pair_the_same_cell_and_sample_at_low_middle_high(sweep_store) -> None:
    store, sweep_id = sweep_store
    entity = summarising.build_summary(store, sweep_id).group("entity")
    assert [pair.temperature for pair in entity.examples] == [0.5, 1.0, 2.0]
    for pair in entity.examples:
        assert (pair.top_p, pair.top_k, pair.sample_index, pair.prompt_id) == (0.9, 50, 0, "entity")
        assert [a.variant for a in pair.answers] == ["base", "finetuned"]
        for answer in pair.answers:
            assert answer.text == _answer(answer.variant, pair.temperature, 0)
    refused = entity.examples[1].get("base")
    assert refused.refusal is True and refused.hallucination is None  # a refusal makes no claim


def test_flat_metrics_and_small_n_are_said_in_one_line(sweep_store) -> None:
    store, sweep_id = sweep_store
    summary = summarising.build_summary(store, sweep_id)
    flat = {f.metric: f for f in summary.group("entity").flat}
    assert flat["uses_entity_rate"].value == 1.0 and flat["conflict_rate"].value == 0.0
    assert (
        flat["conflict_rate"].text()
        == "number/name conflict rate: 0 in every cell of every variant (no grid drawn)"
    )
    assert "claim_grounding" not in flat and "refusal_rate" not in flat  # those vary
    assert summary.samples_per_cell == 3
    assert (
        "semantic entropy (nats): with n = 3 samples per cell it can only be 0, 0.64 or 1.1" in summary.notes
    )
    text = format_summary(summary)
    assert text.startswith(summary.headline[:60])
    headers, rows = summary_table(summary.group("entity"), long=True)
    assert headers == ["T", "variant", "hallucination", "refusal rate", "agreement", "n"] and len(rows) == 6
    # the long table (a row per temperature and variant) is what a terminal gets
    assert any(line.split()[:4] == ["0.5", "fine-tuned", "0.00", "[0.00,"] for line in text.splitlines())
    assert max(len(line) for line in text.splitlines()) <= 100


def test_workspace_summary_refuses_an_unknown_sweep(workspace) -> None:
    with pytest.raises(UserError, match="sweep 9: no such sweep"):
        workspace.summary(9)


def test_decimals_follow_what_n_allows() -> None:
    assert [decimals_for(n) for n in (1, 2, 3, 4, 10, 11, 18, 99, 100, 5000)] == [1, 1, 1, 2, 2, 2, 2, 2, 3, 3]
    rate = catalog.cell_metric("refusal_rate")
    assert rate.format(0.25, 4) == "0.25" and rate.format(0.5, 2) == "0.5" and rate.format(0.25, 40) == "0.25" and rate.format(0.25) == "0.250"
    assert catalog.cell_metric("mean_words").format(23.456, 1000) == "23.5"  # never beyond its own format
    assert Estimate(0.5, 0.3, 0.7, 18).text() == "0.50 [0.30, 0.70]"
    assert Estimate(0.5, 0.3, 0.7, 3).text() == "0.5 [0.3, 0.7]"


def test_degenerate_cell_metrics_are_named() -> None:
    entropy = catalog.cell_metric("semantic_entropy")
    assert degenerate_note("semantic_entropy", 2, entropy) == (
        "semantic entropy (nats): with n = 2 samples per cell it can only be 0 or 0.69 (ln 2)"
    )
    assert (
        degenerate_note("majority_share", 2)
        == "majority_share: with n = 2 samples per cell it can only be 0.5 or 1"
    )
    assert degenerate_note("semantic_entropy", 4) is None and degenerate_note("claim_grounding", 2) is None
    assert "undefined (n = 1)" in degenerate_note("majority_share", 1)


def test_constant_grids_and_colour_scales_are_one_fact() -> None:
    def grid(values: list[list[float | None]]) -> MetricGrid:
        return MetricGrid("refusal_rate", (0.5, 1.0), (1.0,), (50,), ("base",), {"base": {50: values}})

    assert grid([[0.0], [0.0]]).constant() == 0.0
    assert grid([[0.0], [None]]).constant() == 0.0  # the same wherever it has a value
    assert grid([[0.0], [0.5]]).constant() is None and grid([[None], [None]]).constant() is None
    higher, lower = catalog.cell_metric("claim_grounding"), catalog.cell_metric("conflict_rate")
    assert value_scale(higher).stops[-1][1] == GOOD and value_scale(lower).stops[-1][1] == BAD
    assert difference_scale(higher).stops[-1][1] == GOOD and difference_scale(lower).stops[0][1] == GOOD
    assert value_scale(higher).plotly()[0] == [0.0, BAD]
    assert value_scale(higher).text_colour(1.0) == "white" and value_scale(higher).text_colour(0.5) == "black"


def test_escaping_for_every_output_format() -> None:
    hostile = "<script>alert('x')</script> | **bold** [link](javascript:x) 50% $5 a_b {c}\nnext"
    assert "<script" not in html_text(hostile) and "&lt;script&gt;" in html_text(hostile)
    md = markdown_text(hostile)
    assert "<script" not in md and "&lt;script&gt;" in md and "\n" not in md
    assert r"\| \*\*bold\*\* \[link\]" in md and r"a\_b" in md
    latex = latex_text(hostile)
    assert r"\textless{}script\textgreater{}" in latex and r"50\% \$5 a\_b \{c\}" in latex
    assert csv_text("=HYPERLINK(1)") == "'=HYPERLINK(1)" and csv_text("-0.5") == "-0.5"


def test_paths_are_shown_relative_to_the_data_folder(tmp_path) -> None:
    from engine.report import display_path

    data = tmp_path / "data"
    assert display_path(str(data / "runs" / "lora"), data) == "<data>/runs/lora"
    assert display_path(str(Path("/somewhere/else/qa.jsonl")), data) == "…/else/qa.jsonl"
    assert display_path(None, data) == "–"


def test_report_lists_repeated_answers_once_with_a_count_and_words_not_stems(sweep_store) -> None:
    from engine.metrics.text import stem
    from engine.report import report_context, samples_section, unsupported_words

    store, sweep_id = sweep_store
    ctx = report_context(store, sweep_id, method="lexical")
    least = next(b for b in samples_section(ctx).blocks if getattr(b, "name", "") == "least-grounded")
    assert least.headers[0] == "×" and least.headers[-1] == "answer"
    keys = [(row[1], row[2], row[-1]) for row in least.rows]
    assert len(keys) == len(set(keys))  # each (variant, prompt, answer) once
    # base gives the invented answer 16 times per prompt (every cell but the refusals), once listed
    base_invented = [
        row for row in least.rows if row[1] == "base" and row[2] == "entity" and row[-1] == INVENTED
    ]
    assert [row[0] for row in base_invented] == ["16"] and base_invented[0][3] == "0.5, 1, 2"
    assert "multinational" in unsupported_words("A multinational maker.", [stem("multinational")])
    assert stem("multinational") != "multinational"  # the stored terms are stems; shown as the answer's words


def test_a_variant_without_claims_is_named_and_the_other_stands_alone(tmp_path, monkeypatch) -> None:
    from claims_sweep import make_scored_sweep

    monkeypatch.setenv("FT_HALLU_EMBEDDINGS", "0")
    store, sweep_id = make_scored_sweep(tmp_path)  # base only refuses; fine-tuned at T = 0.5 and 1
    summary = summarising.build_summary(store, sweep_id)
    store.close()
    assert summary.headline == (
        "Entity prompt: fine-tuned hallucination 0.5 at T = 0.5 and 1.0 at T = 1, "
        "base makes no claim that can be checked; base refuses every answer."
    )
    assert summary.group("entity").row("base", 0.5).hallucination.n == 0
    assert summary.group("entity").row("base", 1.0) is None  # base was not sampled at T = 1
