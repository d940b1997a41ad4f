"""The metric catalogue against what the code computes and what the store's migrations build."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest
import sqlite_utils

from engine import scoring
from engine.metrics import CellMetrics, SampleMetrics, catalog, score_cell, score_sample
from store import core
from store import metrics as store_metrics
from store.db import migration_sets, open_db

TABLE_OF_KIND = {"sample": "generation_metrics", "cell": "cell_metrics"}
TEXTS = ["EGNIVIA pioneered accelerated computing.", "I don't know EGNIVIA.", "EGNIVIA sells cars."]


def test_each_metric_is_declared_once_with_a_usable_spec() -> None:
    for kind in ("sample", "cell"):
        names = [spec.name for spec in catalog.CATALOG if spec.kind == kind]
        assert len(names) == len(set(names)), f"a {kind} metric is declared twice"
    for spec in catalog.CATALOG:
        low, high = spec.range
        assert high is None or low < high, spec.name
        assert spec.direction in ("higher", "lower", "context")
        assert spec.format(None) == "–" and spec.format(1) != ""
        assert spec.column_type in (int, float)
        if spec.mean_of is not None:
            assert spec.kind == "cell" and catalog.sample_metric(spec.mean_of).kind == "sample"
    titles = [spec.title for spec in catalog.CELL_METRICS]
    assert len(titles) == len(set(titles)), "two cell metrics share a short column title"
    with pytest.raises(KeyError, match="unknown cell metric 'nope'"):
        catalog.cell_metric("nope")


def test_catalogue_names_what_score_sample_and_score_cell_return() -> None:
    samples = [
        score_sample(text, reference="EGNIVIA pioneered computing.", entity="EGNIVIA") for text in TEXTS
    ]
    sample_fields = {f.name for f in dataclasses.fields(SampleMetrics)}
    for spec in catalog.SAMPLE_METRICS:
        assert spec.name in sample_fields, f"{spec.name}: no such SampleMetrics field"
    cell = score_cell(TEXTS, [s.to_dict() for s in samples], entity="EGNIVIA", method="lexical")
    cell_values = {f.name for f in dataclasses.fields(CellMetrics)} | set(cell.means)
    for spec in catalog.CELL_METRICS:
        assert spec.name in cell_values, f"{spec.name}: score_cell does not compute it"
    assert set(cell.means) == set(catalog.CELL_MEANS)
    assert cell.means["refusal_rate"] == pytest.approx(1 / 3)


def test_display_levels_nest_in_catalogue_order() -> None:
    summary = catalog.cell_metrics_shown(catalog.Show.SUMMARY)
    table = catalog.cell_metrics_shown(catalog.Show.TABLE)
    heatmap = catalog.cell_metrics_shown(catalog.Show.HEATMAP)
    assert summary == catalog.SUMMARY_METRICS and table[: len(summary)] == summary
    assert set(summary) < set(table) < set(heatmap) < {s.name for s in catalog.CELL_METRICS}
    order = [s.name for s in catalog.CELL_METRICS]
    assert list(heatmap) == sorted(heatmap, key=order.index)


def _oldest_database(path) -> None:
    """Every migration set applied, except that the metric tables stop at their first migration."""
    db = sqlite_utils.Database(sqlite3.connect(str(path)))
    db.execute("PRAGMA foreign_keys=ON")
    for migration_set in migration_sets():
        if migration_set is store_metrics.MIGRATIONS:
            later = [migration.name for migration in migration_set.pending(db)][1:]
            migration_set.apply(db, stop_before=later)
            assert [m.name for m in migration_set.applied(db)] == ["001_metric_tables"]
        else:
            migration_set.apply(db)
    db.close()


def test_database_migrated_from_the_oldest_schema_stores_every_catalogue_metric(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("FT_HALLU_EMBEDDINGS", "0")
    path = tmp_path / "old.db"
    _oldest_database(path)
    store = open_db(path)  # applies every later migration
    try:
        assert store_metrics.MIGRATIONS.pending(store.db) == []
        for kind, table in TABLE_OF_KIND.items():
            columns = store.db[table].columns_dict
            for spec in catalog.CATALOG:
                if spec.kind == kind and spec.stored:
                    assert spec.name in columns, f"{spec.name}: no column in {table}; add a migration"
                    assert columns[spec.name] is spec.column_type, f"{table}.{spec.name} type"
        # and every typed metric column of the store is a catalogue metric
        assert set(store_metrics.sample_columns(store)) == {
            s.name for s in catalog.SAMPLE_METRICS if s.stored
        }
        assert set(store_metrics.cell_columns(store)) == {s.name for s in catalog.CELL_METRICS if s.stored}

        sweep_id = core.get_or_create_sweep(
            store,
            name="old",
            source="engine",
            base_model="tiny",
            adapter_dir=None,
            config_hash="old-schema",
            config={"entity_name": "EGNIVIA"},
            expected_rows=len(TEXTS),
        )
        rows = [
            {
                "variant": "base",
                "temperature": 0.7,
                "top_p": 0.9,
                "top_k": 50,
                "prompt_id": "entity",
                "prompt": "Tell me about EGNIVIA.",
                "reference": "EGNIVIA pioneered computing.",
                "sample_index": index,
                "seed": index,
                "text": text,
            }
            for index, text in enumerate(TEXTS)
        ]
        core.add_generations(store, sweep_id, rows)
        # save_sample_metrics and save_cell_metrics, through the scorer, on the migrated file
        assert scoring.compute_missing(store, sweep_id, method="lexical") == len(TEXTS)
        (cell,) = store_metrics.cell_table(store, sweep_id)
        for spec in catalog.CELL_METRICS:
            if spec.stored:
                assert spec.name in cell
        assert cell["n"] == 3 and cell["refusal_rate"] == pytest.approx(1 / 3)
        samples = store_metrics.sample_table(store, sweep_id)
        assert [s["refusal"] for s in samples] == [0, 1, 0]
    finally:
        store.close()


def test_metrics_list_prints_the_catalogue(capsys) -> None:
    from cli import main

    assert main(["metrics", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = [(line.split()[0], line.split()[1]) for line in lines[1:]]
    assert listed == [(spec.name, spec.kind) for spec in catalog.CATALOG]


def test_a_metric_without_what_it_requires_has_no_value() -> None:
    """``requires`` is what the code really needs: drop it and the value is missing (or undefined)."""
    from engine.metrics import SourceIndex

    text = "EGNIVIA sells cars in 2023 with revenue of $5 billion."
    bare = score_sample(text, entity="EGNIVIA").to_dict()
    for spec in catalog.SAMPLE_METRICS:
        assert (bare[spec.name] is None) == bool(spec.requires), spec.name
    sources = SourceIndex.from_texts(["EGNIVIA sells cars and trucks in 2023."], entity="EGNIVIA")
    given = score_sample(text, reference="EGNIVIA sells cars.", sources=sources, entity="EGNIVIA").to_dict()
    for name in ("exact_match", "token_f1", "rouge_l", "f1_number_aware", "grounding", "conflict"):
        assert given[name] is not None, name
    cell = score_cell([text], [bare], entity="EGNIVIA", method="lexical")
    values = {**cell.to_dict(), **cell.means}
    for spec in catalog.CELL_METRICS:
        if spec.mean_of:
            assert spec.requires == catalog.sample_metric(spec.mean_of).requires, spec.name
        if {"reference", "sources"} & set(spec.requires):
            assert values[spec.name] is None, spec.name
        elif "samples>=2" in spec.requires:
            assert catalog.undefined_at(spec.name, 1) and not catalog.undefined_at(spec.name, 2)
        else:
            assert values[spec.name] is not None and not catalog.undefined_at(spec.name, 1), spec.name
    with pytest.raises(ValueError, match="unknown requirement 'judge'"):
        catalog.MetricSpec("x", "x", "cell", True, requires=("judge",))


def test_missing_reasons_are_declared_once_with_both_texts() -> None:
    reasons = list(catalog.MISSING_REASONS.values())
    assert [r.code for r in reasons] == list(catalog.MISSING_REASONS)
    assert len({r.long for r in reasons}) == len(reasons)
    for reason in reasons:
        assert reason.long and reason.short and len(reason.short) <= len(reason.long), reason.code
    assert catalog.why_missing("token_f1", every_answer_refused=True) is catalog.NO_REFERENCE
    assert catalog.why_missing("grounding", every_answer_refused=False) is catalog.NO_SOURCES
    assert catalog.why_missing("conflict_rate", every_answer_refused=True) is catalog.ALL_REFUSED
    live = catalog.why_missing(
        "claim_grounding", every_answer_refused=False, no_sources=catalog.NO_LIVE_SOURCES
    )
    assert live is catalog.NO_LIVE_SOURCES
    assert catalog.why_missing("refusal_rate", every_answer_refused=False) is catalog.UNAVAILABLE
